import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Layer } from "effect"
import { JobQueue } from "../src/execution/JobQueue.ts"
import { seedRun } from "./support/fixtures.ts"
import { testDatabases } from "./support/TestDatabase.ts"

const runModels = (sql: SqlClient.SqlClient, runId: string) =>
  Effect.map(
    sql<{ id: string }>`select id from assay.run_model where run_id = ${runId} order by display_order`,
    (rows) => rows.map((r) => r.id)
  )

const statuses = (sql: SqlClient.SqlClient, runId: string) =>
  Effect.map(
    sql<{ status: string; n: number }>`select status, count(*)::int as n from assay.run_cell
      where run_id = ${runId} group by status order by status`,
    (rows) => Object.fromEntries(rows.map((r) => [r.status, r.n]))
  )

for (const db of testDatabases) {
  layer(JobQueue.Default.pipe(Layer.provideMerge(db.layer)), { excludeTestServices: true, timeout: 60_000 })(
    `job queue on ${db.kind}`,
    (it) => {
      it.effect("claims per run model in row order with a lease and a started event; runs turn running", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 5 })
          const [a, b] = yield* runModels(sql, seeded.runId)
          const { cells, events } = yield* queue.claim(
            "w1",
            [
              { runModelId: a!, limit: 2 },
              { runModelId: b!, limit: 1 }
            ],
            30_000
          )
          expect(cells.map((c) => [c.runModelId === a ? "a" : "b", c.rowIndex]).sort()).toEqual([
            ["a", 0],
            ["a", 1],
            ["b", 0]
          ])
          expect(cells.every((c) => c.attempt === 1 && c.rowValues !== null)).toBe(true)
          expect(events.map((e) => e.type)).toEqual(["started", "started", "started"])
          expect(yield* statuses(sql, seeded.runId)).toEqual({ queued: 7, running: 3 })
          const [run] = yield* sql<{
            status: string
          }>`select status from assay.run where id = ${seeded.runId}`
          expect(run!.status).toBe("running")
        })
      )

      it.effect("two workers claiming at once never get the same cell", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 20 })
          const ids = yield* runModels(sql, seeded.runId)
          const quotas = ids.map((id) => ({ runModelId: id, limit: 7 }))
          const results = yield* Effect.all(
            [1, 2, 3, 4].map((w) => queue.claim(`w${w}`, quotas, 30_000)),
            { concurrency: "unbounded" }
          )
          const claimed = results.flatMap((r) => r.cells.map((c) => c.id))
          expect(new Set(claimed).size).toBe(claimed.length)
          expect(claimed.length).toBe(40)
        })
      )

      it.effect("results are fenced on the lease and write their events; finished runs complete", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 1 })
          const ids = yield* runModels(sql, seeded.runId)
          const { cells } = yield* queue.claim(
            "w1",
            ids.map((id) => ({ runModelId: id, limit: 5 })),
            30_000
          )
          expect(cells).toHaveLength(2)
          const [first, second] = cells
          // a stranger's result is dropped
          const stranger = yield* queue.complete("w2", [
            {
              id: first!.id,
              status: "succeeded",
              outputRaw: "nope",
              events: [{ type: "succeeded", payload: {} }]
            }
          ])
          expect(stranger.events).toEqual([])
          const done = yield* queue.complete("w1", [
            {
              id: first!.id,
              status: "succeeded",
              outputRaw: "hello",
              costUsd: 0.000123,
              latencyMs: 12,
              tokensIn: 3,
              tokensOut: 4,
              events: [{ type: "succeeded", payload: { tokensOut: 4 } }]
            },
            {
              id: second!.id,
              status: "failed",
              errorCode: "bad_request",
              errorMessage: "no",
              events: [{ type: "failed", payload: { code: "bad_request" } }]
            }
          ])
          expect(done.events.map((e) => e.type).sort()).toEqual(["failed", "succeeded"])
          // each event carries the time its row was written, as the table has it (to the millisecond)
          const stored = yield* sql<{ id: string; at: number }>`
            select id::text as id, (extract(epoch from created_at) * 1000)::float8 as at
            from assay.run_cell_event where ${sql.in(
              "id",
              done.events.map((e) => e.id)
            )}`
          expect(
            Object.fromEntries(done.events.map((e) => [e.id, DateTime.toEpochMillis(e.createdAt)]))
          ).toEqual(Object.fromEntries(stored.map((r) => [r.id, Math.floor(r.at)])))
          expect(done.finalRuns).toEqual([seeded.runId])
          expect(yield* queue.finishRuns(done.finalRuns)).toEqual([seeded.runId])
          const [cell] = yield* sql<{ output_raw: string; cost_usd: string; lease_owner: string | null }>`
            select output_raw, cost_usd, lease_owner from assay.run_cell where id = ${first!.id}`
          expect(cell).toEqual({ output_raw: "hello", cost_usd: "0.0001230000", lease_owner: null })
          const [run] = yield* sql<{
            status: string
          }>`select status from assay.run where id = ${seeded.runId}`
          expect(run!.status).toBe("completed")
        })
      )

      it.effect(
        "a batch writes only the cells still leased, each cell's events in order with their payloads",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const queue = yield* JobQueue
            const seeded = yield* seedRun(sql, { rows: 2 })
            const [a] = yield* runModels(sql, seeded.runId)
            const { cells } = yield* queue.claim("w1", [{ runModelId: a!, limit: 2 }], 30_000)
            const [kept, lost] = cells
            // the second cell's lease went to another worker (as after a sweep and a new claim)
            yield* sql`update assay.run_cell set lease_owner = 'w2' where id = ${lost!.id}`
            const done = yield* queue.complete(
              "w1",
              [kept!, lost!].map((cell) => ({
                id: cell.id,
                status: "succeeded" as const,
                outputRaw: `out ${cell.rowIndex}`,
                events: [
                  { type: "succeeded", payload: { row: cell.rowIndex } },
                  { type: "grader_succeeded", payload: { grade: "pass", row: cell.rowIndex } }
                ]
              }))
            )
            expect(done.events.map((e) => [e.cellId, e.type, e.payload])).toEqual([
              [kept!.id, "succeeded", { row: kept!.rowIndex }],
              [kept!.id, "grader_succeeded", { grade: "pass", row: kept!.rowIndex }]
            ])
            expect(BigInt(done.events[0]!.id) < BigInt(done.events[1]!.id)).toBe(true)
            // the other cell is still running: the run goes on
            expect(yield* queue.finishRuns(done.finalRuns)).toEqual([])
            const rows = yield* sql<{ id: string; status: string; output_raw: string | null }>`
            select id, status, output_raw from assay.run_cell where ${sql.in("id", [kept!.id, lost!.id])}`
            expect(Object.fromEntries(rows.map((r) => [r.id, [r.status, r.output_raw]]))).toEqual({
              [kept!.id]: ["succeeded", `out ${kept!.rowIndex}`],
              [lost!.id]: ["running", null]
            })
            const stored = yield* sql<{ event_type: string; payload: unknown }>`
            select event_type, payload from assay.run_cell_event
            where run_cell_id = ${kept!.id} order by id`
            expect(stored.map((e) => [e.event_type, e.payload])).toEqual([
              ["queued", {}],
              ["started", { attempt: 1 }],
              ["succeeded", { row: kept!.rowIndex }],
              ["grader_succeeded", { grade: "pass", row: kept!.rowIndex }]
            ])
          })
      )

      it.effect("an event's time is when its row is written, not when its transaction began", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 1 })
          const [a] = yield* runModels(sql, seeded.runId)
          const [began, claimed] = yield* sql.withTransaction(
            Effect.gen(function* () {
              const [tx] = yield* sql<{ at: number }>`
                select (extract(epoch from now()) * 1000)::float8 as at from pg_sleep(0.1)`
              const claim = yield* queue.claim("w1", [{ runModelId: a!, limit: 1 }], 30_000)
              return [tx!.at, claim] as const
            })
          )
          expect(claimed.events).toHaveLength(1)
          expect(DateTime.toEpochMillis(claimed.events[0]!.createdAt) - began).toBeGreaterThanOrEqual(100)
        })
      )

      it.effect("a retry goes back to the queue until its time; the sweeper returns expired leases", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 1 })
          const [a, b] = yield* runModels(sql, seeded.runId)
          const first = yield* queue.claim("w1", [{ runModelId: a!, limit: 1 }], 30_000)
          yield* queue.complete("w1", [
            {
              id: first.cells[0]!.id,
              status: "queued",
              retryInMs: 60_000,
              errorCode: "rate_limited",
              events: [{ type: "retrying", payload: {} }]
            }
          ])
          const again = yield* queue.claim("w1", [{ runModelId: a!, limit: 1 }], 30_000)
          expect(again.cells).toEqual([])

          const lost = yield* queue.claim("w9", [{ runModelId: b!, limit: 1 }], 1)
          expect(lost.cells).toHaveLength(1)
          yield* Effect.sleep("20 millis")
          const swept = yield* queue.sweep()
          expect(swept.events.filter((e) => e.cellId === lost.cells[0]!.id).map((e) => e.type)).toEqual([
            "retrying"
          ])
          const held = yield* queue.heartbeat("w9", [lost.cells[0]!.id], 30_000)
          expect(held.size).toBe(0)
          const reclaimed = yield* queue.claim("w2", [{ runModelId: b!, limit: 1 }], 30_000)
          expect(reclaimed.cells.map((c) => [c.id, c.attempt])).toEqual([[lost.cells[0]!.id, 2]])
        })
      )

      it.effect("cancel stops queued and running cells; requeue makes new attempts of failed ones", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const queue = yield* JobQueue
          const seeded = yield* seedRun(sql, { rows: 3 })
          const [a] = yield* runModels(sql, seeded.runId)
          const { cells } = yield* queue.claim("w1", [{ runModelId: a!, limit: 1 }], 30_000)
          yield* queue.complete("w1", [
            {
              id: cells[0]!.id,
              status: "failed",
              errorCode: "auth",
              events: [{ type: "failed", payload: {} }]
            }
          ])
          const requeued = yield* queue.requeue(seeded.runId, { failed: true })
          expect(requeued.map((e) => [e.cellId, e.type])).toEqual([[cells[0]!.id, "queued"]])
          const canceled = yield* queue.cancelRun(seeded.runId)
          expect(canceled).toHaveLength(6)
          expect(yield* statuses(sql, seeded.runId)).toEqual({ canceled: 6 })
          const [run] = yield* sql<{
            status: string
          }>`select status from assay.run where id = ${seeded.runId}`
          expect(run!.status).toBe("canceled")
        })
      )
    }
  )
}
