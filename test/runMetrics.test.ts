import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import type { Metrics } from "../src/domain/Grade.ts"
import { type RunId, UserId } from "../src/domain/Ids.ts"
import { RunMetrics } from "../src/services/RunMetrics.ts"
import { seedRun } from "./support/fixtures.ts"
import { testDatabases } from "./support/TestDatabase.ts"

interface CellResult {
  readonly status: "queued" | "running" | "succeeded" | "failed" | "canceled"
  readonly grade?: "pass" | "fail"
  readonly manual?: "pass" | "fail"
  readonly latency?: number
  readonly tokensIn?: number
  readonly tokensOut?: number
  readonly graderIn?: number
  readonly graderOut?: number
  readonly cost?: string
}

/** Writes a cell's result as the engine would leave it. */
const setCell = (sql: SqlClient.SqlClient, cellId: string, r: CellResult) =>
  sql`
    update assay.run_cell set
      status = ${r.status},
      lease_owner = ${r.status === "running" ? "worker-1" : null},
      lease_expires_at = ${r.status === "running" ? sql`now() + interval '1 minute'` : sql`null`},
      grade = ${r.grade ?? null},
      manual_grade = ${r.manual ?? null},
      latency_ms = ${r.latency ?? null},
      tokens_in = ${r.tokensIn ?? null},
      tokens_out = ${r.tokensOut ?? null},
      grader_tokens_in = ${r.graderIn ?? null},
      grader_tokens_out = ${r.graderOut ?? null},
      cost_usd = ${r.cost ?? null}::numeric
    where id = ${cellId}`

const emptyCounts = { total: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 }

for (const db of testDatabases) {
  layer(RunMetrics.Default.pipe(Layer.provideMerge(db.layer)), {
    excludeTestServices: true,
    timeout: 120_000
  })(`RunMetrics on ${db.kind}`, (it) => {
    it.effect("counts, pass rates, latency, tokens and cost per model and overall, exactly", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 4 })
        const [a0, a1, a2, a3, b0, b1, b2, b3] = seeded.cellIds as [string, ...Array<string>]
        // model A: rows 0–3
        yield* setCell(sql, a0, {
          status: "succeeded",
          grade: "pass",
          latency: 100,
          tokensIn: 10,
          tokensOut: 20,
          graderIn: 5,
          graderOut: 1,
          cost: "0.1"
        })
        yield* setCell(sql, a1!, {
          status: "succeeded",
          grade: "fail",
          manual: "pass",
          latency: 200,
          tokensIn: 30,
          tokensOut: 40,
          graderIn: 6,
          graderOut: 2,
          cost: "0.2"
        })
        yield* setCell(sql, a2!, { status: "succeeded", manual: "fail", latency: 300 })
        // a failed cell's stale grade and latency count nowhere, its tokens and cost do
        yield* setCell(sql, a3!, {
          status: "failed",
          grade: "pass",
          manual: "pass",
          latency: 9_999,
          tokensIn: 7,
          cost: "0.0000000001"
        })
        // model B: rows 0–3
        yield* setCell(sql, b0!, {
          status: "succeeded",
          grade: "pass",
          manual: "fail",
          latency: 1_000,
          tokensIn: 2_000_000_000,
          tokensOut: 2_000_000_000,
          cost: "1234.1234567891"
        })
        yield* setCell(sql, b1!, { status: "running" })
        yield* setCell(sql, b2!, { status: "queued" })
        yield* setCell(sql, b3!, { status: "canceled" })
        // a succeeded cell without a latency does not drag the mean down
        yield* sql`
            insert into assay.run_cell (run_id, run_model_id, row_index, status, grade)
            select run_id, run_model_id, 99, 'succeeded', 'pass' from assay.run_cell where id = ${b0!}`

        const result = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        expect(result.runId).toBe(seeded.runId)
        expect(result.activeMetric).toBe("combined_pass_rate")
        expect(result.models.map((m) => m.label)).toEqual(["mock-a", "mock-b"])

        const modelA: Metrics = {
          counts: { total: 4, queued: 0, running: 0, succeeded: 3, failed: 1, canceled: 0 },
          autoGraded: 2,
          autoPassed: 1,
          autoPassRate: 0.5,
          manualGraded: 2,
          manualPassed: 1,
          manualPassRate: 0.5,
          combinedGraded: 3,
          combinedPassed: 2,
          combinedPassRate: 2 / 3,
          meanLatencyMs: 200,
          p95LatencyMs: 300,
          tokensIn: 47,
          tokensOut: 60,
          graderTokensIn: 11,
          graderTokensOut: 3,
          costUsd: 0.3000000001
        }
        expect(result.models[0]!.metrics).toEqual(modelA)
        expect(result.models[1]!.metrics).toEqual({
          counts: { total: 5, queued: 1, running: 1, succeeded: 2, failed: 0, canceled: 1 },
          autoGraded: 2,
          autoPassed: 2,
          autoPassRate: 1,
          manualGraded: 1,
          manualPassed: 0,
          manualPassRate: 0,
          combinedGraded: 2,
          combinedPassed: 1,
          combinedPassRate: 0.5,
          meanLatencyMs: 1_000,
          p95LatencyMs: 1_000,
          tokensIn: 2_000_000_000,
          tokensOut: 2_000_000_000,
          graderTokensIn: 0,
          graderTokensOut: 0,
          costUsd: 1234.1234567891
        })
        expect(result.overall).toEqual({
          counts: { total: 9, queued: 1, running: 1, succeeded: 5, failed: 1, canceled: 1 },
          autoGraded: 4,
          autoPassed: 3,
          autoPassRate: 0.75,
          manualGraded: 3,
          manualPassed: 1,
          manualPassRate: 1 / 3,
          combinedGraded: 5,
          combinedPassed: 3,
          combinedPassRate: 0.6,
          meanLatencyMs: 400,
          p95LatencyMs: 1_000,
          // past the int4 range: the sums are not truncated
          tokensIn: 2_000_000_047,
          tokensOut: 2_000_000_060,
          graderTokensIn: 11,
          graderTokensOut: 3,
          costUsd: 1234.4234567892
        })
      })
    )

    it.effect("cost sums are exact decimals, not float additions", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 2 })
        const [a0, a1] = seeded.cellIds as [string, string]
        yield* setCell(sql, a0, { status: "succeeded", cost: "0.1" })
        yield* setCell(sql, a1, { status: "succeeded", cost: "0.2" })
        const result = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        expect(0.1 + 0.2).not.toBe(0.3)
        expect(result.models[0]!.metrics.costUsd).toBe(0.3)
        expect(result.overall.costUsd).toBe(0.3)
        expect(result.models[1]!.metrics.costUsd).toBe(0)
      })
    )

    it.effect("p95 is the nearest-rank latency of succeeded cells", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 100 })
        // model A: latencies 1..100 in shuffled row order; model B: the first 20 rows as 10, 20, ..., 200
        yield* sql`
            update assay.run_cell c set status = 'succeeded', latency_ms = ((c.row_index * 37) % 100) + 1
            from assay.run_model rm where rm.id = c.run_model_id and rm.display_order = 0
              and c.run_id = ${seeded.runId}`
        yield* sql`
            update assay.run_cell c set status = 'succeeded', latency_ms = (c.row_index + 1) * 10
            from assay.run_model rm where rm.id = c.run_model_id and rm.display_order = 1
              and c.run_id = ${seeded.runId} and c.row_index < 20`
        const result = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        const [a, b] = result.models
        expect([a!.metrics.meanLatencyMs, a!.metrics.p95LatencyMs]).toEqual([50.5, 95])
        expect([b!.metrics.meanLatencyMs, b!.metrics.p95LatencyMs]).toEqual([105, 190])
        expect(b!.metrics.counts).toEqual({ ...emptyCounts, total: 100, queued: 80, succeeded: 20 })
        // overall: 1..100 and 10..200 by 10: 120 values, rank ceil(0.95 × 120) = 114 → 10 × 14
        expect(result.overall.p95LatencyMs).toBe(140)
        expect(result.overall.meanLatencyMs).toBe((5050 + 2100) / 120)
      })
    )

    it.effect("a run with nothing finished has zero counts and null rates", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 1 })
        const result = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        const empty = {
          autoGraded: 0,
          autoPassed: 0,
          autoPassRate: null,
          manualGraded: 0,
          manualPassed: 0,
          manualPassRate: null,
          combinedGraded: 0,
          combinedPassed: 0,
          combinedPassRate: null,
          meanLatencyMs: null,
          p95LatencyMs: null,
          tokensIn: 0,
          tokensOut: 0,
          graderTokensIn: 0,
          graderTokensOut: 0,
          costUsd: 0
        }
        expect(result.overall).toEqual({ ...empty, counts: { ...emptyCounts, total: 2, queued: 2 } })
        expect(result.models.map((m) => m.metrics)).toEqual([
          { ...empty, counts: { ...emptyCounts, total: 1, queued: 1 } },
          { ...empty, counts: { ...emptyCounts, total: 1, queued: 1 } }
        ])

        // a model with no cells at all still has its entry
        yield* sql`delete from assay.run_cell where run_id = ${seeded.runId}`
        const bare = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        expect(bare.overall).toEqual({ ...empty, counts: emptyCounts })
        expect(bare.models.map((m) => [m.label, m.metrics.counts.total])).toEqual([
          ["mock-a", 0],
          ["mock-b", 0]
        ])
      })
    )

    it.effect("the active metric is the owner's to change; others get not found", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 1 })
        const owner = UserId.make(seeded.ownerId)
        const runId = seeded.runId as RunId
        const changed = yield* metrics.setActiveMetric(owner, runId, "latency")
        expect(changed.activeMetric).toBe("latency")
        expect((yield* metrics.get(owner, runId)).activeMetric).toBe("latency")

        const stranger = UserId.make(crypto.randomUUID())
        const denied = yield* Effect.either(metrics.setActiveMetric(stranger, runId, "cost"))
        expect(Either.isLeft(denied) && [denied.left._tag, denied.left.code]).toEqual([
          "NotFound",
          "run_not_found"
        ])
        const hidden = yield* Effect.either(metrics.get(stranger, runId))
        expect(Either.isLeft(hidden) && hidden.left.code).toBe("run_not_found")
        const missing = yield* Effect.either(metrics.get(owner, crypto.randomUUID() as RunId))
        expect(Either.isLeft(missing) && missing.left.code).toBe("run_not_found")
        const [row] = yield* sql<{ active_metric: string }>`
            select active_metric from assay.run where id = ${runId}`
        expect(row!.active_metric).toBe("latency")
      })
    )

    it.effect("20,000 cells aggregate in one pass, fast", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const metrics = yield* RunMetrics
        const seeded = yield* seedRun(sql, { rows: 1 })
        // 10,000 cells per model; row i: latency i % 1000, grade pass when i % 4 = 0, manual fail when i % 10 = 0
        yield* sql`delete from assay.run_cell where run_id = ${seeded.runId}`
        yield* sql`
            insert into assay.run_cell (run_id, run_model_id, row_index, status, grade, manual_grade, latency_ms,
                                        tokens_in, tokens_out, cost_usd)
            select rm.run_id, rm.id, i, 'succeeded',
                   case when i % 4 = 0 then 'pass' else 'fail' end,
                   case when i % 10 = 0 then 'fail' end,
                   i % 1000, 3, 5, 0.0000001
            from assay.run_model rm cross join generate_series(0, 9999) as i
            where rm.run_id = ${seeded.runId}`
        const started = Date.now()
        const result = yield* metrics.get(UserId.make(seeded.ownerId), seeded.runId as RunId)
        const elapsed = Date.now() - started

        expect(result.overall.counts).toEqual({ ...emptyCounts, total: 20_000, succeeded: 20_000 })
        expect(result.overall.autoPassRate).toBe(0.25)
        expect(result.overall.manualGraded).toBe(2_000)
        expect(result.overall.manualPassRate).toBe(0)
        // passes: i % 4 = 0 and not i % 10 = 0 → 2,500 − 500 (i % 20 = 0) per model
        expect(result.overall.combinedPassed).toBe(4_000)
        expect(result.overall.combinedPassRate).toBe(0.2)
        expect(result.overall.meanLatencyMs).toBe(499.5)
        expect(result.overall.p95LatencyMs).toBe(949)
        expect(result.overall.tokensIn).toBe(60_000)
        expect(result.overall.tokensOut).toBe(100_000)
        expect(result.overall.costUsd).toBe(0.002)
        expect(result.models.map((m) => m.metrics.counts.total)).toEqual([10_000, 10_000])
        expect(elapsed).toBeLessThan(1_500)
      })
    )
  })
}
