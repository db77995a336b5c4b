import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { NotFound } from "../domain/Errors.ts"
import { type Metrics, type ModelMetrics, RunMetricsReport } from "../domain/Grade.ts"
import type { RunId, RunModelId, UserId } from "../domain/Ids.ts"
import type { ActiveMetric } from "../domain/Run.ts"
import { orDieSql } from "./SqlFailure.ts"

interface RunModelRow {
  readonly active_metric: ActiveMetric
  readonly run_model_id: string | null
  readonly label: string | null
}

interface AggregateRow {
  /** null on the whole-run row of the grouping sets */
  readonly run_model_id: string | null
  readonly total: number
  readonly queued: number
  readonly running: number
  readonly succeeded: number
  readonly failed: number
  readonly canceled: number
  readonly auto_graded: number
  readonly auto_passed: number
  readonly manual_graded: number
  readonly manual_passed: number
  readonly combined_graded: number
  readonly combined_passed: number
  readonly mean_latency_ms: number | null
  readonly p95_latency_ms: number | null
  readonly tokens_in: number
  readonly tokens_out: number
  readonly grader_tokens_in: number
  readonly grader_tokens_out: number
  readonly cost_usd: string
}

const rate = (passed: number, graded: number) => (graded === 0 ? null : passed / graded)

const metricsOf = (row: AggregateRow | undefined): Metrics => ({
  counts: {
    total: row?.total ?? 0,
    queued: row?.queued ?? 0,
    running: row?.running ?? 0,
    succeeded: row?.succeeded ?? 0,
    failed: row?.failed ?? 0,
    canceled: row?.canceled ?? 0
  },
  autoGraded: row?.auto_graded ?? 0,
  autoPassed: row?.auto_passed ?? 0,
  autoPassRate: rate(row?.auto_passed ?? 0, row?.auto_graded ?? 0),
  manualGraded: row?.manual_graded ?? 0,
  manualPassed: row?.manual_passed ?? 0,
  manualPassRate: rate(row?.manual_passed ?? 0, row?.manual_graded ?? 0),
  combinedGraded: row?.combined_graded ?? 0,
  combinedPassed: row?.combined_passed ?? 0,
  combinedPassRate: rate(row?.combined_passed ?? 0, row?.combined_graded ?? 0),
  meanLatencyMs: row?.mean_latency_ms ?? null,
  p95LatencyMs: row?.p95_latency_ms ?? null,
  tokensIn: row?.tokens_in ?? 0,
  tokensOut: row?.tokens_out ?? 0,
  graderTokensIn: row?.grader_tokens_in ?? 0,
  graderTokensOut: row?.grader_tokens_out ?? 0,
  // numeric arrives as exact decimal text; one rounding, at the end
  costUsd: Number(row?.cost_usd ?? "0")
})

/**
 * A run's numbers, whole and per model, from two queries: the run with its models, then one aggregate pass
 * over its cells with `grouping sets` (per model, and the whole run), so the cost does not grow with round trips.
 *
 * Pass rates count succeeded cells only: auto over cells with a grader grade, manual over cells graded by hand,
 * combined over cells with either (the manual grade wins). The p95 latency is `percentile_disc(0.95)`, the
 * nearest-rank percentile: always a latency some call really had, never an interpolation between two.
 */
export class RunMetrics extends Effect.Service<RunMetrics>()("assay/RunMetrics", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const runNotFound = () => new NotFound({ code: "run_not_found", message: "No such run." })

    const get = Effect.fn("RunMetrics.get")(function* (owner: UserId, runId: RunId) {
      const runModels = yield* sql<RunModelRow>`
        select r.active_metric, rm.id as run_model_id,
               coalesce(rm.model_snapshot ->> 'label', mc.label) as label
        from assay.run r
        left join assay.run_model rm on rm.run_id = r.id
        left join assay.model_config mc on mc.id = rm.model_config_id
        where r.id = ${runId} and r.owner_id = ${owner}
        order by rm.display_order`.pipe(orDieSql)
      if (runModels.length === 0) return yield* runNotFound()

      const aggregates = yield* sql<AggregateRow>`
        select
          c.run_model_id,
          count(*)::int as total,
          count(*) filter (where c.status = 'queued')::int as queued,
          count(*) filter (where c.status = 'running')::int as running,
          count(*) filter (where c.status = 'succeeded')::int as succeeded,
          count(*) filter (where c.status = 'failed')::int as failed,
          count(*) filter (where c.status = 'canceled')::int as canceled,
          count(c.grade) filter (where c.status = 'succeeded')::int as auto_graded,
          count(*) filter (where c.status = 'succeeded' and c.grade = 'pass')::int as auto_passed,
          count(c.manual_grade) filter (where c.status = 'succeeded')::int as manual_graded,
          count(*) filter (where c.status = 'succeeded' and c.manual_grade = 'pass')::int as manual_passed,
          count(coalesce(c.manual_grade, c.grade)) filter (where c.status = 'succeeded')::int as combined_graded,
          count(*) filter (
            where c.status = 'succeeded' and coalesce(c.manual_grade, c.grade) = 'pass'
          )::int as combined_passed,
          (avg(c.latency_ms) filter (where c.status = 'succeeded'))::float8 as mean_latency_ms,
          (percentile_disc(0.95) within group (order by c.latency_ms)
            filter (where c.status = 'succeeded'))::float8 as p95_latency_ms,
          coalesce(sum(c.tokens_in), 0)::float8 as tokens_in,
          coalesce(sum(c.tokens_out), 0)::float8 as tokens_out,
          coalesce(sum(c.grader_tokens_in), 0)::float8 as grader_tokens_in,
          coalesce(sum(c.grader_tokens_out), 0)::float8 as grader_tokens_out,
          coalesce(sum(c.cost_usd), 0)::text as cost_usd
        from assay.run_cell c
        where c.run_id = ${runId}
        group by grouping sets ((c.run_model_id), ())`.pipe(orDieSql)

      const byModel = new Map(aggregates.map((row) => [row.run_model_id, row]))
      const models: Array<ModelMetrics> = runModels.flatMap((row) =>
        row.run_model_id === null
          ? []
          : [
              {
                runModelId: row.run_model_id as RunModelId,
                label: row.label ?? "",
                metrics: metricsOf(byModel.get(row.run_model_id))
              }
            ]
      )
      return new RunMetricsReport({
        runId,
        activeMetric: runModels[0]!.active_metric,
        overall: metricsOf(byModel.get(null)),
        models
      })
    })

    const setActiveMetric = Effect.fn("RunMetrics.setActiveMetric")(function* (
      owner: UserId,
      runId: RunId,
      activeMetric: ActiveMetric
    ) {
      const updated = yield* sql<{ id: string }>`
        update assay.run set active_metric = ${activeMetric}
        where id = ${runId} and owner_id = ${owner}
        returning id`.pipe(orDieSql)
      if (updated.length === 0) return yield* runNotFound()
      return yield* get(owner, runId)
    })

    return { get, setActiveMetric } as const
  })
}) {}
