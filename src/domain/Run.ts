import { Schema } from "effect"
import { DatasetId, ModelConfigId, PromptId, PromptVersionId, RunId, RunModelId } from "./Ids.ts"
import { Provider } from "./Model.ts"

export const RunStatus = Schema.Literal("queued", "running", "completed", "failed", "canceled")
export type RunStatus = typeof RunStatus.Type

export const CellStatus = Schema.Literal("queued", "running", "succeeded", "failed", "canceled")
export type CellStatus = typeof CellStatus.Type

export const ActiveMetric = Schema.Literal(
  "auto_pass_rate",
  "manual_pass_rate",
  "combined_pass_rate",
  "latency",
  "cost",
  "tokens"
)
export type ActiveMetric = typeof ActiveMetric.Type

export const MAX_MODELS_PER_RUN = 4

export const RunCreate = Schema.Struct({
  promptId: PromptId,
  datasetId: Schema.optionalWith(Schema.NullOr(DatasetId), { default: () => null }),
  modelIds: Schema.Array(ModelConfigId),
  graderPromptId: Schema.optionalWith(Schema.NullOr(PromptId), { default: () => null }),
  /** The model that grades; absent: each cell is graded by the model that produced it. */
  graderModelId: Schema.optionalWith(Schema.NullOr(ModelConfigId), { default: () => null }),
  activeMetric: Schema.optional(ActiveMetric)
}).annotations({ identifier: "RunCreate", parseOptions: { onExcessProperty: "error" } })
export type RunCreate = typeof RunCreate.Type

export const CellCounts = Schema.Struct({
  total: Schema.Int,
  queued: Schema.Int,
  running: Schema.Int,
  succeeded: Schema.Int,
  failed: Schema.Int,
  canceled: Schema.Int
})
export type CellCounts = typeof CellCounts.Type

export const RunModel = Schema.Struct({
  id: RunModelId,
  modelConfigId: ModelConfigId,
  displayOrder: Schema.Int,
  provider: Provider,
  model: Schema.String,
  label: Schema.String,
  counts: CellCounts
})
export type RunModel = typeof RunModel.Type

export class Run extends Schema.Class<Run>("Run")({
  id: RunId,
  promptId: PromptId,
  promptVersionId: PromptVersionId,
  datasetId: Schema.NullOr(DatasetId),
  graderPromptVersionId: Schema.NullOr(PromptVersionId),
  graderModelConfigId: Schema.NullOr(ModelConfigId),
  status: RunStatus,
  activeMetric: ActiveMetric,
  error: Schema.NullOr(Schema.String),
  models: Schema.Array(RunModel),
  counts: CellCounts,
  createdAt: Schema.DateTimeUtc,
  startedAt: Schema.NullOr(Schema.DateTimeUtc),
  completedAt: Schema.NullOr(Schema.DateTimeUtc)
}) {}

export const RunListParams = Schema.Struct({
  promptId: Schema.optional(PromptId)
})
