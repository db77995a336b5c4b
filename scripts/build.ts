// `npm run build`: one self-contained executable, dist/assay, with migrations, PGlite's runtime and the built web
// app (frontend/dist, from `npm run build:web`) embedded.
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dir, "..")
const outfile = path.join(root, "dist", "assay")
const webDir = path.join(root, "frontend", "dist")

if (!fs.existsSync(path.join(webDir, "index.html"))) {
  console.error("frontend/dist is missing: run `npm run build:web` first (`npm run build` does both)")
  process.exit(1)
}

// The executable's entry: first a module that registers every web file, imported `with { type: "file" }` so the
// compiler embeds it, then the server's own entry (static imports evaluate in order, so the files are registered
// before the server starts). Generated because the file names carry content hashes.
const files = fs
  .readdirSync(webDir, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile())
  .map((entry) => path.join(entry.parentPath, entry.name))
const buildDir = path.join(root, "dist", ".build")
fs.mkdirSync(buildDir, { recursive: true })
const json = (value: string) => JSON.stringify(value)
fs.writeFileSync(
  path.join(buildDir, "web-files.ts"),
  [
    `import { registerEmbedded } from ${json(path.join(root, "src/http/WebAssets.ts"))}`,
    ...files.map((file, i) => `import f${i} from ${json(file)} with { type: "file" }`),
    `registerEmbedded({`,
    ...files.map(
      (file, i) => `  ${json("/" + path.relative(webDir, file).split(path.sep).join("/"))}: f${i},`
    ),
    `})`,
    ""
  ].join("\n")
)
const entry = path.join(buildDir, "entry.ts")
fs.writeFileSync(entry, `import "./web-files.ts"\nimport ${json(path.join(root, "src/main.ts"))}\n`)

const started = performance.now()
const proc = Bun.spawn([process.execPath, "build", "--compile", "--minify", entry, "--outfile", outfile], {
  cwd: root,
  stdout: "inherit",
  stderr: "inherit"
})
const code = await proc.exited
fs.rmSync(buildDir, { recursive: true, force: true })
if (code !== 0) {
  console.error(`build failed (exit ${code})`)
  process.exit(code)
}
const size = Bun.file(outfile).size
console.log(
  `built ${path.relative(root, outfile)} (${(size / 1024 / 1024).toFixed(0)} MB, ${files.length} web files) in ${((performance.now() - started) / 1000).toFixed(1)} s`
)
