import { SqlClient } from "@effect/sql"
import { DateTime, Effect } from "effect"
import { CellEvent, type CellEventType } from "../domain/Cell.ts"
import type { RunCellId, RunId } from "../domain/Ids.ts"
import { createdAtMs } from "../services/RunEvents.ts"
import { orDieSql } from "../services/SqlFailure.ts"

/** A cell this worker now holds a lease on. */
export interface ClaimedCell {
  readonly id: string
  readonly runId: string
  readonly runModelId: string
  readonly rowIndex: number
  readonly attempt: number
  readonly maxAttempts: number
  readonly rowValues: Record<string, unknown> | null
}

/** An event as written: published to live subscribers once its transaction has committed. */
export type WrittenEvent = CellEvent

export interface CellUpdate {
  readonly id: string
  readonly status: "succeeded" | "failed" | "queued"
  /** For `queued` (a retry): when the next attempt may start. */
  readonly retryInMs?: number | undefined
  readonly renderedPrompt?: unknown
  readonly outputRaw?: string | null | undefined
  readonly outputParsed?: unknown
  readonly tokensIn?: number | null | undefined
  readonly tokensOut?: number | null | undefined
  readonly costUsd?: number | null | undefined
  readonly latencyMs?: number | null | undefined
  readonly grade?: "pass" | "fail" | null | undefined
  readonly gradeScore?: number | null | undefined
  readonly gradeReason?: string | null | undefined
  readonly graderOutputRaw?: string | null | undefined
  readonly gradeError?: string | null | undefined
  readonly graderTokensIn?: number | null | undefined
  readonly graderTokensOut?: number | null | undefined
  readonly errorCode?: string | null | undefined
  readonly errorMessage?: string | null | undefined
  /** The events this update adds, in order. */
  readonly events: ReadonlyArray<{ readonly type: string; readonly payload: unknown }>
}

export interface Quota {
  readonly runModelId: string
  readonly limit: number
}

interface EventRow {
  readonly id: string
  readonly run_id: string
  readonly run_cell_id: string
  readonly event_type: string
  readonly payload: unknown
  readonly created_at: Date
}

/*
 * Events built from our own rows (or from values we just wrote) skip the schema check: validating every event
 * of a large run costs more than writing it.
 */
const makeEvent = (
  id: string,
  runId: string,
  cellId: string,
  type: string,
  payload: unknown,
  createdAt: DateTime.Utc
): WrittenEvent =>
  new CellEvent(
    {
      id,
      runId: runId as RunId,
      cellId: cellId as RunCellId,
      type: type as CellEventType,
      payload,
      createdAt
    },
    true
  )

const toEvent = (row: EventRow): WrittenEvent =>
  makeEvent(
    String(row.id),
    row.run_id,
    row.run_cell_id,
    row.event_type,
    row.payload,
    DateTime.unsafeFromDate(row.created_at)
  )

/** A result's columns as the write statement reads them; absent keys are nulls, so nulls are left out. */
const resultFields = (u: CellUpdate) => {
  const fields: Record<string, unknown> = {
    status: u.status,
    events: u.events.map((e) => ({ type: e.type, payload: e.payload ?? {} }))
  }
  const put = (key: string, value: unknown) => {
    if (value !== undefined && value !== null) fields[key] = value
  }
  put("retry_ms", u.retryInMs)
  put("rendered_prompt", u.renderedPrompt)
  put("output_raw", u.outputRaw)
  put("output_parsed", u.outputParsed)
  put("tokens_in", u.tokensIn)
  put("tokens_out", u.tokensOut)
  put("cost_usd", u.costUsd)
  put("latency_ms", u.latencyMs)
  put("grade", u.grade)
  put("grade_score", u.gradeScore)
  put("grade_reason", u.gradeReason)
  put("grader_output_raw", u.graderOutputRaw)
  put("grade_error", u.gradeError)
  put("grader_tokens_in", u.graderTokensIn)
  put("grader_tokens_out", u.graderTokensOut)
  put("error_code", u.errorCode)
  put("error_message", u.errorMessage)
  return fields
}

/**
 * The durable job queue: cells are the jobs. Claims take batches with `FOR UPDATE SKIP LOCKED` and a lease
 * (owner + expiry); results are fenced on the lease, so a cell that was swept and re-claimed elsewhere is never
 * overwritten by its first worker; every status change writes its events in the same statement.
 */
export class JobQueue extends Effect.Service<JobQueue>()("assay/JobQueue", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * Claims up to `limit` runnable cells per run model, oldest first within each: one statement takes the
     * cells, writes their `started` events and marks their runs running.
     */
    const claim = Effect.fn("JobQueue.claim")(function* (
      worker: string,
      quotas: ReadonlyArray<Quota>,
      leaseMs: number
    ) {
      const wanted = quotas.filter((q) => q.limit > 0)
      if (wanted.length === 0) return { cells: [] as Array<ClaimedCell>, events: [] as Array<WrittenEvent> }
      // one branch per run model with its limit as a value, not a column: the planner then knows how few rows
      // come out and looks them up by key (a limit it cannot see made it hash the whole table on every claim)
      const picks = sql.join(
        " union all ",
        false
      )(
        wanted.map(
          (q) => sql`select id from (
            select id from assay.run_cell
            where run_model_id = ${q.runModelId} and status = 'queued' and next_attempt_at <= now()
            order by next_attempt_at, row_index
            limit ${q.limit}
            for update skip locked) p`
        )
      )
      const rows = yield* sql<{
        id: string
        run_id: string
        run_model_id: string
        row_index: number
        attempt: number
        max_attempts: number
        row_values: Record<string, unknown> | null
        event_id: string
        event_at: number
      }>`
        with picked as (${picks}),
        claimed as (
          update assay.run_cell rc
          set status = 'running', lease_owner = ${worker},
              lease_expires_at = now() + ${leaseMs} * interval '1 millisecond',
              attempt = rc.attempt + 1, started_at = coalesce(rc.started_at, now())
          from picked where rc.id = picked.id
          returning rc.id, rc.run_id, rc.run_model_id, rc.dataset_row_id, rc.row_index, rc.attempt, rc.max_attempts
        ),
        started as (
          insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
          select run_id, id, 'started', jsonb_build_object('attempt', attempt) from claimed
          returning id, run_cell_id, created_at
        ),
        run_started as (
          update assay.run set status = 'running', started_at = coalesce(started_at, now())
          where id in (select run_id from claimed) and status = 'queued'
        )
        select c.id, c.run_id, c.run_model_id, c.row_index, c.attempt, c.max_attempts,
               dr.values as row_values, s.id::text as event_id, ${createdAtMs(sql, "s")} as event_at
        from claimed c
        join started s on s.run_cell_id = c.id
        left join assay.dataset_row dr on dr.id = c.dataset_row_id
        order by s.id`.pipe(orDieSql)
      const cells: Array<ClaimedCell> = []
      const events: Array<WrittenEvent> = []
      for (const r of rows) {
        cells.push({
          id: r.id,
          runId: r.run_id,
          runModelId: r.run_model_id,
          rowIndex: r.row_index,
          attempt: r.attempt,
          maxAttempts: r.max_attempts,
          rowValues: r.row_values
        })
        events.push(
          makeEvent(
            r.event_id,
            r.run_id,
            r.id,
            "started",
            { attempt: r.attempt },
            DateTime.unsafeMake(r.event_at)
          )
        )
      }
      return { cells, events }
    })

    /** Extends the leases this worker still holds; returns the ids it still holds (others were lost). */
    const heartbeat = Effect.fn("JobQueue.heartbeat")(function* (
      worker: string,
      cellIds: ReadonlyArray<string>,
      leaseMs: number
    ) {
      if (cellIds.length === 0) return new Set<string>()
      const rows = yield* sql<{ id: string }>`
        update assay.run_cell set lease_expires_at = now() + ${leaseMs} * interval '1 millisecond'
        where ${sql.in("id", cellIds)} and lease_owner = ${worker} and status = 'running'
        returning id`.pipe(orDieSql)
      return new Set(rows.map((r) => r.id))
    })

    /**
     * Writes results, status changes and their events in one statement (so one transaction), only for cells this
     * worker still leases. Returns the events written (in id order) and the runs some of whose cells reached a
     * final status: pass those to `finishRuns` after publishing the events (the check runs after the commit, so
     * the last batch of a run to commit always sees every other batch; live subscribers need not wait for it).
     */
    const complete = Effect.fn("JobQueue.complete")(function* (
      worker: string,
      updates: ReadonlyArray<CellUpdate>
    ) {
      if (updates.length === 0) return { events: [] as Array<WrittenEvent>, finalRuns: [] as Array<string> }
      const byCell = new Map<string, CellUpdate>()
      const doc: Record<string, Record<string, unknown>> = {}
      for (const u of updates) {
        byCell.set(u.id, u)
        doc[u.id] = resultFields(u)
      }
      /*
       * The batch is one jsonb object keyed by cell id, parsed once; each fenced row looks its own fields up by
       * key. A join between the table and a set-returning function of the input would be planned as a nested
       * loop over the (wrongly) few "running" cells the statistics expect, re-parsing the input for every one.
       */
      const rows = yield* sql<{ id: string; run_id: string; run_cell_id: string; at: number }>`
        with batch as (select ${JSON.stringify(doc)}::jsonb as doc),
        updated as (
          update assay.run_cell c set (
            status, lease_owner, lease_expires_at, next_attempt_at, rendered_prompt, output_raw, output_parsed,
            tokens_in, tokens_out, cost_usd, latency_ms, grade, grade_score, grade_reason, grader_output_raw,
            grade_error, grader_tokens_in, grader_tokens_out, error_code, error_message, finished_at
          ) = (
            select i.status, null::text, null::timestamptz,
              case when i.status = 'queued'
                then now() + coalesce(i.retry_ms, 0) * interval '1 millisecond' else c.next_attempt_at end,
              coalesce(i.rendered_prompt, c.rendered_prompt), i.output_raw, i.output_parsed,
              i.tokens_in, i.tokens_out, i.cost_usd, i.latency_ms, i.grade, i.grade_score, i.grade_reason,
              i.grader_output_raw, i.grade_error, i.grader_tokens_in, i.grader_tokens_out,
              i.error_code, i.error_message,
              case when i.status in ('succeeded', 'failed') then now() else null end
            from jsonb_to_record(batch.doc -> c.id::text) as i(
              status text, retry_ms integer, rendered_prompt jsonb, output_raw text, output_parsed jsonb,
              tokens_in integer, tokens_out integer, cost_usd numeric, latency_ms integer, grade text,
              grade_score double precision, grade_reason text, grader_output_raw text, grade_error text,
              grader_tokens_in integer, grader_tokens_out integer, error_code text, error_message text)
          )
          from batch
          where c.id = any(${[...byCell.keys()]}::uuid[]) and c.lease_owner = ${worker} and c.status = 'running'
          returning c.id, c.run_id, batch.doc -> c.id::text -> 'events' as events
        ),
        -- identity values follow this order, so a cell's events come back in ascending ids in their given order
        inserted as (
          insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
          select u.run_id, u.id, e.type, e.payload
          from updated u
          cross join lateral rows from (jsonb_to_recordset(u.events) as (type text, payload jsonb))
            with ordinality as e(type, payload, ord)
          order by u.id, e.ord
          returning id, run_id, run_cell_id, created_at
        )
        select id::text as id, run_id, run_cell_id, ${createdAtMs(sql, "inserted")} as at from inserted order by inserted.id`.pipe(
        orDieSql
      )
      const written: Array<WrittenEvent> = []
      const nextOrd = new Map<string, number>()
      const finalRuns = new Set<string>()
      for (const row of rows) {
        const update = byCell.get(row.run_cell_id)!
        const ord = nextOrd.get(row.run_cell_id) ?? 0
        nextOrd.set(row.run_cell_id, ord + 1)
        const event = update.events[ord]!
        written.push(
          makeEvent(
            row.id,
            row.run_id,
            row.run_cell_id,
            event.type,
            event.payload ?? {},
            DateTime.unsafeMake(row.at)
          )
        )
        if (update.status !== "queued") finalRuns.add(row.run_id)
      }
      return { events: written, finalRuns: [...finalRuns] }
    })

    /**
     * Marks runs with no queued or running cell left as completed (or failed, when nothing succeeded); returns
     * the runs it finished.
     */
    const finishRuns = (runIds: ReadonlyArray<string>): Effect.Effect<Array<string>> =>
      runIds.length === 0
        ? Effect.succeed([] as Array<string>)
        : Effect.map(
            sql<{ id: string }>`
              update assay.run r set
                status = case when exists (select 1 from assay.run_cell c where c.run_id = r.id and c.status = 'succeeded')
                              or not exists (select 1 from assay.run_cell c where c.run_id = r.id and c.status = 'failed')
                         then 'completed' else 'failed' end,
                completed_at = now()
              where ${sql.in("r.id", runIds)} and r.status in ('queued', 'running')
                and not exists (select 1 from assay.run_cell c where c.run_id = r.id and c.status in ('queued', 'running'))
              returning r.id`,
            (rows) => rows.map((r) => r.id)
          ).pipe(orDieSql)

    /** Returns expired leases to the queue (or fails cells out of attempts). */
    const sweep = Effect.fn("JobQueue.sweep")(function* () {
      return yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const written = yield* sql<EventRow>`
              with expired as (
                update assay.run_cell set
                  status = case when attempt >= max_attempts then 'failed' else 'queued' end,
                  lease_owner = null, lease_expires_at = null, next_attempt_at = now(),
                  error_code = case when attempt >= max_attempts then 'lease_expired' else error_code end,
                  error_message = case when attempt >= max_attempts
                    then 'The worker running this cell stopped answering too many times.' else error_message end,
                  finished_at = case when attempt >= max_attempts then now() else null end
                where status = 'running' and lease_expires_at < now()
                returning id, run_id, status, attempt
              )
              insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
              select run_id, id, case when status = 'failed' then 'failed' else 'retrying' end,
                     jsonb_build_object('reason', 'lease_expired', 'attempt', attempt)
              from expired
              returning id, run_id, run_cell_id, event_type, payload, created_at`
            const finished = yield* finishRuns([...new Set(written.map((e) => e.run_id))])
            return { events: written.map(toEvent).sort(byId), finishedRuns: finished }
          })
        )
        .pipe(orDieSql)
    })

    /** Cancels every queued or running cell of a run (in-flight calls notice on their next heartbeat). */
    const cancelRun = Effect.fn("JobQueue.cancelRun")(function* (runId: string) {
      return yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const written = yield* sql<EventRow>`
              with canceled as (
                update assay.run_cell set status = 'canceled', lease_owner = null, lease_expires_at = null,
                  finished_at = now()
                where run_id = ${runId} and status in ('queued', 'running')
                returning id, run_id
              )
              insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
              select run_id, id, 'canceled', '{}'::jsonb from canceled
              returning id, run_id, run_cell_id, event_type, payload, created_at`
            yield* sql`update assay.run set status = 'canceled', completed_at = now()
                       where id = ${runId} and status in ('queued', 'running')`
            return written.map(toEvent).sort(byId)
          })
        )
        .pipe(orDieSql)
    })

    /**
     * Puts cells back in the queue as new attempts (their history stays in the events): the given cells, or
     * every failed cell of the run. A running cell loses its lease, so its worker's result is dropped.
     */
    const requeue = Effect.fn("JobQueue.requeue")(function* (
      runId: string,
      which: { readonly cellIds: ReadonlyArray<string> } | { readonly failed: true }
    ) {
      return yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const filter = "failed" in which ? sql`status = 'failed'` : sql`${sql.in("id", which.cellIds)}`
            const written = yield* sql<EventRow>`
              with requeued as (
                update assay.run_cell set status = 'queued', stage = 'generate', attempt = 0,
                  next_attempt_at = now(), lease_owner = null, lease_expires_at = null,
                  output_raw = null, output_parsed = null, grade = null, grade_score = null, grade_reason = null,
                  grader_output_raw = null, grade_error = null, manual_grade = null,
                  tokens_in = null, tokens_out = null, grader_tokens_in = null, grader_tokens_out = null,
                  cost_usd = null, latency_ms = null, error_code = null, error_message = null,
                  started_at = null, finished_at = null
                where run_id = ${runId} and ${filter}
                returning id, run_id
              )
              insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
              select run_id, id, 'queued', '{"rerun": true}'::jsonb from requeued
              returning id, run_id, run_cell_id, event_type, payload, created_at`
            if (written.length > 0) {
              yield* sql`update assay.run set status = 'running', completed_at = null where id = ${runId}`
            }
            return written.map(toEvent).sort(byId)
          })
        )
        .pipe(orDieSql)
    })

    /** On shutdown: hands this worker's cells back to the queue at once, the interrupted attempt not counted. */
    const release = Effect.fn("JobQueue.release")(function* (worker: string) {
      return yield* sql<{ id: string }>`
        update assay.run_cell set status = 'queued', lease_owner = null, lease_expires_at = null,
          attempt = greatest(attempt - 1, 0), next_attempt_at = now()
        where lease_owner = ${worker} and status = 'running'
        returning id`.pipe(
        Effect.map((rows) => rows.length),
        orDieSql
      )
    })

    /** Finishes every active run with nothing left to do. */
    const settleRuns = sql<{ id: string }>`
      select id from assay.run where status in ('queued', 'running')`.pipe(
      Effect.flatMap((rows) => finishRuns(rows.map((r) => r.id))),
      orDieSql
    )

    return { claim, heartbeat, complete, finishRuns, sweep, cancelRun, requeue, release, settleRuns } as const
  })
}) {}

/** Event ids are decimal int8 text without leading zeros: shorter is smaller, else compare as text. */
const compareIds = (x: string, y: string) =>
  x.length !== y.length ? x.length - y.length : x < y ? -1 : x > y ? 1 : 0
const byId = (a: WrittenEvent, b: WrittenEvent) => compareIds(a.id, b.id)
