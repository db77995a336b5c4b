import { SqlClient } from "@effect/sql"
import { DateTime, Effect } from "effect"
import { NotFound, Unprocessable } from "../domain/Errors.ts"
import {
  CellGrade,
  type GradeValue,
  ManualGradeEntry,
  type ManualGradeId,
  type ManualGradeValue
} from "../domain/Grade.ts"
import type { RunCellId, RunId, UserId } from "../domain/Ids.ts"
import type { CellStatus } from "../domain/Run.ts"
import { type CellEventRow, RunEvents, toCellEvent } from "./RunEvents.ts"
import { orDieSql } from "./SqlFailure.ts"

/** A cell with one of its manual grades per row (the grade columns are null when it has none). */
interface CellHistoryRow {
  readonly status: CellStatus
  readonly grade: GradeValue | null
  readonly manual_grade: GradeValue | null
  readonly grade_id: string | null
  readonly value: ManualGradeValue | null
  readonly user_id: string | null
  readonly created_at: Date | null
}

const cellNotFound = () => new NotFound({ code: "cell_not_found", message: "No such cell in this run." })

const historyOf = (rows: ReadonlyArray<CellHistoryRow>) =>
  rows.flatMap((row) =>
    row.grade_id === null
      ? []
      : [
          new ManualGradeEntry({
            id: row.grade_id as ManualGradeId,
            value: row.value!,
            userId: row.user_id as UserId,
            createdAt: DateTime.unsafeFromDate(row.created_at!)
          })
        ]
  )

/**
 * Manual grades: a person's pass/fail on a cell overrides the grader's in the metrics. Every change is kept in
 * `manual_grade` (the history) and as a `manual_grade` event; `run_cell.manual_grade` holds the current one.
 * The event goes to live subscribers once the write commits, so other open grids see the toggle at once.
 */
export class Grades extends Effect.Service<Grades>()("assay/Grades", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* RunEvents

    /** The owner's cell with its history, newest first; no rows when it is not theirs or not in that run. */
    const cellRows = (owner: UserId, runId: RunId, cellId: RunCellId) => sql<CellHistoryRow>`
      select c.status, c.grade, c.manual_grade,
             g.id as grade_id, g.value, g.user_id, g.created_at
      from assay.run_cell c
      join assay.run r on r.id = c.run_id
      left join assay.manual_grade g on g.run_cell_id = c.id
      where c.id = ${cellId} and c.run_id = ${runId} and r.owner_id = ${owner}
      order by g.created_at desc nulls last, g.id desc`

    const stateOf = (runId: RunId, cellId: RunCellId, rows: ReadonlyArray<CellHistoryRow>) => {
      const cell = rows[0]!
      return new CellGrade({
        runId,
        cellId,
        status: cell.status,
        autoGrade: cell.grade,
        manualGrade: cell.manual_grade,
        grade: cell.manual_grade ?? cell.grade,
        history: historyOf(rows)
      })
    }

    const history = Effect.fn("Grades.history")(function* (owner: UserId, runId: RunId, cellId: RunCellId) {
      const rows = yield* cellRows(owner, runId, cellId).pipe(orDieSql)
      if (rows.length === 0) return yield* cellNotFound()
      return historyOf(rows)
    })

    const get = Effect.fn("Grades.get")(function* (owner: UserId, runId: RunId, cellId: RunCellId) {
      const rows = yield* cellRows(owner, runId, cellId).pipe(orDieSql)
      if (rows.length === 0) return yield* cellNotFound()
      return stateOf(runId, cellId, rows)
    })

    const set = Effect.fn("Grades.set")(function* (
      owner: UserId,
      runId: RunId,
      cellId: RunCellId,
      value: ManualGradeValue
    ) {
      const [state, event] = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            // the row lock orders concurrent graders, so the history's order is the order of the writes
            const [cell] = yield* sql<{ status: CellStatus }>`
              select c.status from assay.run_cell c
              join assay.run r on r.id = c.run_id
              where c.id = ${cellId} and c.run_id = ${runId} and r.owner_id = ${owner}
              for update of c`
            if (cell === undefined) return yield* cellNotFound()
            if (value !== "unset" && cell.status !== "succeeded") {
              return yield* new Unprocessable({
                code: "cell_not_gradable",
                message: `Only a succeeded cell has an output to grade; this one is ${cell.status}.`,
                details: { status: cell.status }
              })
            }
            yield* sql`
              insert into assay.manual_grade (run_cell_id, value, user_id, created_at)
              values (${cellId}, ${value}, ${owner}, clock_timestamp())`
            yield* sql`
              update assay.run_cell set manual_grade = ${value === "unset" ? null : value}
              where id = ${cellId}`
            const [event] = yield* sql<CellEventRow>`
              insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
              values (${runId}, ${cellId}, 'manual_grade', ${JSON.stringify({ value, user: owner })}::jsonb)
              returning id::text as id, run_id, run_cell_id, event_type, payload, created_at`
            return [
              stateOf(runId, cellId, yield* cellRows(owner, runId, cellId)),
              toCellEvent(event!)
            ] as const
          })
        )
        .pipe(orDieSql)
      yield* events.publishCommitted([event])
      return state
    })

    return { get, set, history } as const
  })
}) {}
