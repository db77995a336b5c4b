import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Schema, type Stream } from "effect"
import {
  Cell,
  CellDetail,
  type CellEvent,
  CellEventId,
  type CellPage,
  type CellStage,
  DEFAULT_CELL_PAGE_SIZE,
  type Grade
} from "../domain/Cell.ts"
import { BadRequest, NotFound } from "../domain/Errors.ts"
import type { RunCellId, RunId, RunModelId, UserId } from "../domain/Ids.ts"
import type { CellStatus } from "../domain/Run.ts"
import { type CellEventRow, RunEvents, toCellEvent } from "./RunEvents.ts"
import { orDieSql } from "./SqlFailure.ts"

/**
 * How far in the past a poll's `serverTime` lies. `updated_at` is its transaction's start time, so a
 * transaction that began before a poll and commits after it carries an `updated_at` older than the poll; the
 * next poll still sees it if the transaction took less than this. The engine's transactions are single-row
 * updates that take milliseconds.
 */
const WATERMARK_LAG = "2 seconds"

interface CellRow {
  readonly id: string
  readonly run_id: string
  readonly run_model_id: string
  readonly row_index: number
  readonly dataset_row_id: string | null
  readonly status: CellStatus
  readonly stage: CellStage
  readonly attempt: number
  readonly output_raw: string | null
  readonly output_parsed: unknown
  readonly grade: Grade | null
  readonly grade_score: number | null
  readonly grade_reason: string | null
  readonly grade_error: string | null
  readonly manual_grade: Grade | null
  readonly tokens_in: number | null
  readonly tokens_out: number | null
  readonly cost_usd: string | null
  readonly latency_ms: number | null
  readonly error_code: string | null
  readonly error_message: string | null
  readonly started_at: Date | null
  readonly finished_at: Date | null
  readonly updated_at: Date
  /** `updated_at` to the microsecond, for the cursor (a Date keeps milliseconds only). */
  readonly updated_key: string
}

interface CellDetailRow extends CellRow {
  readonly max_attempts: number
  readonly rendered_prompt: unknown
  readonly grader_output_raw: string | null
  readonly grader_tokens_in: number | null
  readonly grader_tokens_out: number | null
}

const dateOrNull = (date: Date | null) => (date === null ? null : DateTime.unsafeFromDate(date))

const cellFields = (row: CellRow) => ({
  id: row.id as RunCellId,
  runId: row.run_id as RunId,
  runModelId: row.run_model_id as RunModelId,
  rowIndex: row.row_index,
  datasetRowId: row.dataset_row_id,
  status: row.status,
  stage: row.stage,
  attempt: row.attempt,
  outputRaw: row.output_raw,
  outputParsed: row.output_parsed ?? null,
  grade: row.grade,
  gradeScore: row.grade_score,
  gradeReason: row.grade_reason,
  gradeError: row.grade_error,
  manualGrade: row.manual_grade,
  tokensIn: row.tokens_in,
  tokensOut: row.tokens_out,
  costUsd: row.cost_usd === null ? null : Number(row.cost_usd),
  latencyMs: row.latency_ms,
  errorCode: row.error_code,
  errorMessage: row.error_message,
  startedAt: dateOrNull(row.started_at),
  finishedAt: dateOrNull(row.finished_at),
  updatedAt: DateTime.unsafeFromDate(row.updated_at)
})

/** Where a page ended, plus the first page's watermarks, which every later page of the sweep repeats. */
const CursorJson = Schema.parseJson(
  Schema.Struct({
    t: Schema.String.pipe(Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/)),
    id: Schema.UUID,
    w: Schema.DateTimeUtc,
    e: CellEventId
  })
)
type CursorData = typeof CursorJson.Type

const encodeCursor = (cursor: CursorData) =>
  Buffer.from(Schema.encodeSync(CursorJson)(cursor)).toString("base64url")

const decodeCursor = (cursor: string) =>
  Effect.try(() => Buffer.from(cursor, "base64url").toString("utf8")).pipe(
    Effect.flatMap(Schema.decodeUnknown(CursorJson)),
    Effect.mapError(
      () => new BadRequest({ code: "invalid_cursor", message: "The cursor is not one this API returned." })
    )
  )

const cellColumns = (sql: SqlClient.SqlClient) => sql`
  c.id, c.run_id, c.run_model_id, c.row_index, c.dataset_row_id, c.status, c.stage, c.attempt, c.output_raw,
  c.output_parsed, c.grade, c.grade_score, c.grade_reason, c.grade_error, c.manual_grade, c.tokens_in, c.tokens_out, c.cost_usd,
  c.latency_ms, c.error_code, c.error_message, c.started_at, c.finished_at, c.updated_at,
  to_char(c.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as updated_key`

const runNotFound = () => new NotFound({ code: "run_not_found", message: "No such run." })

/** Reading a run's cells: polling by change time, one cell's detail, and the run's event stream. */
export class RunCells extends Effect.Service<RunCells>()("assay/RunCells", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const runEvents = yield* RunEvents

    /**
     * The run's cells changed at or after `updatedSince` (all without it), ordered by (updatedAt, id), with a
     * `serverTime` to pass as the next `updatedSince` and the `lastEventId` this snapshot is complete up to.
     */
    const list = Effect.fn("RunCells.list")(function* (
      owner: UserId,
      runId: RunId,
      params: {
        readonly updatedSince?: Date | undefined
        readonly cursor?: string | undefined
        readonly limit?: number | undefined
      }
    ) {
      const position = params.cursor === undefined ? undefined : yield* decodeCursor(params.cursor)
      // the event mark is read before the cells, so every event at or below it is already in them
      const lastEventId = position?.e ?? (yield* runEvents.lastEventId)
      const [run] = yield* sql<{ watermark: Date }>`
        select now() - ${WATERMARK_LAG}::interval as watermark
        from assay.run where id = ${runId} and owner_id = ${owner}`.pipe(orDieSql)
      if (run === undefined) return yield* runNotFound()
      const serverTime = position?.w ?? DateTime.unsafeFromDate(run.watermark)
      const limit = params.limit ?? DEFAULT_CELL_PAGE_SIZE
      const rows = yield* sql<CellRow>`
        select ${cellColumns(sql)}
        from assay.run_cell c
        where c.run_id = ${runId}
          ${params.updatedSince ? sql`and c.updated_at >= ${params.updatedSince.toISOString()}::timestamptz` : sql``}
          ${position ? sql`and (c.updated_at, c.id) > (${position.t}::timestamptz, ${position.id}::uuid)` : sql``}
        order by c.updated_at, c.id
        limit ${limit + 1}`.pipe(orDieSql)
      const items = rows.slice(0, limit)
      const last = items[items.length - 1]
      return {
        items: items.map((row) => new Cell(cellFields(row))),
        nextCursor:
          rows.length > limit && last !== undefined
            ? encodeCursor({ t: last.updated_key, id: last.id, w: serverTime, e: lastEventId })
            : null,
        serverTime,
        lastEventId
      } satisfies CellPage
    })

    /** One cell of the owner's run, with the prompt as sent and every event of the cell in order. */
    const get = Effect.fn("RunCells.get")(function* (owner: UserId, runId: RunId, cellId: RunCellId) {
      const [row] = yield* sql<CellDetailRow>`
        select ${cellColumns(sql)}, c.max_attempts, c.rendered_prompt, c.grader_output_raw,
               c.grader_tokens_in, c.grader_tokens_out
        from assay.run_cell c
        join assay.run r on r.id = c.run_id
        where c.id = ${cellId} and c.run_id = ${runId} and r.owner_id = ${owner}`.pipe(orDieSql)
      if (row === undefined) {
        return yield* new NotFound({ code: "cell_not_found", message: "No such cell in this run." })
      }
      const events = yield* sql<CellEventRow>`
        select id::text as id, run_id, run_cell_id, event_type, payload, created_at
        from assay.run_cell_event where run_cell_id = ${cellId} order by run_cell_event.id`.pipe(orDieSql)
      return new CellDetail({
        ...cellFields(row),
        maxAttempts: row.max_attempts,
        renderedPrompt: row.rendered_prompt ?? null,
        graderOutputRaw: row.grader_output_raw,
        graderTokensIn: row.grader_tokens_in,
        graderTokensOut: row.grader_tokens_out,
        events: events.map(toCellEvent)
      })
    })

    /**
     * The owner's run's events after `afterId` (all of them for null), then live; fails with NotFound before
     * streaming anything when the run is not the owner's.
     */
    const events = Effect.fn("RunCells.events")(function* (
      owner: UserId,
      runId: RunId,
      afterId: string | null
    ) {
      const [run] = yield* sql<{ id: string }>`
        select id from assay.run where id = ${runId} and owner_id = ${owner}`.pipe(orDieSql)
      if (run === undefined) return yield* runNotFound()
      const stream: Stream.Stream<CellEvent> = runEvents.subscribe(
        runId,
        afterId === null ? null : BigInt(afterId)
      )
      return stream
    })

    return { list, get, events } as const
  })
}) {}
