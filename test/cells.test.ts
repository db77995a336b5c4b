import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, DateTime, Effect, Either, Fiber, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CellEvent } from "../src/domain/Cell.ts"
import { LOCAL_USER_ID, type RunCellId, type RunId } from "../src/domain/Ids.ts"
import { Routes } from "../src/layers/Http.ts"
import { ServicesLive } from "../src/layers/Services.ts"
import { RunEvents, RunEventsSettings } from "../src/services/RunEvents.ts"
import { api, csvForm, rpcClient, signToken, supabaseEnv } from "./support/TestApp.ts"
import { insertEvent, seedRun } from "./support/fixtures.ts"
import { testConfig } from "./support/TestConfig.ts"
import { testDatabases } from "./support/TestDatabase.ts"
import { BaseUrl, testServer, type TestDb } from "./support/TestServer.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

const cellsApp = (db: TestDb, env: Record<string, string> = {}) =>
  testServer(Routes).pipe(
    Layer.provideMerge(ServicesLive),
    Layer.provideMerge(db),
    Layer.provide(
      Layer.succeed(RunEventsSettings, { keepAliveMs: 300, pollIntervalMs: 200, gapTimeoutMs: 400 })
    ),
    Layer.provide(
      testConfig({
        ASSAY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "assay-cells-")),
        ASSAY_ENGINE: "false",
        ...env
      })
    )
  )

/** A seeded run handed to `owner` (seeding twice for one owner would clash on its models). */
const seedRunFor = (owner: string, rows: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const run = yield* seedRun(sql, { rows })
    yield* sql`update assay.run set owner_id = ${owner} where id = ${run.runId}`
    return run
  })

/** Sets `updated_at` as given, bypassing the touch trigger (as a transaction that started earlier would). */
const setUpdatedAt = (cellIds: ReadonlyArray<string>, at: (index: number) => string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`set local session_replication_role = replica`
        for (const [index, id] of cellIds.entries()) {
          yield* sql`update assay.run_cell set updated_at = ${at(index)}::timestamptz where id = ${id}`
        }
      })
    )
  )

const dbNow = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ now: Date }>`select now() as now`).pipe(
  Effect.map(([row]) => row!.now)
)

interface CellJson {
  readonly id: string
  readonly updatedAt: string
  readonly [key: string]: unknown
}

for (const db of testDatabases) {
  layer(cellsApp(db.layer), { excludeTestServices: true, timeout: 60_000 })(
    `cells in local mode on ${db.kind}`,
    (it) => {
      it.effect("polling with updated_since returns only the cells that changed, late commits included", () =>
        Effect.gen(function* () {
          const http = api(yield* BaseUrl)
          const sql = yield* SqlClient.SqlClient
          const run = yield* seedRunFor(LOCAL_USER_ID, 3)
          const cellsUrl = `/api/v1/runs/${run.runId}/cells`

          const all = yield* promise(() => http.get(cellsUrl))
          expect(all.status).toBe(200)
          expect(all.body.items.map((c: CellJson) => c.id).sort()).toEqual([...run.cellIds].sort())
          expect(all.body.nextCursor).toBeNull()
          expect(all.body.items[0]).toMatchObject({
            runId: run.runId,
            status: "queued",
            stage: "generate",
            attempt: 0,
            outputRaw: null,
            costUsd: null,
            manualGrade: null
          })
          expect(all.body.lastEventId).toMatch(/^[0-9]+$/)
          // the watermark lies about two seconds behind the database clock
          const lag = (yield* dbNow).getTime() - Date.parse(all.body.serverTime)
          expect(lag).toBeGreaterThanOrEqual(1_900)
          expect(lag).toBeLessThan(10_000)

          // an hour-old run: nothing changed since the last poll
          yield* setUpdatedAt(run.cellIds, () => new Date(Date.now() - 3_600_000).toISOString())
          const since = all.body.serverTime as string
          const quiet = yield* promise(() =>
            http.get(`${cellsUrl}?updated_since=${encodeURIComponent(since)}`)
          )
          expect(quiet.body.items).toEqual([])

          yield* sql`update assay.run_cell set output_raw = 'changed' where id = ${run.cellIds[2]!}`
          const changed = yield* promise(() =>
            http.get(`${cellsUrl}?updated_since=${encodeURIComponent(since)}`)
          )
          expect(changed.body.items.map((c: CellJson) => [c.id, c.outputRaw])).toEqual([
            [run.cellIds[2], "changed"]
          ])

          // a transaction that began a second before this poll and commits after it is still seen by the next one
          const next = changed.body.serverTime as string
          const late = new Date((yield* dbNow).getTime() - 1_000).toISOString()
          yield* setUpdatedAt([run.cellIds[4]!], () => late)
          const after = yield* promise(() =>
            http.get(`${cellsUrl}?updated_since=${encodeURIComponent(next)}`)
          )
          expect(after.body.items.map((c: CellJson) => c.id)).toContain(run.cellIds[4])
          expect(after.body.items.map((c: CellJson) => c.id)).not.toContain(run.cellIds[0])
        })
      )

      it.effect(
        "a new run's first page covers its queued events: following after its lastEventId repeats none",
        () =>
          Effect.gen(function* () {
            const http = api(yield* BaseUrl)
            const sql = yield* SqlClient.SqlClient
            const prompt = yield* promise(() =>
              http.post("/api/v1/prompts", { name: "Echo", type: "generator", userTemplate: "Say {{word}}." })
            )
            const dataset = yield* promise(() =>
              http.post("/api/v1/datasets", csvForm("word\nalpha\nbeta\ngamma\n", "words.csv"))
            )
            const models = yield* promise(() => http.post("/api/v1/models/defaults"))
            const mock = models.body.find((m: { provider: string }) => m.provider === "mock")
            const run = yield* promise(() =>
              http.post("/api/v1/runs", {
                promptId: prompt.body.id,
                datasetId: dataset.body.id,
                modelIds: [mock.id]
              })
            )
            expect(run.status).toBe(201)
            const [last] = yield* sql<{ id: string; n: number }>`
            select max(id)::text as id, count(*)::int as n from assay.run_cell_event where run_id = ${run.body.id}`
            expect(last!.n).toBe(3)
            // the run's creation publishes them (nobody listens, so nothing else would read them): the live feed
            // sequences them at once, and a page read then says so
            let page = yield* promise(() => http.get(`/api/v1/runs/${run.body.id}/cells?limit=1`))
            for (let i = 0; i < 60 && page.body.lastEventId !== last!.id; i++) {
              yield* Effect.sleep("50 millis")
              page = yield* promise(() => http.get(`/api/v1/runs/${run.body.id}/cells?limit=1`))
            }
            expect(page.body.lastEventId).toBe(last!.id)
          })
      )

      it.effect("pages by (updatedAt, id) with a cursor, exact to the microsecond", () =>
        Effect.gen(function* () {
          const http = api(yield* BaseUrl)
          const run = yield* seedRunFor(LOCAL_USER_ID, 5)
          // ten cells: pairs sharing a timestamp, pairs a microsecond apart
          const stamp = (i: number) => `2026-01-01T00:00:00.00${Math.floor(i / 4)}00${Math.floor(i / 2) % 2}Z`
          yield* setUpdatedAt(run.cellIds, stamp)
          const expected = run.cellIds
            .map((id, i) => ({ id, at: stamp(i) }))
            .sort((a, b) => (a.at === b.at ? (a.id < b.id ? -1 : 1) : a.at < b.at ? -1 : 1))
            .map((c) => c.id)

          const seen: Array<string> = []
          const serverTimes = new Set<string>()
          let cursor: string | null = null
          let pages = 0
          do {
            const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
            const page: {
              status: number
              body: { items: Array<CellJson>; serverTime: string; nextCursor: string | null }
            } = yield* promise(() => http.get(`/api/v1/runs/${run.runId}/cells?limit=3${query}`))
            expect(page.status).toBe(200)
            expect(page.body.items.length).toBeLessThanOrEqual(3)
            seen.push(...page.body.items.map((c: CellJson) => c.id))
            serverTimes.add(page.body.serverTime)
            cursor = page.body.nextCursor
            pages += 1
          } while (cursor !== null && pages < 10)
          expect(pages).toBe(4)
          expect(seen).toEqual(expected)
          // every page of a sweep repeats the first page's watermark
          expect(serverTimes.size).toBe(1)

          const bad = yield* promise(() => http.get(`/api/v1/runs/${run.runId}/cells?cursor=garbage`))
          expect([bad.status, bad.body.error.code]).toEqual([400, "invalid_cursor"])
          const tooMany = yield* promise(() => http.get(`/api/v1/runs/${run.runId}/cells?limit=5000`))
          expect(tooMany.status).toBe(400)
        })
      )

      it.effect("a cell's detail has its events, its prompt as sent and its result", () =>
        Effect.gen(function* () {
          const http = api(yield* BaseUrl)
          const sql = yield* SqlClient.SqlClient
          const run = yield* seedRunFor(LOCAL_USER_ID, 2)
          const other = yield* seedRunFor(LOCAL_USER_ID, 1)
          const cellId = run.cellIds[1]!
          const started = yield* insertEvent(run.runId, cellId, "started", { attempt: 1 })
          const succeeded = yield* insertEvent(run.runId, cellId, "succeeded", { latencyMs: 42 })
          yield* sql`
          update assay.run_cell set status = 'succeeded', attempt = 1, output_raw = '{"answer": 4}',
            output_parsed = '{"answer": 4}'::jsonb, rendered_prompt = '{"system": "Be brief", "user": "2+2?"}'::jsonb,
            tokens_in = 12, tokens_out = 3, cost_usd = 0.0000123, latency_ms = 42, finished_at = now()
          where id = ${cellId}`

          const detail = yield* promise(() => http.get(`/api/v1/runs/${run.runId}/cells/${cellId}`))
          expect(detail.status).toBe(200)
          expect(detail.body).toMatchObject({
            id: cellId,
            status: "succeeded",
            attempt: 1,
            maxAttempts: 4,
            outputRaw: '{"answer": 4}',
            outputParsed: { answer: 4 },
            renderedPrompt: { system: "Be brief", user: "2+2?" },
            tokensIn: 12,
            tokensOut: 3,
            costUsd: 0.0000123,
            latencyMs: 42,
            graderOutputRaw: null
          })
          expect(detail.body.events.map((e: { id: string; type: string }) => [e.type, e.id])).toEqual([
            ["queued", expect.stringMatching(/^[0-9]+$/)],
            ["started", started.id],
            ["succeeded", succeeded.id]
          ])
          expect(detail.body.events[1].payload).toEqual({ attempt: 1 })

          // a grading that failed shows in the run's cell list (the grid), not only in the detail
          yield* sql`update assay.run_cell set grade_error = 'Unreadable grade' where id = ${cellId}`
          const listed = yield* promise(() => http.get(`/api/v1/runs/${run.runId}/cells`))
          expect(Object.fromEntries(listed.body.items.map((c: CellJson) => [c.id, c.gradeError]))).toEqual(
            Object.fromEntries(run.cellIds.map((id) => [id, id === cellId ? "Unreadable grade" : null]))
          )

          const wrongRun = yield* promise(() => http.get(`/api/v1/runs/${other.runId}/cells/${cellId}`))
          expect([wrongRun.status, wrongRun.body.error.code]).toEqual([404, "cell_not_found"])
          const unknownRun = yield* promise(() => http.get(`/api/v1/runs/${crypto.randomUUID()}/cells`))
          expect([unknownRun.status, unknownRun.body.error.code]).toEqual([404, "run_not_found"])
        })
      )

      it.effect("RPC lists cells, reads one and streams the run's events", () =>
        Effect.gen(function* () {
          const client = yield* rpcClient(yield* BaseUrl, undefined)
          const events = yield* RunEvents
          const run = yield* seedRunFor(LOCAL_USER_ID, 2)
          const runId = run.runId as RunId

          const page = yield* client.cells.list({ runId, limit: 3 })
          expect(page.items).toHaveLength(3)
          expect(page.nextCursor).not.toBeNull()
          const rest = yield* client.cells.list({ runId, cursor: page.nextCursor!, limit: 3 })
          expect([...page.items, ...rest.items].map((c) => c.id).sort()).toEqual([...run.cellIds].sort())
          expect(DateTime.isDateTime(page.serverTime)).toBe(true)
          const cell = yield* client.cells.get({ runId, cellId: run.cellIds[0] as RunCellId })
          expect(cell.events.map((e) => e.type)).toEqual(["queued"])

          const received: Array<unknown> = []
          const fiber = yield* client.runs.events({ id: runId }).pipe(
            Stream.runForEach((message) => Effect.sync(() => received.push(message))),
            Effect.fork
          )
          const cellEvents = () => received.filter((m): m is CellEvent => m instanceof CellEvent)
          const waitFor = (check: () => boolean) =>
            Effect.gen(function* () {
              for (let i = 0; i < 250 && !check(); i++) yield* Effect.sleep("20 millis")
              expect(check()).toBe(true)
            })
          yield* waitFor(() => cellEvents().length === 4)
          const live = yield* insertEvent(run.runId, run.cellIds[2]!, "started")
          yield* events.publish([live])
          yield* waitFor(() => cellEvents().length === 5)
          expect(cellEvents().map((e) => e.type)).toEqual(["queued", "queued", "queued", "queued", "started"])
          expect(cellEvents()[4]!.id).toBe(live.id)
          // an idle stream carries keep-alives
          yield* waitFor(() => received.some((m) => (m as { _tag?: string })._tag === "KeepAlive"))
          // cancelling on the client ends the server's subscription too
          const during = yield* events.subscriberCount
          yield* Fiber.interrupt(fiber)
          yield* waitFor(() => Effect.runSync(events.subscriberCount) === during - 1)

          const resumed = yield* client.runs.events({ id: runId, after: cellEvents()[3]!.id }).pipe(
            Stream.filter((m): m is CellEvent => m instanceof CellEvent),
            Stream.take(1),
            Stream.runCollect
          )
          expect(Chunk.toReadonlyArray(resumed).map((e) => e.id)).toEqual([live.id])

          const missing = yield* Effect.either(
            client.runs.events({ id: crypto.randomUUID() as RunId }).pipe(Stream.runDrain)
          )
          expect(Either.isLeft(missing) && missing.left._tag).toBe("NotFound")
        }).pipe(Effect.scoped)
      )
    }
  )

  layer(cellsApp(db.layer, supabaseEnv), { excludeTestServices: true, timeout: 60_000 })(
    `cells and events in supabase mode on ${db.kind}`,
    (it) => {
      it.effect("another user's run is 404 everywhere; the event stream takes ?access_token=", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const alice = crypto.randomUUID()
          const aliceToken = yield* promise(() => signToken({ sub: alice }))
          const bobToken = yield* promise(() => signToken({ sub: crypto.randomUUID() }))
          const run = yield* seedRunFor(alice, 1)
          const cell = run.cellIds[0]!

          const bob = api(base, bobToken)
          for (const route of [
            `/api/v1/runs/${run.runId}/cells`,
            `/api/v1/runs/${run.runId}/cells/${cell}`,
            `/api/v1/runs/${run.runId}/events`
          ]) {
            const response = yield* promise(() => bob.get(route))
            expect([route, response.status]).toEqual([route, 404])
          }
          const bobByQuery = yield* promise(() =>
            fetch(`${base}/api/v1/runs/${run.runId}/events?access_token=${bobToken}`)
          )
          expect(bobByQuery.status).toBe(404)

          const anonymous = yield* promise(() => fetch(`${base}/api/v1/runs/${run.runId}/events`))
          expect([anonymous.status, (yield* promise(() => anonymous.json())).error.code]).toEqual([
            401,
            "missing_token"
          ])
          const expired = yield* promise(() =>
            signToken({ sub: alice, expiresIn: Math.floor(Date.now() / 1000) - 600 })
          )
          const stale = yield* promise(() =>
            fetch(`${base}/api/v1/runs/${run.runId}/events`, {
              headers: { authorization: `Bearer ${expired}` }
            })
          )
          expect([stale.status, (yield* promise(() => stale.json())).error.code]).toEqual([
            401,
            "token_expired"
          ])
          // the query token is for the event stream only
          const listByQuery = yield* promise(() =>
            fetch(`${base}/api/v1/runs/${run.runId}/cells?access_token=${aliceToken}`)
          )
          expect(listByQuery.status).toBe(401)

          const controller = new AbortController()
          const mine = yield* promise(() =>
            fetch(`${base}/api/v1/runs/${run.runId}/events?access_token=${aliceToken}`, {
              signal: controller.signal
            })
          )
          expect(mine.status).toBe(200)
          const reader = mine.body!.getReader()
          let text = ""
          while (!text.includes("event: queued\n") || text.split("event: queued").length < 3) {
            const chunk = yield* promise(() => reader.read())
            if (chunk.done) break
            text += new TextDecoder().decode(chunk.value)
          }
          expect(text.split("event: queued").length - 1).toBe(2)
          controller.abort()
          expect(
            (yield* promise(() => api(base, aliceToken).get(`/api/v1/runs/${run.runId}/cells`))).status
          ).toBe(200)

          const rpc = yield* rpcClient(base, bobToken)
          for (const attempt of [
            rpc.cells.list({ runId: run.runId as RunId }),
            rpc.cells.get({ runId: run.runId as RunId, cellId: cell as RunCellId }),
            rpc.runs.events({ id: run.runId as RunId }).pipe(Stream.runDrain)
          ]) {
            const result = yield* Effect.either(attempt)
            expect(Either.isLeft(result) && result.left._tag).toBe("NotFound")
          }
        }).pipe(Effect.scoped)
      )
    }
  )
}
