// `npm run build:web`: the web app (frontend/index.html and everything it imports) bundled by Bun into
// frontend/dist with content-hashed asset names; `--watch` rebuilds on change (npm run dev).
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dir, "..")
const outdir = path.join(root, "frontend", "dist")
const watch = process.argv.includes("--watch")

// Bun's bundler does not empty the out dir (stack-notes trap 9): old hashed files would pile up.
fs.rmSync(outdir, { recursive: true, force: true })

const started = performance.now()
const args = [
  process.execPath,
  "build",
  path.join(root, "frontend", "index.html"),
  "--outdir",
  outdir,
  "--production",
  "--public-path",
  "/",
  ...(watch ? ["--watch"] : [])
]
// NODE_ENV would override --production (vitest sets it to "test"): React's development build would ship.
const proc = Bun.spawn(args, {
  cwd: root,
  env: { ...process.env, NODE_ENV: "production" },
  stdout: watch ? "inherit" : "pipe",
  stderr: "inherit"
})
const code = await proc.exited
if (code !== 0) {
  console.error(`web build failed (exit ${code})`)
  process.exit(code)
}
const files = fs
  .readdirSync(outdir, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile())
const bytes = files.reduce((sum, entry) => sum + fs.statSync(path.join(entry.parentPath, entry.name)).size, 0)
console.log(
  `built frontend/dist (${files.length} files, ${(bytes / 1024).toFixed(0)} KiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`
)
