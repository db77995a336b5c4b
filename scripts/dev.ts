// `npm run dev`: the web bundler in watch mode and the server restarted on every change, until Ctrl-C.
import * as path from "node:path"

const root = path.resolve(import.meta.dir, "..")
const children = [
  Bun.spawn([process.execPath, path.join(root, "scripts/build-web.ts"), "--watch"], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit"
  }),
  Bun.spawn([process.execPath, "--watch", path.join(root, "src/main.ts"), "serve"], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit"
  })
]
const stop = () => children.forEach((child) => child.kill("SIGTERM"))
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
const code = await Promise.race(children.map((child) => child.exited))
stop()
process.exit(code)
