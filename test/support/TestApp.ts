import { FetchHttpClient, Headers } from "@effect/platform"
import { RpcClient, RpcMiddleware, RpcSerialization } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { SignJWT } from "jose"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { RpcAuthentication } from "../../src/domain/Auth.ts"
import { AssayRpcs } from "../../src/domain/Rpc.ts"
import { Routes } from "../../src/layers/Http.ts"
import * as Scheduler from "../../src/layers/Scheduler.ts"
import { ServicesLive } from "../../src/layers/Services.ts"
import { testConfig } from "./TestConfig.ts"
import { testServer, type TestDb } from "./TestServer.ts"

export const JWT_SECRET = "test-jwt-secret-with-enough-length-for-hs256"
export const SUPABASE_URL = "http://127.0.0.1:9/project"
const ISSUER = `${SUPABASE_URL}/auth/v1`

export const supabaseEnv = {
  ASSAY_AUTH_MODE: "supabase",
  SUPABASE_URL,
  SUPABASE_ANON_KEY: "anon-key",
  SUPABASE_JWT_SECRET: JWT_SECRET,
  ASSAY_ENCRYPTION_KEY: "ab".repeat(32),
  // required by supabase mode; the tests hand the app their own database layer instead
  DATABASE_URL: "postgres://unused@127.0.0.1:1/unused"
}

/** The whole app (REST, RPC, health) on a real socket, on `db`, in a fresh data dir. */
export const testApp = (db: TestDb, env: Record<string, string> = {}) =>
  testServer(Routes).pipe(
    Layer.provide(ServicesLive),
    Layer.provide(db),
    Layer.provide(
      testConfig({ ASSAY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "assay-app-")), ...env })
    ),
    // the server's scheduler, as `ServerApp` runs it
    Layer.provide(Scheduler.layer)
  )

export interface TokenOptions {
  readonly sub?: string
  readonly role?: string
  readonly aud?: string
  readonly iss?: string
  readonly expiresIn?: string | number
  readonly secret?: string
}

/** A Supabase-style access token, signed for real. */
export const signToken = (options: TokenOptions = {}) =>
  new SignJWT({ role: options.role ?? "authenticated", ...(options.sub ? { sub: options.sub } : {}) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? "authenticated")
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "1h")
    .sign(new TextEncoder().encode(options.secret ?? JWT_SECRET))

/** An RPC client for `baseUrl`, sending `token` (if any) on every call. */
export const rpcClient = (baseUrl: string, token: string | undefined) =>
  RpcClient.make(AssayRpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${baseUrl}/rpc` }).pipe(
        Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
      )
    ),
    Effect.provide(
      RpcMiddleware.layerClient(RpcAuthentication, ({ request }) =>
        Effect.succeed(
          token === undefined
            ? request
            : { ...request, headers: Headers.set(request.headers, "authorization", `Bearer ${token}`) }
        )
      )
    )
  )

/** fetch with a bearer token and JSON handling. */
export const api = (baseUrl: string, token?: string) => {
  const call = async (method: string, route: string, body?: unknown) => {
    const headers: Record<string, string> = {}
    if (token) headers["authorization"] = `Bearer ${token}`
    let payload: BodyInit | undefined
    if (body instanceof FormData) payload = body
    else if (body !== undefined) {
      headers["content-type"] = "application/json"
      payload = JSON.stringify(body)
    }
    const response = await fetch(`${baseUrl}${route}`, { method, headers, body: payload ?? null })
    const text = await response.text()
    return { status: response.status, body: text === "" ? undefined : (JSON.parse(text) as any) } // eslint-disable-line @typescript-eslint/no-explicit-any
  }
  return {
    get: (route: string) => call("GET", route),
    post: (route: string, body?: unknown) => call("POST", route, body),
    patch: (route: string, body: unknown) => call("PATCH", route, body),
    put: (route: string, body: unknown) => call("PUT", route, body),
    del: (route: string) => call("DELETE", route)
  }
}

export const csvForm = (csv: string, filename = "data.csv", name?: string) => {
  const form = new FormData()
  if (name !== undefined) form.append("name", name)
  form.append("file", new Blob([csv], { type: "text/csv" }), filename)
  return form
}
