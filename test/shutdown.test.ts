import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { PGlite } from "@electric-sql/pglite"
import { Effect, Exit, Layer, Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { migrations as allMigrations } from "../migrations/index.ts"
import { BaseUrl, testServer } from "./support/TestServer.ts"
import { pgliteLayer } from "./support/TestDatabase.ts"

/** A request that is still working when shutdown starts: sleeps, then needs the database. */
const SlowRoute = Layer.unwrapEffect(
  Effect.map(SqlClient.SqlClient, (sql) =>
    HttpLayerRouter.add(
      "GET",
      "/slow",
      Effect.sleep("400 millis").pipe(
        Effect.zipRight(sql<{ n: number }>`select 41 + 1 as n`),
        Effect.map((rows) => HttpServerResponse.unsafeJson({ answer: rows[0]!.n }))
      )
    )
  )
)
const HangingRoute = HttpLayerRouter.add("GET", "/hang", Effect.never)

describe("graceful shutdown", () => {
  it.live("lets an in-flight request finish (database still open), then refuses new connections", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        testServer(SlowRoute, { drainTimeoutMs: 5_000 }).pipe(Layer.provide(pgliteLayer)),
        scope
      )
      const base = context.unsafeMap.get(BaseUrl.key) as string
      const inFlight = fetch(`${base}/slow`).then(async (r) => ({ status: r.status, body: await r.json() }))
      yield* Effect.sleep("100 millis")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const closedAfter = Date.now() - started
      const answer = yield* Effect.promise(() => inFlight)
      expect(answer).toEqual({ status: 200, body: { answer: 42 } })
      expect(closedAfter).toBeGreaterThanOrEqual(200) // it waited for the request
      const after = yield* Effect.promise(() =>
        fetch(`${base}/slow`).then(
          () => "answered",
          () => "refused"
        )
      )
      expect(after).toBe("refused")
    })
  )

  it.live("cuts requests that outlive the drain timeout", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        testServer(HangingRoute, { drainTimeoutMs: 300 }).pipe(Layer.provide(pgliteLayer)),
        scope
      )
      const base = context.unsafeMap.get(BaseUrl.key) as string
      const hanging = fetch(`${base}/hang`).then(
        (r) => `status ${r.status}`,
        () => "connection closed"
      )
      yield* Effect.sleep("100 millis")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - started).toBeLessThan(3_000)
      expect(yield* Effect.promise(() => hanging)).toBe("connection closed")
    })
  )
})

const bun = path.resolve("node_modules/.bin/bun")

const startServer = (dataDir: string) => {
  const child = Bun.spawn([bun, path.resolve("src/main.ts"), "serve"], {
    cwd: dataDir,
    env: {
      ...process.env,
      ASSAY_DATA_DIR: dataDir,
      ASSAY_PORT: "0",
      ASSAY_LOG_FORMAT: "json",
      LOG_LEVEL: "Info"
    },
    stdout: "pipe",
    stderr: "pipe"
  })
  const output: Array<string> = []
  // one reader for the whole life of the child, so its pipe never fills
  const reading = (async () => {
    const decoder = new TextDecoder()
    const reader = child.stdout.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      output.push(decoder.decode(value))
    }
  })()
  const url = (async () => {
    for (;;) {
      const match = /Listening on (http:\/\/[0-9.:]+)/.exec(output.join(""))
      if (match) return match[1]!
      const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(50).then(() => false)])
      if (exited) {
        await reading
        throw new Error(
          `server exited before listening: ${output.join("")}${await new Response(child.stderr).text()}`
        )
      }
    }
  })()
  return { child, url, output }
}

describe("the assay process", () => {
  it.live(
    "starts on an empty data dir, serves /healthz, stops cleanly on SIGTERM, and keeps its data across restarts",
    () =>
      Effect.promise(async () => {
        const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "assay-proc-"))
        try {
          const first = startServer(dataDir)
          const url = await first.url
          const health = await fetch(`${url}/healthz`)
          expect(health.status).toBe(200)
          first.child.kill("SIGTERM")
          expect(await first.child.exited).toBe(0)
          await Bun.sleep(50)
          expect(first.output.join("")).toContain("http server draining")

          // write through the database files the server left, then restart on them
          const db = await PGlite.create({ dataDir: path.join(dataDir, "db") })
          await db.query(
            `insert into assay.prompt (owner_id, name, type) values ('00000000-0000-0000-0000-000000000001', 'kept', 'generator')`
          )
          await db.close()

          const second = startServer(dataDir)
          const url2 = await second.url
          expect((await fetch(`${url2}/healthz`)).status).toBe(200)
          second.child.kill("SIGINT")
          expect(await second.child.exited).toBe(0)

          const reopened = await PGlite.create({ dataDir: path.join(dataDir, "db") })
          const prompts = await reopened.query<{ name: string }>(`select name from assay.prompt`)
          const migrations = await reopened.query<{ n: number }>(
            `select count(*)::int as n from assay.schema_migrations`
          )
          await reopened.close()
          expect(prompts.rows.map((r) => r.name)).toEqual(["kept"])
          expect(migrations.rows[0]!.n).toBe(Object.keys(allMigrations).length)
        } finally {
          await fs.rm(dataDir, { recursive: true, force: true })
        }
      }),
    60_000
  )
})
