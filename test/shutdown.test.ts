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
    "answers requests while its engine works through a run on the embedded database",
    () =>
      Effect.promise(async () => {
        const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "assay-proc-"))
        const server = startServer(dataDir)
        try {
          const url = `${await server.url}/api/v1`
          const call = async <A>(route: string, init?: RequestInit) => {
            const response = await fetch(`${url}${route}`, init)
            expect(response.status).toBeLessThan(300)
            return (await response.json()) as A
          }
          const json = (body: unknown): RequestInit => ({
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body)
          })
          const prompt = await call<{ id: string }>(
            "/prompts",
            json({ name: "Echo", type: "generator", userTemplate: "Say {{text}}" })
          )
          const form = new FormData()
          form.append("name", "words")
          const rows = Array.from({ length: 3000 }, (_, i) => `word ${i}`)
          form.append("file", new Blob([["text", ...rows].join("\n")], { type: "text/csv" }), "words.csv")
          const dataset = await call<{ id: string }>("/datasets", { method: "POST", body: form })
          // the mock model seeded for the local user answers at once: the engine never waits for a provider
          const mocks = (await call<Array<{ id: string; provider: string }>>("/models")).filter(
            (model) => model.provider === "mock"
          )
          expect(mocks).toHaveLength(1)
          const run = await call<{ id: string; counts: { total: number } }>(
            "/runs",
            json({ promptId: prompt.id, datasetId: dataset.id, modelIds: mocks.map((model) => model.id) })
          )
          expect(run.counts.total).toBe(3000)

          // asked at once: answered while cells are still to do (fiber work yields to the sockets; without that,
          // the engine's statements on the embedded database kept every request waiting until the run was done)
          const during = await call<{ status: string; counts: { total: number; succeeded: number } }>(
            `/runs/${run.id}`
          )
          expect(during.counts.succeeded).toBeLessThan(during.counts.total)
          expect(during.status).not.toBe("completed")
          for (;;) {
            const now = await call<{ status: string }>(`/runs/${run.id}`)
            if (now.status === "completed") break
            await Bun.sleep(200)
          }
        } finally {
          server.child.kill("SIGTERM")
          await server.child.exited
          await fs.rm(dataDir, { recursive: true, force: true })
        }
      }),
    120_000
  )

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
