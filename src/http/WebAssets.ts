// Where the built web app (frontend/dist) comes from: files embedded in the single executable (registered by the
// build's entry module before the server starts), else the directory `npm run build:web` writes.
import * as path from "node:path"

/** URL path ("/index.html", "/chunk-1a2b.js") → file path (inside the executable: a /$bunfs/... path). */
type Embedded = Readonly<Record<string, string>>

let embedded: Embedded | undefined

/** Called by the executable's generated entry module; never by the server itself. */
export const registerEmbedded = (files: Embedded) => {
  embedded = files
}

export const webDir = path.resolve(import.meta.dir, "../../frontend/dist")

/**
 * The file for a URL path, or undefined. Paths are looked up as they arrive (not listed once at start-up) so a
 * rebuilding dev bundler's new files are served; `..` and other escapes never leave the directory.
 */
export const lookup = async (urlPath: string): Promise<string | undefined> => {
  if (embedded !== undefined) return embedded[urlPath]
  const file = path.resolve(webDir, "." + path.posix.normalize(urlPath))
  if (file !== webDir && !file.startsWith(webDir + path.sep)) return undefined
  return (await Bun.file(file).exists()) ? file : undefined
}
