import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Chunk, Clock, Context, DateTime, Deferred, Effect, Option, Queue, Schedule, Stream } from "effect"
import { CellEvent, type CellEventType } from "../domain/Cell.ts"
import type { RunCellId, RunId } from "../domain/Ids.ts"
import { orDieSql } from "./SqlFailure.ts"

/** The NOTIFY channel that tells other processes new events committed; the payload is the batch's highest id. */
export const RUN_EVENTS_CHANNEL = "assay_run_events"

export interface RunEventsSettingsShape {
  /** SSE keep-alive comments (and RPC keep-alive messages) on an idle stream; Bun cuts a connection idle 30 s. */
  readonly keepAliveMs: number
  /** While anyone listens, the table is read this often for events nobody announced (a lost NOTIFY). */
  readonly pollIntervalMs: number
  /** How long a hole in the id sequence may hold later events back before it is taken for a rollback. */
  readonly gapTimeoutMs: number
}

/** Timings of live events; tests provide shorter ones. Read once, when the services and routes are built. */
export class RunEventsSettings extends Context.Reference<RunEventsSettings>()("assay/RunEventsSettings", {
  defaultValue: (): RunEventsSettingsShape => ({
    keepAliveMs: 10_000,
    pollIntervalMs: 1_000,
    gapTimeoutMs: 3_000
  })
}) {}

/** A row of `assay.run_cell_event` as read with `id::text as id` (see `toCellEvent`). */
export interface CellEventRow {
  readonly id: string
  readonly run_id: string
  readonly run_cell_id: string
  readonly event_type: CellEventType
  readonly payload: unknown
  readonly created_at: Date
}

export const toCellEvent = (row: CellEventRow): CellEvent =>
  new CellEvent({
    id: row.id,
    runId: row.run_id as RunId,
    cellId: row.run_cell_id as RunCellId,
    type: row.event_type,
    payload: row.payload,
    createdAt: DateTime.unsafeFromDate(row.created_at)
  })

/** An event as its writer knows it after the commit (a `CellEvent`, or the row as written). */
export interface CommittedEvent {
  readonly id: string
  readonly runId: string
  readonly cellId: string
  readonly type: string
  readonly payload: unknown
  readonly createdAt: Date | DateTime.Utc
}

const fromCommitted = (event: CommittedEvent): CellEvent =>
  event instanceof CellEvent
    ? event
    : new CellEvent({
        id: event.id,
        runId: event.runId as RunId,
        cellId: event.cellId as RunCellId,
        type: event.type as CellEventType,
        payload: event.payload,
        createdAt: DateTime.isDateTime(event.createdAt)
          ? event.createdAt
          : DateTime.unsafeFromDate(event.createdAt)
      })

const READ_BATCH = 1000
/** While a hole in the id sequence holds events back, the table is re-read this often to fill it. */
const GAP_RECHECK_MS = 50
/** A subscriber this far behind is dropped (its stream ends); it resumes from the table by its last id. */
const MAX_BACKLOG = 10_000

type Signal =
  | { readonly _tag: "Published"; readonly events: ReadonlyArray<CellEvent> }
  | { readonly _tag: "Announced"; readonly maxId: bigint }
  | { readonly _tag: "Sync"; readonly done: Deferred.Deferred<bigint> }

interface Subscriber {
  readonly runId: string
  readonly queue: Queue.Queue<CellEvent>
}

const parseId = (text: string): bigint | null => (/^[0-9]{1,19}$/.test(text) ? BigInt(text) : null)

/**
 * Live run events. Event ids come from one identity sequence, but transactions commit in any order (worker
 * fibers here, other processes), so ids do not arrive in order. One sequencer fiber per process turns them into
 * a feed in strict id order: it keeps a high-water mark (every id at or below it has been delivered, or was
 * given up as never committing) and holds back events above a hole until the hole fills, from a later
 * `publish` or from the table, or until `gapTimeoutMs` passes (a rolled-back insert leaves a hole for good).
 * Because the feed is ordered, a subscriber replays the table up to the mark and then takes the feed above it,
 * and an SSE client resuming after id N misses nothing: no event at or below N can still be on its way.
 *
 * Other processes' events arrive by NOTIFY (real Postgres only; PGlite is one process) and a read of the
 * table above the mark; a periodic read while anyone listens covers a lost NOTIFY and writers that never
 * publish (run creation's `queued` events).
 */
export class RunEvents extends Effect.Service<RunEvents>()("assay/RunEvents", {
  scoped: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const settings = yield* RunEventsSettings
    const pg = PgClient.TypeId in sql ? (sql as PgClient.PgClient) : undefined

    const inbox = yield* Effect.acquireRelease(Queue.unbounded<Signal>(), Queue.shutdown)
    const subscribers = new Map<string, Set<Subscriber>>()
    let subscriberCount = 0

    const [start] = yield* sql<{ max: string }>`
      select coalesce(max(id), 0)::text as max from assay.run_cell_event`.pipe(orDieSql)
    // the sequencer's state; only its fiber writes it
    let mark = BigInt(start!.max)
    const pending = new Map<bigint, { readonly event: CellEvent; readonly at: number }>()
    const waiters: Array<Deferred.Deferred<bigint>> = []
    let readRequested = false
    let nextPollAt = 0
    let nextGapReadAt = 0

    const lowestPending = () => {
      let lowest: bigint | null = null
      for (const id of pending.keys()) if (lowest === null || id < lowest) lowest = id
      return lowest
    }

    // recent id ranges given up as holes, to tell a late commit from a duplicate publish
    const skipped: Array<readonly [bigint, bigint]> = []

    const hold = (event: CellEvent, at: number) => {
      const id = BigInt(event.id)
      if (id > mark) {
        if (!pending.has(id)) pending.set(id, { event, at })
        return Effect.void
      }
      return skipped.some(([from, to]) => id >= from && id <= to)
        ? Effect.logWarning("run event committed after its id was given up; live streams skip it").pipe(
            Effect.annotateLogs({ eventId: event.id, runId: event.runId })
          )
        : Effect.void
    }

    /** Committed events above the mark (and below `below`), into `pending`. */
    const readAbove = (below: bigint | null, at: number) =>
      Effect.gen(function* () {
        let from = mark
        while (true) {
          const rows = yield* sql<CellEventRow>`
            select id::text as id, run_id, run_cell_id, event_type, payload, created_at
            from assay.run_cell_event
            where id > ${from.toString()}::bigint
              ${below === null ? sql`` : sql`and id < ${below.toString()}::bigint`}
            order by run_cell_event.id
            limit ${READ_BATCH}`.pipe(orDieSql)
          for (const row of rows) {
            const id = BigInt(row.id)
            if (!pending.has(id)) pending.set(id, { event: toCellEvent(row), at })
          }
          if (rows.length < READ_BATCH) return
          from = BigInt(rows[rows.length - 1]!.id)
        }
      })

    const deliver = (events: ReadonlyArray<CellEvent>) =>
      Effect.gen(function* () {
        for (const event of events) {
          const set = subscribers.get(event.runId)
          if (set === undefined) continue
          for (const subscriber of set) {
            if (Option.getOrElse(subscriber.queue.unsafeSize(), () => 0) >= MAX_BACKLOG) {
              set.delete(subscriber)
              yield* Queue.shutdown(subscriber.queue)
              yield* Effect.logWarning("run event subscriber fell too far behind; its stream ends").pipe(
                Effect.annotateLogs({ runId: event.runId })
              )
            } else {
              subscriber.queue.unsafeOffer(event)
            }
          }
        }
      })

    /** Moves the mark over every held event that is next in sequence, and over holes that timed out. */
    const advance = (now: number) =>
      Effect.gen(function* () {
        const ready: Array<CellEvent> = []
        while (pending.size > 0) {
          const next = pending.get(mark + 1n)
          if (next !== undefined) {
            pending.delete(mark + 1n)
            mark += 1n
            ready.push(next.event)
            continue
          }
          const lowest = lowestPending()!
          if (now - pending.get(lowest)!.at < settings.gapTimeoutMs) break
          yield* Effect.logDebug("run event ids never committed; skipping them").pipe(
            Effect.annotateLogs({ from: (mark + 1n).toString(), to: (lowest - 1n).toString() })
          )
          skipped.push([mark + 1n, lowest - 1n])
          if (skipped.length > 100) skipped.shift()
          mark = lowest - 1n
        }
        yield* deliver(ready)
      })

    const step = Effect.gen(function* () {
      const now0 = yield* Clock.currentTimeMillis
      const lowest0 = lowestPending()
      const deadlines = [
        ...(lowest0 === null ? [] : [nextGapReadAt, pending.get(lowest0)!.at + settings.gapTimeoutMs]),
        ...(subscriberCount > 0 ? [nextPollAt] : [])
      ]
      const wait = deadlines.length === 0 ? null : Math.max(0, Math.min(...deadlines) - now0)
      const first =
        wait === null
          ? Option.some(yield* Queue.take(inbox))
          : yield* Effect.timeoutOption(Queue.take(inbox), wait)
      const signals = [...Option.toArray(first), ...(yield* Queue.takeAll(inbox))]
      const now = yield* Clock.currentTimeMillis
      for (const signal of signals) {
        switch (signal._tag) {
          case "Published":
            for (const event of signal.events) yield* hold(event, now)
            break
          case "Announced":
            if (signal.maxId > mark) readRequested = true
            break
          case "Sync":
            waiters.push(signal.done)
            readRequested = true
            break
        }
      }
      if (subscriberCount > 0 && now >= nextPollAt) readRequested = true
      const lowest = lowestPending()
      if (readRequested) {
        yield* readAbove(null, now)
        readRequested = false
        nextPollAt = now + settings.pollIntervalMs
        nextGapReadAt = now + GAP_RECHECK_MS
      } else if (lowest !== null && lowest > mark + 1n && now >= nextGapReadAt) {
        yield* readAbove(lowest, now)
        nextGapReadAt = now + GAP_RECHECK_MS
      }
      yield* advance(yield* Clock.currentTimeMillis)
      for (const done of waiters.splice(0)) yield* Deferred.succeed(done, mark)
    })

    yield* step.pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("run event sequencer failed; retrying", cause).pipe(
          Effect.zipRight(Effect.sleep("1 second"))
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )

    if (pg !== undefined) {
      yield* pg.listen(RUN_EVENTS_CHANNEL).pipe(
        Stream.runForEach((payload) => {
          const maxId = parseId(payload)
          return maxId === null ? Effect.void : Queue.offer(inbox, { _tag: "Announced", maxId })
        }),
        Effect.tapErrorCause((cause) =>
          Effect.logWarning("run event listener failed; listening again", cause)
        ),
        Effect.retry(Schedule.spaced("1 second")),
        Effect.forkScoped
      )
    }

    /** Reads the table above the mark now; answers the mark once everything committed so far is sequenced. */
    const sync = Effect.flatMap(Deferred.make<bigint>(), (done) =>
      Effect.zipRight(Queue.offer(inbox, { _tag: "Sync", done }), Deferred.await(done))
    )

    /**
     * Events that committed, in any order; call after the transaction that wrote them commits. Events whose ids
     * are already sequenced are ignored, so publishing twice is harmless.
     */
    const publish = Effect.fn("RunEvents.publish")(function* (events: ReadonlyArray<CommittedEvent>) {
      if (events.length > 0)
        yield* Queue.offer(inbox, { _tag: "Published", events: events.map(fromCommitted) })
    })

    /**
     * Tells other processes that events up to `maxId` committed: one call per committed batch, after `publish`.
     * A failure is logged, not raised: the listeners' periodic read finds the events anyway.
     */
    const notify = Effect.fn("RunEvents.notify")(function* (maxId: bigint | string) {
      if (pg === undefined) return
      yield* sql`select pg_notify(${RUN_EVENTS_CHANNEL}, ${String(maxId)})`.pipe(
        Effect.catchAll((error) => Effect.logWarning("run events NOTIFY failed", error))
      )
    })

    const replayPage = (runId: RunId, after: bigint, ceiling: bigint) =>
      sql<CellEventRow>`
        select id::text as id, run_id, run_cell_id, event_type, payload, created_at
        from assay.run_cell_event
        where run_id = ${runId} and id > ${after.toString()}::bigint and id <= ${ceiling.toString()}::bigint
        order by run_cell_event.id
        limit ${READ_BATCH}`.pipe(orDieSql)

    /**
     * The run's events after `afterId` (all of them for null) from the table, then live, in id order, each once.
     * The subscription is taken before the table is read, so nothing falls between the two; it is released when
     * the stream ends or is interrupted. Ownership is the caller's to check.
     */
    const subscribe = (runId: RunId, afterId: bigint | null): Stream.Stream<CellEvent> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const subscriber: Subscriber = { runId, queue: yield* Queue.unbounded<CellEvent>() }
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              const set = subscribers.get(runId) ?? new Set()
              set.add(subscriber)
              subscribers.set(runId, set)
              subscriberCount += 1
            }),
            () =>
              Effect.zipRight(
                Effect.sync(() => {
                  const set = subscribers.get(runId)
                  set?.delete(subscriber)
                  if (set?.size === 0) subscribers.delete(runId)
                  subscriberCount -= 1
                }),
                Queue.shutdown(subscriber.queue)
              )
          )
          const ceiling = yield* sync
          const after = afterId ?? 0n
          const replay = Stream.paginateChunkEffect(after, (from) =>
            from >= ceiling
              ? Effect.succeed([Chunk.empty<CellEvent>(), Option.none<bigint>()] as const)
              : Effect.map(replayPage(runId, from, ceiling), (rows) => {
                  const last = rows[rows.length - 1]
                  return [
                    Chunk.fromIterable(rows.map(toCellEvent)),
                    rows.length < READ_BATCH || last === undefined
                      ? Option.none()
                      : Option.some(BigInt(last.id))
                  ] as const
                })
          )
          let highest = after > ceiling ? after : ceiling
          const live = Stream.fromQueue(subscriber.queue).pipe(
            Stream.filter((event) => {
              const id = BigInt(event.id)
              if (id <= highest) return false
              highest = id
              return true
            })
          )
          return Stream.concat(replay, live)
        })
      )

    return {
      publish,
      notify,
      subscribe,
      /** The highest event id sequenced in this process: everything at or below it has committed. */
      lastEventId: Effect.sync(() => mark.toString()),
      /** Open subscriptions (streams), for diagnostics and tests. */
      subscriberCount: Effect.sync(() => subscriberCount)
    } as const
  })
}) {}
