// `npm run build`: one self-contained executable, dist/assay, with migrations and PGlite's runtime embedded.
import * as path from "node:path"

const root = path.resolve(import.meta.dir, "..")
const outfile = path.join(root, "dist", "assay")

const started = performance.now()
const proc = Bun.spawn(
  [process.execPath, "build", "--compile", "--minify", path.join(root, "src/main.ts"), "--outfile", outfile],
  { cwd: root, stdout: "inherit", stderr: "inherit" }
)
const code = await proc.exited
if (code !== 0) {
  console.error(`build failed (exit ${code})`)
  process.exit(code)
}
const size = Bun.file(outfile).size
console.log(
  `built ${path.relative(root, outfile)} (${(size / 1024 / 1024).toFixed(0)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`
)
