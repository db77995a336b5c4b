import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Option } from "effect"
import * as Errors from "../src/domain/Errors.ts"
import { HealthRoute } from "../src/http/Health.ts"
import { Pglite } from "../src/layers/PgliteSqlClient.ts"
import { BaseUrl, testServer } from "./support/TestServer.ts"
import { adminUrl, onAdmin, pgliteLayer, postgresLayer } from "./support/TestDatabase.ts"

const failing = {
  "bad-request": new Errors.BadRequest({
    code: "bad_csv",
    message: "Row 3 has 2 fields, expected 3.",
    details: { row: 3 }
  }),
  unprocessable: new Errors.Unprocessable({
    code: "missing_columns",
    message: "No column for: topic",
    details: ["topic"]
  }),
  unauthorized: new Errors.Unauthorized({ code: "missing_token", message: "Sign in first." }),
  forbidden: new Errors.Forbidden({ code: "service_role_only", message: "Not for users." }),
  "not-found": new Errors.NotFound({ code: "not_found", message: "No such prompt." }),
  conflict: new Errors.Conflict({ code: "dataset_in_use", message: "Runs use this dataset." }),
  "too-large": new Errors.PayloadTooLarge({ code: "file_too_large", message: "Files are limited to 50 MB." })
} as const

const expectedStatus: Record<keyof typeof failing, number> = {
  "bad-request": 400,
  unprocessable: 422,
  unauthorized: 401,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  "too-large": 413
}

/** Routes that exist only in this test, to drive every failure through the real middleware. */
const TestRoutes = Layer.mergeAll(
  HttpLayerRouter.use((router) =>
    Effect.forEach(Object.entries(failing), ([name, error]) =>
      router.add("GET", `/test/${name}`, Effect.fail(error))
    )
  ),
  HttpLayerRouter.add("GET", "/test/defect", Effect.die(new Error("db password is hunter2 at /srv/secret"))),
  HttpLayerRouter.add("GET", "/test/untyped", Effect.fail(new Error("internal detail: stack frame"))),
  HttpLayerRouter.add(
    "GET",
    "/test/logs",
    Effect.logInfo("inside the handler").pipe(Effect.as(HttpServerResponse.text("logged")))
  )
)

const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
const CaptureLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ message, annotations }) => {
    lines.push({
      message: Array.isArray(message) ? message[0] : message,
      annotations: Object.fromEntries([...annotations].map(([k, v]) => [k, v]))
    })
  })
)

const server = testServer(Layer.mergeAll(HealthRoute, TestRoutes), { logLevel: LogLevel.Info }).pipe(
  Layer.provide(CaptureLogs)
)

layer(server.pipe(Layer.provide(pgliteLayer)), { excludeTestServices: true })(
  "HTTP over a real socket",
  (it) => {
    it.effect("GET /healthz answers 200 {status: ok} with a request id", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const response = yield* Effect.promise(() => fetch(`${base}/healthz`))
        expect(response.status).toBe(200)
        expect(yield* Effect.promise(() => response.json())).toEqual({ status: "ok" })
        expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
      })
    )

    it.effect("echoes a sane x-request-id and replaces one that is not", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const given = yield* Effect.promise(() =>
          fetch(`${base}/healthz`, { headers: { "x-request-id": "ci-run-42.a" } })
        )
        expect(given.headers.get("x-request-id")).toBe("ci-run-42.a")
        const bad = yield* Effect.promise(() =>
          fetch(`${base}/healthz`, { headers: { "x-request-id": "x".repeat(300) } })
        )
        expect(bad.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
      })
    )

    it.effect("maps every domain error to its status and the one envelope", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        for (const [name, error] of Object.entries(failing) as Array<
          [keyof typeof failing, Errors.DomainError]
        >) {
          const response = yield* Effect.promise(() => fetch(`${base}/test/${name}`))
          expect(response.status).toBe(expectedStatus[name])
          expect(response.headers.get("content-type")).toContain("application/json")
          expect(response.headers.get("x-request-id")).toBeTruthy()
          const body = yield* Effect.promise(() => response.json())
          expect(body).toEqual({
            error:
              error.details === undefined
                ? { code: error.code, message: error.message }
                : { code: error.code, message: error.message, details: error.details }
          })
        }
      })
    )

    it.effect("answers defects and untyped failures with a bare 500 and logs the cause", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        for (const path of ["/test/defect", "/test/untyped"]) {
          const response = yield* Effect.promise(() => fetch(`${base}${path}`))
          expect(response.status).toBe(500)
          const text = yield* Effect.promise(() => response.text())
          expect(JSON.parse(text)).toEqual(Errors.internalError)
          expect(text).not.toContain("hunter2")
          expect(text).not.toContain("stack")
        }
        expect(lines.some((l) => l.message === "request failed")).toBe(true)
      })
    )

    it.effect("an unknown route is a 404 envelope", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const response = yield* Effect.promise(() => fetch(`${base}/nothing/here`, { method: "POST" }))
        expect(response.status).toBe(404)
        expect(((yield* Effect.promise(() => response.json())) as Errors.ErrorEnvelope).error.code).toBe(
          "route_not_found"
        )
      })
    )

    it.effect("every log line of a request carries its request id; one access line per request", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        lines.length = 0
        const response = yield* Effect.promise(() =>
          fetch(`${base}/test/logs`, { headers: { "x-request-id": "trace-7" } })
        )
        expect(yield* Effect.promise(() => response.text())).toBe("logged")
        const mine = lines.filter((l) => l.annotations.requestId === "trace-7")
        expect(mine.map((l) => l.message)).toEqual(["inside the handler", "http request"])
        expect(mine[1]!.annotations).toMatchObject({ method: "GET", path: "/test/logs", status: 200 })
        expect(lines.filter((l) => l.annotations.requestId === undefined)).toEqual([])
      })
    )
  }
)

describe("/healthz when the database goes away", () => {
  layer(testServer(HealthRoute).pipe(Layer.provideMerge(pgliteLayer)), { excludeTestServices: true })(
    "pglite",
    (it) => {
      it.effect("answers 503 once the database is closed", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          expect((yield* Effect.promise(() => fetch(`${base}/healthz`))).status).toBe(200)
          const db = yield* Pglite
          yield* Effect.promise(() => db.close())
          const down = yield* Effect.promise(() => fetch(`${base}/healthz`))
          expect(down.status).toBe(503)
          expect(yield* Effect.promise(() => down.json())).toMatchObject({
            status: "unavailable",
            error: { code: "database_unavailable" }
          })
        })
      )
    }
  )

  const admin = adminUrl
  if (admin) {
    layer(testServer(HealthRoute).pipe(Layer.provideMerge(postgresLayer(admin))), {
      excludeTestServices: true
    })("postgres", (it) => {
      it.effect("answers 503 while connections are refused, and 200 again after", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const sql = yield* SqlClient.SqlClient
          const [{ name }] = (yield* sql<{ name: string }>`select current_database() as name`) as [
            { name: string }
          ]
          expect((yield* Effect.promise(() => fetch(`${base}/healthz`))).status).toBe(200)
          // a second server connection does the blocking, since ours are about to be cut
          yield* onAdmin(admin, (admin) =>
            Effect.gen(function* () {
              yield* admin.unsafe(`alter database ${name} allow_connections false`)
              yield* admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`
            })
          )
          const down = yield* Effect.promise(() => fetch(`${base}/healthz`))
          expect(down.status).toBe(503)
          yield* onAdmin(admin, (admin) => admin.unsafe(`alter database ${name} allow_connections true`))
          const up = yield* Effect.promise(() => fetch(`${base}/healthz`))
          expect(up.status).toBe(200)
          expect(Option.some(yield* Effect.promise(() => up.json()))).toEqual(Option.some({ status: "ok" }))
        })
      )
    })
  }
})
