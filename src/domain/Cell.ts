import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Schema } from "effect"
import { CurrentUser } from "./Auth.ts"
import { ForbiddenResponse, UnauthorizedResponse } from "./Errors.ts"
import { RunCellId, RunId, RunModelId } from "./Ids.ts"
import { CellStatus } from "./Run.ts"

/** What happened to a cell; the `event_type` check of `assay.run_cell_event`. */
export const CellEventType = Schema.Literal(
  "queued",
  "started",
  "retrying",
  "succeeded",
  "failed",
  "canceled",
  "grader_started",
  "grader_succeeded",
  "grader_failed",
  "manual_grade"
)
export type CellEventType = typeof CellEventType.Type

/** A run event's id: the table's bigint, as a decimal string (JSON numbers cannot hold every int8). */
export const CellEventId = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,19}$/),
  Schema.annotations({
    identifier: "CellEventId",
    description: "A decimal integer; later events have larger ids"
  })
)
export type CellEventId = typeof CellEventId.Type

export class CellEvent extends Schema.Class<CellEvent>("CellEvent")({
  id: CellEventId,
  runId: RunId,
  cellId: RunCellId,
  type: CellEventType,
  payload: Schema.Unknown,
  createdAt: Schema.DateTimeUtc
}) {}

/** Sent on an idle RPC event stream so proxies and Bun's idle timeout keep the connection open. */
export const RunEventsKeepAlive = Schema.TaggedStruct("KeepAlive", {})
export type RunEventsKeepAlive = typeof RunEventsKeepAlive.Type

export const RunEventMessage = Schema.Union(CellEvent, RunEventsKeepAlive)
export type RunEventMessage = typeof RunEventMessage.Type

export const CellStage = Schema.Literal("generate", "grade")
export type CellStage = typeof CellStage.Type

export const Grade = Schema.Literal("pass", "fail")
export type Grade = typeof Grade.Type

/** One row × model of a run: its queue state and its result so far. */
export class Cell extends Schema.Class<Cell>("Cell")({
  id: RunCellId,
  runId: RunId,
  runModelId: RunModelId,
  rowIndex: Schema.Int,
  datasetRowId: Schema.NullOr(Schema.UUID),
  status: CellStatus,
  stage: CellStage,
  attempt: Schema.Int,
  outputRaw: Schema.NullOr(Schema.String),
  /** The parsed output (JSON), or null. */
  outputParsed: Schema.Unknown,
  grade: Schema.NullOr(Grade),
  gradeScore: Schema.NullOr(Schema.Number),
  gradeReason: Schema.NullOr(Schema.String),
  /** Why grading this successful output failed (the grader's call, or an unreadable reply), or null. */
  gradeError: Schema.NullOr(Schema.String),
  manualGrade: Schema.NullOr(Grade),
  tokensIn: Schema.NullOr(Schema.Int),
  tokensOut: Schema.NullOr(Schema.Int),
  costUsd: Schema.NullOr(Schema.Number),
  latencyMs: Schema.NullOr(Schema.Int),
  errorCode: Schema.NullOr(Schema.String),
  errorMessage: Schema.NullOr(Schema.String),
  startedAt: Schema.NullOr(Schema.DateTimeUtc),
  finishedAt: Schema.NullOr(Schema.DateTimeUtc),
  updatedAt: Schema.DateTimeUtc
}) {}

/** A cell with what only its detail view needs: the prompt as sent, the grader's side, and its events. */
export class CellDetail extends Schema.Class<CellDetail>("CellDetail")({
  ...Cell.fields,
  maxAttempts: Schema.Int,
  /** The prompt as it was sent to the model (written by the engine), or null before the first attempt. */
  renderedPrompt: Schema.Unknown,
  graderOutputRaw: Schema.NullOr(Schema.String),
  graderTokensIn: Schema.NullOr(Schema.Int),
  graderTokensOut: Schema.NullOr(Schema.Int),
  events: Schema.Array(CellEvent)
}) {}

export const MAX_CELL_PAGE_SIZE = 1000
export const DEFAULT_CELL_PAGE_SIZE = 200

export const CellPageLimit = Schema.Int.pipe(Schema.between(1, MAX_CELL_PAGE_SIZE))

/** REST query of the cell list (`updated_since` is an ISO timestamp). */
export const CellListParams = Schema.Struct({
  updated_since: Schema.optional(
    Schema.DateTimeUtc.annotations({ description: "Only cells changed at or after this time (ISO 8601)" })
  ),
  cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(400))),
  limit: Schema.optional(
    Schema.NumberFromString.pipe(
      Schema.compose(CellPageLimit),
      Schema.annotations({ description: `1–${MAX_CELL_PAGE_SIZE}, default ${DEFAULT_CELL_PAGE_SIZE}` })
    )
  )
})
export type CellListParams = typeof CellListParams.Type

/**
 * A page of cells ordered by (updatedAt, id). To follow a run by polling, page until `nextCursor` is null, then
 * ask again with `updated_since` = the last page's `serverTime`: it lies a little in the past so that a change
 * committed late is not missed, so a poll may return a cell again (dedupe by id + updatedAt). To follow the run
 * live from this snapshot instead, open the event stream with `after` = `lastEventId`.
 */
export const CellPage = Schema.Struct({
  items: Schema.Array(Cell),
  nextCursor: Schema.NullOr(Schema.String),
  serverTime: Schema.DateTimeUtc,
  lastEventId: CellEventId
}).annotations({ identifier: "CellPage" })
export type CellPage = typeof CellPage.Type

/**
 * The event stream's authentication: the bearer token, or (EventSource cannot send headers) the same token in
 * the `access_token` query parameter. Used on that route alone.
 */
export class StreamAuthentication extends HttpApiMiddleware.Tag<StreamAuthentication>()(
  "assay/StreamAuthentication",
  {
    provides: CurrentUser,
    failure: Schema.Union(UnauthorizedResponse, ForbiddenResponse),
    security: {
      bearer: HttpApiSecurity.bearer,
      accessToken: HttpApiSecurity.apiKey({ key: "access_token", in: "query" })
    }
  }
) {}
