import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { WebRoutes } from "../src/http/Web.ts"
import { WebAssets, fromDirectory, fromEmbedded } from "../src/http/WebAssets.ts"
import { supabaseEnv } from "./support/TestApp.ts"
import { testConfig } from "./support/TestConfig.ts"
import { BaseUrl, testServer } from "./support/TestServer.ts"

// A built app as Bun's bundler lays it out: the page, hashed assets, and a file outside the web root that no
// request may reach.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "assay-web-"))
const dist = path.join(root, "dist")
fs.mkdirSync(path.join(dist, "assets"), { recursive: true })
fs.writeFileSync(path.join(dist, "index.html"), "<!doctype html><title>Assay</title>")
fs.writeFileSync(path.join(dist, "index-3f9a1c2b.js"), "console.log('app')")
fs.writeFileSync(path.join(dist, "assets", "logo-9b8c7d6e.svg"), "<svg/>")
fs.writeFileSync(path.join(root, "secret.txt"), "outside the web root")

const get = (base: string, route: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${route}`)
    return {
      status: response.status,
      type: response.headers.get("content-type") ?? "",
      cache: response.headers.get("cache-control"),
      body: await response.text()
    }
  })

const served = (source: ReturnType<typeof fromDirectory>, env: Record<string, string> = {}) =>
  testServer(WebRoutes).pipe(
    Layer.provide(Layer.succeed(WebAssets, source)),
    Layer.provide(testConfig({ ASSAY_DATA_DIR: root, ...env }))
  )

const behaviour = (name: string, source: ReturnType<typeof fromDirectory>) =>
  layer(served(source))(name, (it) => {
    it.effect("serves the page at / and for every deep link, never cached", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        for (const route of ["/", "/runs/42", "/prompts/abc/versions", "/runs/compare?a=1&b=2"]) {
          const response = yield* get(base, route)
          expect(response.status, route).toBe(200)
          expect(response.type).toContain("text/html")
          expect(response.body).toContain("<title>Assay</title>")
          expect(response.cache).toBe("no-cache")
        }
      })
    )

    it.effect("serves hashed assets with their type, cached for a year", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const script = yield* get(base, "/index-3f9a1c2b.js")
        expect(script).toMatchObject({ status: 200, body: "console.log('app')" })
        expect(script.type).toContain("javascript")
        expect(script.cache).toBe("public, max-age=31536000, immutable")
        const nested = yield* get(base, "/assets/logo-9b8c7d6e.svg")
        expect(nested).toMatchObject({ status: 200, body: "<svg/>" })
        expect(nested.type).toContain("image/svg")
      })
    )

    it.effect("a missing asset is a JSON 404, not the page", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const response = yield* get(base, "/index-00000000.js")
        expect(response.status).toBe(404)
        expect(JSON.parse(response.body)).toEqual({
          error: { code: "not_found", message: "/index-00000000.js does not exist." }
        })
      })
    )

    it.effect("unknown API paths answer a JSON 404 instead of the page", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        for (const route of ["/api/v1/nope", "/api/v2", "/rpc", "/docs/extra", "/metrics/x"]) {
          const response = yield* get(base, route)
          expect(response.status, route).toBe(404)
          expect(JSON.parse(response.body).error.code).toBe("not_found")
        }
      })
    )

    it.effect("tells the app how to sign in (local mode: no sign-in)", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const response = yield* get(base, "/app-config.json")
        expect(response.cache).toBe("no-store")
        expect(JSON.parse(response.body)).toEqual({
          authMode: "local",
          supabaseUrl: null,
          supabaseAnonKey: null
        })
      })
    )
  })

describe("web app", () => {
  it("no path escapes the web root, however it is spelled", async () => {
    // URLs reach lookup normalised, but the directory source must hold on its own
    const source = fromDirectory(dist)
    for (const route of ["/../secret.txt", "/assets/../../secret.txt", "/..", "/./../dist/../secret.txt"]) {
      expect(await source.lookup(route), route).toBeUndefined()
    }
    expect(await source.lookup("/assets/../index.html")).toBe(path.join(dist, "index.html"))
  })

  behaviour("from a directory", fromDirectory(dist))
  behaviour(
    "embedded in the executable",
    fromEmbedded({
      "/index.html": path.join(dist, "index.html"),
      "/index-3f9a1c2b.js": path.join(dist, "index-3f9a1c2b.js"),
      "/assets/logo-9b8c7d6e.svg": path.join(dist, "assets", "logo-9b8c7d6e.svg")
    })
  )

  layer(served(fromDirectory(path.join(root, "not-built"))))("before `npm run build:web`", (it) => {
    it.effect("pages answer 503 with the command that builds the app", () =>
      Effect.gen(function* () {
        const response = yield* get(yield* BaseUrl, "/prompts")
        expect(response.status).toBe(503)
        expect(response.body).toContain("npm run build:web")
      })
    )
  })

  layer(served(fromDirectory(dist), supabaseEnv))("in supabase mode", (it) => {
    it.effect("gives the browser the project URL and the public anon key, and nothing secret", () =>
      Effect.gen(function* () {
        const response = yield* get(yield* BaseUrl, "/app-config.json")
        const body = JSON.parse(response.body)
        expect(body).toEqual({
          authMode: "supabase",
          supabaseUrl: supabaseEnv.SUPABASE_URL,
          supabaseAnonKey: supabaseEnv.SUPABASE_ANON_KEY
        })
        expect(response.body).not.toContain(supabaseEnv.SUPABASE_JWT_SECRET)
        expect(response.body).not.toContain(supabaseEnv.ASSAY_ENCRYPTION_KEY)
      })
    )
  })
})
