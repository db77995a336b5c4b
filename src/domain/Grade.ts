import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Authentication, RpcAuthentication } from "./Auth.ts"
import {
  BadRequest,
  BadRequestResponse,
  NotFound,
  NotFoundResponse,
  Unprocessable,
  UnprocessableResponse
} from "./Errors.ts"
import { RunCellId, RunId, RunModelId, UserId } from "./Ids.ts"
import { ActiveMetric, CellCounts, CellStatus } from "./Run.ts"

export const ManualGradeId = Schema.UUID.pipe(Schema.brand("ManualGradeId"))
export type ManualGradeId = typeof ManualGradeId.Type

/** A verdict on one output, by the grader prompt or by hand. */
export const GradeValue = Schema.Literal("pass", "fail")
export type GradeValue = typeof GradeValue.Type

/** What a person sets: a verdict, or `unset` to fall back to the automatic grade. */
export const ManualGradeValue = Schema.Literal("pass", "fail", "unset")
export type ManualGradeValue = typeof ManualGradeValue.Type

export const ManualGradeSet = Schema.Struct({ value: ManualGradeValue }).annotations({
  identifier: "ManualGradeSet",
  parseOptions: { onExcessProperty: "error" }
})
export type ManualGradeSet = typeof ManualGradeSet.Type

/** One entry of a cell's manual grade history. */
export class ManualGradeEntry extends Schema.Class<ManualGradeEntry>("ManualGradeEntry")({
  id: ManualGradeId,
  value: ManualGradeValue,
  userId: UserId,
  createdAt: Schema.DateTimeUtc
}) {}

/** A cell's grades: `grade` is the one metrics count (the manual grade where set, else the automatic one). */
export class CellGrade extends Schema.Class<CellGrade>("CellGrade")({
  runId: RunId,
  cellId: RunCellId,
  status: CellStatus,
  autoGrade: Schema.NullOr(GradeValue),
  manualGrade: Schema.NullOr(GradeValue),
  grade: Schema.NullOr(GradeValue),
  history: Schema.Array(ManualGradeEntry).annotations({ description: "newest first" })
}) {}

const Rate = Schema.NullOr(Schema.Number.pipe(Schema.between(0, 1))).annotations({
  description: "passed / graded, 0–1; null when nothing is graded"
})

/**
 * The numbers of a set of cells (a run, or one model of it). Pass rates count succeeded cells only; latency is
 * over succeeded cells with a latency (p95 is `percentile_disc`: an observed value, nearest rank); tokens and cost
 * are over every cell, generation and grader tokens apart, cost including both.
 */
export const Metrics = Schema.Struct({
  counts: CellCounts,
  autoGraded: Schema.Int,
  autoPassed: Schema.Int,
  autoPassRate: Rate,
  manualGraded: Schema.Int,
  manualPassed: Schema.Int,
  manualPassRate: Rate,
  combinedGraded: Schema.Int,
  combinedPassed: Schema.Int,
  combinedPassRate: Rate,
  meanLatencyMs: Schema.NullOr(Schema.Number),
  p95LatencyMs: Schema.NullOr(Schema.Number),
  tokensIn: Schema.Int,
  tokensOut: Schema.Int,
  graderTokensIn: Schema.Int,
  graderTokensOut: Schema.Int,
  costUsd: Schema.Number
}).annotations({ identifier: "Metrics" })
export type Metrics = typeof Metrics.Type

export const ModelMetrics = Schema.Struct({
  runModelId: RunModelId,
  label: Schema.String,
  metrics: Metrics
})
export type ModelMetrics = typeof ModelMetrics.Type

export class RunMetricsReport extends Schema.Class<RunMetricsReport>("RunMetricsReport")({
  runId: RunId,
  activeMetric: ActiveMetric,
  overall: Metrics,
  models: Schema.Array(ModelMetrics).annotations({ description: "in the run's display order" })
}) {}

export const ActiveMetricSet = Schema.Struct({ activeMetric: ActiveMetric }).annotations({
  identifier: "ActiveMetricSet",
  parseOptions: { onExcessProperty: "error" }
})
export type ActiveMetricSet = typeof ActiveMetricSet.Type

const cellPath = Schema.Struct({ id: RunId, cellId: RunCellId })
const runPath = Schema.Struct({ id: RunId })

export class GradesApi extends HttpApiGroup.make("grades")
  .add(
    HttpApiEndpoint.put("set", "/runs/:id/cells/:cellId/grade")
      .setPath(cellPath)
      .setPayload(ManualGradeSet)
      .addSuccess(CellGrade)
      .addError(UnprocessableResponse)
      .annotate(
        OpenApi.Description,
        "Grade a cell by hand (`pass`/`fail` on a succeeded cell), or `unset` to fall back to the automatic grade."
      )
  )
  .add(
    HttpApiEndpoint.get("history", "/runs/:id/cells/:cellId/grades")
      .setPath(cellPath)
      .addSuccess(Schema.Array(ManualGradeEntry))
      .annotate(OpenApi.Description, "The cell's manual grades, newest first.")
  )
  .add(HttpApiEndpoint.get("metrics", "/runs/:id/metrics").setPath(runPath).addSuccess(RunMetricsReport))
  .add(
    HttpApiEndpoint.put("setActiveMetric", "/runs/:id/active-metric")
      .setPath(runPath)
      .setPayload(ActiveMetricSet)
      .addSuccess(RunMetricsReport)
      .annotate(OpenApi.Description, "Choose the metric the run leads with; answers the run's metrics.")
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

const error = Schema.Union(BadRequest, Unprocessable, NotFound)

export class GradeRpcs extends RpcGroup.make(
  Rpc.make("grades.set", {
    payload: { runId: RunId, cellId: RunCellId, value: ManualGradeValue },
    success: CellGrade,
    error
  }),
  Rpc.make("grades.history", {
    payload: { runId: RunId, cellId: RunCellId },
    success: Schema.Array(ManualGradeEntry),
    error
  }),
  Rpc.make("runs.metrics", { payload: { id: RunId }, success: RunMetricsReport, error }),
  Rpc.make("runs.setActiveMetric", {
    payload: { id: RunId, activeMetric: ActiveMetric },
    success: RunMetricsReport,
    error
  })
).middleware(RpcAuthentication) {}
