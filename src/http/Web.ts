import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Option, Redacted } from "effect"
import { AppConfig } from "../layers/Config.ts"
import { WebAssets } from "./WebAssets.ts"

/** Paths that belong to the API: an unknown one is a JSON 404, never the web app's page. */
const API_PREFIXES = ["/api/", "/rpc", "/docs", "/metrics", "/healthz"]

/** Bun's bundler names every asset but the page with a content hash: those may be cached for good. */
const HASHED = /-[a-z0-9]{8,}\.[a-z0-9]+$/

const notFound = (what: string) =>
  HttpServerResponse.unsafeJson(
    { error: { code: "not_found", message: `${what} does not exist.` } },
    { status: 404 }
  )

const notBuilt = HttpServerResponse.text(
  "The web app is not built. Run `npm run build:web` (npm start does it for you).",
  { status: 503 }
)

const serveFile = (file: string, cache: string) => {
  const blob = Bun.file(file)
  return HttpServerResponse.raw(blob, {
    headers: { "content-type": blob.type, "cache-control": cache }
  })
}

/**
 * The web app at `/`: built files by path (hashed ones cached for a year), every other page path (a deep link
 * such as /runs/123) answered with index.html so the SPA's router takes it; `GET /app-config.json` tells the app
 * how to sign in (the anon key is public by design; nothing secret is sent).
 */
export const WebRoutes = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const { lookup } = yield* WebAssets
    const appConfig = {
      authMode: config.authMode,
      supabaseUrl: Option.getOrNull(Option.map(config.supabaseUrl, (url) => url.href)),
      supabaseAnonKey: Option.getOrNull(Option.map(config.supabaseAnonKey, Redacted.value))
    }
    const page = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const pathname = new URL(request.url, "http://assay").pathname
      if (API_PREFIXES.some((prefix) => pathname === prefix || pathname.startsWith(prefix))) {
        return notFound(`${request.method} ${pathname}`)
      }
      if (pathname === "/app-config.json") {
        return HttpServerResponse.unsafeJson(appConfig, { headers: { "cache-control": "no-store" } })
      }
      const file = pathname === "/" ? undefined : yield* Effect.promise(() => lookup(pathname))
      if (file !== undefined) {
        return serveFile(file, HASHED.test(pathname) ? "public, max-age=31536000, immutable" : "no-cache")
      }
      // a missing asset (it has an extension) is a 404; any other path is a page of the app
      if (/\.[a-z0-9]+$/i.test(pathname)) return notFound(pathname)
      const index = yield* Effect.promise(() => lookup("/index.html"))
      return index === undefined ? notBuilt : serveFile(index, "no-cache")
    })
    return Layer.mergeAll(HttpLayerRouter.add("GET", "/", page), HttpLayerRouter.add("GET", "/*", page))
  })
)
