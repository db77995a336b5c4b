// Where the built web app (frontend/dist) comes from: files embedded in the single executable (registered by the
// build's entry module before the server starts), else the directory `npm run build:web` writes.
import { Context, Layer } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** URL path ("/index.html", "/index-1a2b3c4d.js") → file path (inside the executable: a /$bunfs/... path). */
type Embedded = Readonly<Record<string, string>>

export interface WebAssetSource {
  /** The file for a URL path, or undefined. */
  readonly lookup: (urlPath: string) => Promise<string | undefined>
}

export class WebAssets extends Context.Tag("assay/WebAssets")<WebAssets, WebAssetSource>() {}

export const fromEmbedded = (files: Embedded): WebAssetSource => ({
  lookup: async (urlPath) => (Object.hasOwn(files, urlPath) ? files[urlPath] : undefined)
})

/**
 * Files under `dir`, looked up as requests arrive (not listed once at start-up) so a rebuilding dev bundler's
 * new files are served; `..` and other escapes never leave the directory.
 */
export const fromDirectory = (dir: string): WebAssetSource => {
  const root = path.resolve(dir)
  return {
    lookup: async (urlPath) => {
      const file = path.resolve(root, "." + path.posix.normalize(urlPath))
      if (!file.startsWith(root + path.sep)) return undefined
      return (await Bun.file(file).exists()) ? file : undefined
    }
  }
}

let embedded: Embedded | undefined

/** Called by the executable's generated entry module (scripts/build.ts); never by the server itself. */
export const registerEmbedded = (files: Embedded) => {
  embedded = files
}

/** The checkout's build output, relative to this module. */
export const webDir = () => fileURLToPath(new URL("../../frontend/dist", import.meta.url))

/** The executable's embedded files if any, else frontend/dist. */
export const layer = Layer.sync(WebAssets, () =>
  embedded ? fromEmbedded(embedded) : fromDirectory(webDir())
)
