import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Chunk, Clock, Context, DateTime, Deferred, Effect, Option, Runtime, Schedule, Stream } from "effect"
import { CellEvent, type CellEventType } from "../domain/Cell.ts"
import type { RunCellId, RunId } from "../domain/Ids.ts"
import { orDieSql } from "./SqlFailure.ts"
import { throttled } from "./Throttled.ts"

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

/** An event row's `created_at` (the row aliased `alias`) as epoch milliseconds: a number, no date parsing. */
export const createdAtMs = (sql: SqlClient.SqlClient, alias: string) =>
  sql.literal(`(extract(epoch from ${alias}.created_at) * 1000)::float8`)

/*
 * Events built from our own rows (or from values we just wrote) skip the schema check: a large run's events pass
 * through here by the ten thousand, and validating each costs more than delivering it.
 */
export const toCellEvent = (row: CellEventRow): CellEvent =>
  new CellEvent(
    {
      id: row.id,
      runId: row.run_id as RunId,
      cellId: row.run_cell_id as RunCellId,
      type: row.event_type,
      payload: row.payload,
      createdAt: DateTime.unsafeFromDate(row.created_at)
    },
    true
  )

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
    : new CellEvent(
        {
          id: event.id,
          runId: event.runId as RunId,
          cellId: event.cellId as RunCellId,
          type: event.type as CellEventType,
          payload: event.payload,
          createdAt: DateTime.isDateTime(event.createdAt)
            ? event.createdAt
            : DateTime.unsafeFromDate(event.createdAt)
        },
        true
      )

/**
 * Rows per read of the table, and events per replay page. A read on a busy pool waits its turn for a
 * connection, and a new subscriber reads the pages of its run one after another: large pages keep its catch-up
 * (and the read of events committed but not published here, as another process's) to a few round trips.
 */
const READ_BATCH = 5000
/** While a hole in the id sequence holds events back, the table is re-read this often to fill it. */
const GAP_RECHECK_MS = 50
/**
 * A subscriber with this many live events not yet taken is dropped (its stream ends); it resumes from the table
 * by its last id. Its replay does not count: that is read page by page as the subscriber takes it.
 */
const MAX_BACKLOG = 10_000
/** Replay pages kept for subscribers that follow the same run from the same place. */
const REPLAY_PAGES_CACHED = 8
/**
 * A run's subscribers are handed its new events at most this often. An engine at full speed commits results
 * and claims hundreds of times a second; one socket write per commit and subscriber cost more than the bytes
 * (tens of microseconds each: with 200 subscribers, most of the server's time). Events that find the run's last
 * delivery older than this go out at once, so a quiet run's events wait for nothing.
 */
const DELIVERY_INTERVAL_MS = 20
/**
 * Other processes hear of this one's commits by NOTIFY at most this often (the highest id so far): at top speed
 * the engine commits hundreds of batches a second, and a NOTIFY statement for each was a third of its statements.
 */
const NOTIFY_INTERVAL_MS = 20
/** Replay reads running at once: the engine needs the pool's other connections. */
const REPLAY_READS = 2

type Signal =
  | { readonly _tag: "Published"; readonly events: ReadonlyArray<CellEvent> }
  | { readonly _tag: "Announced"; readonly maxId: bigint }
  | { readonly _tag: "Join"; readonly subscriber: Subscriber; readonly done: Deferred.Deferred<Admission> }
  | { readonly _tag: "Read"; readonly events: ReadonlyArray<CellEvent> | null }

/**
 * One subscription's place in the live feed: the batches it has not taken yet, each a chunk shared by every
 * subscriber of the run. Plain state and a callback rather than a Queue: the sequencer hands a batch to every
 * subscriber of a run, and waking a fiber per subscriber per batch would cost more than the delivery itself.
 */
class Subscriber {
  /** Joining until the sequencer adds it to the feed; closed once released or dropped. */
  state: "joining" | "live" | "closed" = "joining"
  /** Live events offered and not yet taken. */
  backlog = 0
  private chunks: Array<Chunk.Chunk<CellEvent>> = []
  private wake: (() => void) | undefined = undefined
  constructor(readonly runId: string) {}

  offer(chunk: Chunk.Chunk<CellEvent>) {
    this.chunks.push(chunk)
    this.backlog += Chunk.size(chunk)
    this.signal()
  }

  /** Everything offered since the last call, oldest first. */
  takeAll() {
    const chunks = this.chunks
    this.chunks = []
    this.backlog = 0
    return chunks
  }

  /** Resolves once a batch is waiting or the subscription has closed. */
  ready() {
    return this.chunks.length > 0 || this.state === "closed"
      ? Promise.resolve()
      : new Promise<void>((resolve) => (this.wake = resolve))
  }

  close() {
    this.state = "closed"
    this.chunks = []
    this.backlog = 0
    this.signal()
  }

  private signal() {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

/** A subscription read directly, without a fiber per chunk (see `openSubscription`). */
export interface Subscription {
  /**
   * The next chunks of events in order: a replay page, or every live batch that has arrived (waiting for one).
   * None once the subscription has ended: closed, or dropped for falling behind. One call at a time.
   */
  readonly next: () => Promise<ReadonlyArray<Chunk.Chunk<CellEvent>>>
  /** Leaves the feed; a pending `next` answers none. Safe to call twice. */
  readonly close: () => void
}

// what opens a stream's subscription directly, for the streams `RunEvents.subscribe` returns
const openers = new WeakMap<Stream.Stream<CellEvent>, () => Subscription>()

/**
 * The subscription behind a stream from `RunEvents.subscribe`, opened for reading directly (its chunks are the
 * ones the stream would emit, and the stream itself is not run); undefined for any other stream. The SSE route
 * writes a run's events to hundreds of clients at once this way.
 */
export const openSubscription = (stream: Stream.Stream<CellEvent>): Subscription | undefined =>
  openers.get(stream)?.()

const parseId = (text: string): bigint | null => (/^[0-9]{1,19}$/.test(text) ? BigInt(text) : null)

/**
 * A run's events in (from, upTo], as one read of the table found them. A full page (READ_BATCH rows) ends at its
 * last event and holds for any reader; a short one is complete only up to the mark it was read under.
 */
interface ReplayPage {
  readonly events: Chunk.Chunk<CellEvent>
  readonly full: boolean
  readonly upTo: bigint
}

/**
 * A run's events sequenced while subscribers waited to join its feed, from `from` (exclusive) up to the mark
 * they were admitted at: how events committed but not published here (another process's, a lost NOTIFY) reach
 * the sequencer when they are read for the join. Those subscribers replay this part from here rather than from
 * the table. Its pages are cut at fixed positions and kept, so subscribers that start at the same place share
 * them.
 */
class Tail {
  private readonly pages = new Map<number, Chunk.Chunk<CellEvent>>()
  constructor(
    readonly from: bigint,
    readonly events: ReadonlyArray<CellEvent>
  ) {}

  /** Where the events after `id` start. */
  indexAfter(id: bigint) {
    let low = 0
    let high = this.events.length
    while (low < high) {
      const middle = (low + high) >> 1
      if (BigInt(this.events[middle]!.id) <= id) low = middle + 1
      else high = middle
    }
    return low
  }

  /** The events from `index` to the end of its page, and where the next page starts. */
  page(index: number) {
    const end = Math.min(this.events.length, (Math.floor(index / READ_BATCH) + 1) * READ_BATCH)
    if (index % READ_BATCH !== 0) return [Chunk.unsafeFromArray(this.events.slice(index, end)), end] as const
    let page = this.pages.get(index)
    if (page === undefined)
      this.pages.set(index, (page = Chunk.unsafeFromArray(this.events.slice(index, end))))
    return [page, end] as const
  }
}

/** Where a subscriber's feed starts, and what it replays from memory rather than from the table. */
interface Admission {
  readonly ceiling: bigint
  readonly tail: Tail
}

/**
 * Live run events. Event ids come from one identity sequence, but transactions commit in any order (worker
 * fibers here, other processes), so ids do not arrive in order. One sequencer fiber per process turns them into
 * a feed in strict id order: it keeps a high-water mark (every id at or below it has been delivered, or was
 * given up as never committing) and holds back events above a hole until the hole fills, from a later
 * `publish` or from the table, or until `gapTimeoutMs` passes (a rolled-back insert leaves a hole for good).
 * Because the feed is ordered, a subscriber replays the table up to the mark and then takes the feed above it,
 * and an SSE client resuming after id N misses nothing: no event at or below N can still be on its way. (What
 * was sequenced while it waited to join, it replays from memory: see `Tail`.)
 *
 * Other processes' events arrive by NOTIFY (real Postgres only; PGlite is one process) and a read of the
 * table above the mark; a periodic read while anyone listens covers a lost NOTIFY and writers that do not
 * publish. Reads run beside the sequencer, one at a time, and report back:
 * on a busy pool a read can take a while, and published events do not wait for it. A subscriber joins once a
 * read that started after it asked has reported, so its replay has what committed before it, however unpublished.
 *
 * The feed hands a run's newly sequenced events to its subscribers as one chunk, the same object for all of them,
 * so work done per chunk downstream (the SSE encoding) can be done once; replay pages are shared the same way.
 * A run's chunks go out at most every DELIVERY_INTERVAL_MS: one write per subscriber and interval, not per commit.
 */
export class RunEvents extends Effect.Service<RunEvents>()("assay/RunEvents", {
  scoped: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const settings = yield* RunEventsSettings
    const pg = PgClient.TypeId in sql ? (sql as PgClient.PgClient) : undefined
    const scope = yield* Effect.scope

    // The sequencer's inbox: signals wait in an array, and `wake` tells the sequencer some are there. (A
    // `Queue.take` raced against the sequencer's timeout loses the item it was handed when the timeout
    // interrupts it in between: a whole published batch, held back until a read of the table found it.)
    const inbox: Array<Signal> = []
    const wake = yield* Effect.makeLatch(false)
    let inboxClosed = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        inboxClosed = true
        inbox.length = 0
      })
    )
    /** Hands the sequencer a signal; once the service is closed, interrupts the sender (nobody will answer). */
    const send = (signal: Signal) =>
      Effect.suspend(() => {
        if (inboxClosed) return Effect.interrupt
        inbox.push(signal)
        return wake.open
      })
    const subscribers = new Map<string, Set<Subscriber>>()
    let subscriberCount = 0

    const [start] = yield* sql<{ max: string }>`
      select coalesce(max(id), 0)::text as max from assay.run_cell_event`.pipe(orDieSql)
    // the sequencer's state; only its fiber writes it
    let mark = BigInt(start!.max)
    const pending = new Map<bigint, { readonly event: CellEvent; readonly at: number }>()
    // by run: events sequenced (at or below the mark) and not yet handed to its subscribers, and when it was
    // last handed some (see `flush`)
    const outbox = new Map<string, Array<CellEvent>>()
    const lastDelivery = new Map<string, number>()
    // subscribers waiting to join the feed, for a read of the table to start, then for it to end; kept outside
    // a step so that a failed step leaves none behind
    type Joiner = { readonly subscriber: Subscriber; readonly done: Deferred.Deferred<Admission> }
    let joining: Array<Joiner> = []
    let joiningRead: Array<Joiner> = []
    let joiningNow: Array<Joiner> = []
    // by run: the events sequenced since its first waiting subscriber asked, while any waits (see `Tail`)
    const tails = new Map<string, { from: bigint; events: Array<CellEvent> }>()
    let readRequested = false
    // a read of the table runs beside the sequencer (it must not hold back published events) and reports back
    let readRunning: "full" | "gap" | null = null
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

    /**
     * Committed events above `from` (and below `below`), in id order. Without `below`, those committed when the
     * read began and maybe some more: a read that took every new page would chase a busy engine for as long as it
     * outran the read, and hold the sequencer's next read back all that time.
     */
    const readAbove = (from: bigint, below: bigint | null) =>
      Effect.gen(function* () {
        const events: Array<CellEvent> = []
        let after = from
        let upTo = below
        while (true) {
          const rows = yield* sql<CellEventRow>`
            select id::text as id, run_id, run_cell_id, event_type, payload, created_at
            from assay.run_cell_event
            where id > ${after.toString()}::bigint
              ${upTo === null ? sql`` : sql`and id < ${upTo.toString()}::bigint`}
            order by run_cell_event.id
            limit ${READ_BATCH}`.pipe(orDieSql)
          for (const row of rows) events.push(toCellEvent(row))
          if (rows.length < READ_BATCH) return events
          after = BigInt(rows[rows.length - 1]!.id)
          if (upTo === null) {
            // the newest id now is at least that of everything committed when the read began
            const [newest] = yield* sql<{ max: string }>`
              select coalesce(max(id), 0)::text as max from assay.run_cell_event`.pipe(orDieSql)
            upTo = BigInt(newest!.max) + 1n
          }
        }
      })

    /** Starts a read above the mark; its events come back as a `Read` signal (none if it failed). */
    const startRead = (below: bigint | null) =>
      readAbove(mark, below).pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("run event read failed; reading again", cause).pipe(
            Effect.zipRight(Effect.sleep("1 second")),
            Effect.as(null)
          )
        ),
        Effect.flatMap((events) => send({ _tag: "Read", events })),
        Effect.forkIn(scope)
      )

    /** Takes a subscriber out of the feed; its subscription ends. */
    const leave = (subscriber: Subscriber) => {
      if (subscriber.state === "live") {
        const set = subscribers.get(subscriber.runId)
        set?.delete(subscriber)
        if (set?.size === 0) subscribers.delete(subscriber.runId)
        subscriberCount -= 1
      }
      subscriber.close()
    }

    /** One chunk per run, shared by the run's subscribers; a subscriber already too far behind is dropped. */
    const deliver = (byRun: ReadonlyMap<string, ReadonlyArray<CellEvent>>) =>
      Effect.gen(function* () {
        for (const [runId, batch] of byRun) {
          const runSubscribers = subscribers.get(runId)
          if (runSubscribers === undefined) continue
          const chunk = Chunk.unsafeFromArray(batch)
          for (const subscriber of runSubscribers) {
            if (subscriber.backlog >= MAX_BACKLOG) {
              leave(subscriber)
              yield* Effect.logWarning("run event subscriber fell too far behind; its stream ends").pipe(
                Effect.annotateLogs({ runId })
              )
            } else {
              subscriber.offer(chunk)
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
            tails.get(next.event.runId)?.events.push(next.event)
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
        for (const event of ready) {
          if (!subscribers.has(event.runId)) continue
          const held = outbox.get(event.runId)
          if (held === undefined) outbox.set(event.runId, [event])
          else held.push(event)
        }
      })

    /**
     * Hands each run's sequenced events to its subscribers, at most once per DELIVERY_INTERVAL_MS per run (all of
     * them when `all`): see `outbox`.
     */
    const flush = (now: number, all: boolean) =>
      Effect.suspend(() => {
        const due = new Map<string, ReadonlyArray<CellEvent>>()
        for (const [runId, events] of outbox) {
          if (!all && now - (lastDelivery.get(runId) ?? 0) < DELIVERY_INTERVAL_MS) continue
          due.set(runId, events)
          outbox.delete(runId)
          lastDelivery.set(runId, now)
        }
        for (const [runId, at] of lastDelivery) {
          if (!outbox.has(runId) && now - at >= DELIVERY_INTERVAL_MS) lastDelivery.delete(runId)
        }
        return due.size === 0 ? Effect.void : deliver(due)
      })

    /** When the next run's held events are due (none: null). */
    const nextFlushAt = () => {
      let at: number | null = null
      for (const runId of outbox.keys()) {
        const due = (lastDelivery.get(runId) ?? 0) + DELIVERY_INTERVAL_MS
        if (at === null || due < at) at = due
      }
      return at
    }

    /**
     * Subscribers join after this step's delivery: their feed starts right above the mark they are answered,
     * which is where their replay of the table ends.
     */
    const admit = (joiners: ReadonlyArray<Joiner>, now: number) =>
      Effect.gen(function* () {
        // what is sequenced and held lies at or below the mark they get: the others take it before they join
        if (joiners.length > 0) yield* flush(now, true)
        const admitted = new Map<string, Tail>()
        for (const { subscriber, done } of joiners) {
          if (subscriber.state === "joining") {
            subscriber.state = "live"
            const set = subscribers.get(subscriber.runId)
            if (set === undefined) subscribers.set(subscriber.runId, new Set([subscriber]))
            else set.add(subscriber)
            subscriberCount += 1
          }
          let tail = admitted.get(subscriber.runId)
          if (tail === undefined) {
            const recorded = tails.get(subscriber.runId) ?? { from: mark, events: [] }
            admitted.set(subscriber.runId, (tail = new Tail(recorded.from, recorded.events.slice())))
          }
          yield* Deferred.succeed(done, { ceiling: mark, tail })
        }
        // a run's recording ends with the last subscriber waiting to join it
        const waiting = new Set([...joining, ...joiningRead, ...joiningNow].map((j) => j.subscriber.runId))
        for (const runId of tails.keys()) if (!waiting.has(runId)) tails.delete(runId)
      })

    const step = Effect.gen(function* () {
      const now0 = yield* Clock.currentTimeMillis
      const lowest0 = lowestPending()
      const flushAt = nextFlushAt()
      const deadlines = [
        ...(lowest0 === null ? [] : [nextGapReadAt, pending.get(lowest0)!.at + settings.gapTimeoutMs]),
        ...(subscriberCount > 0 ? [nextPollAt] : []),
        ...(flushAt === null ? [] : [flushAt])
      ]
      const wait = deadlines.length === 0 ? null : Math.max(0, Math.min(...deadlines) - now0)
      if (inbox.length === 0) {
        if (wait === null) yield* wake.await
        else yield* Effect.timeoutOption(wake.await, wait)
      }
      // closed before the signals are taken: one sent after this wakes the next step
      yield* wake.close
      const signals = inbox.splice(0)
      const now = yield* Clock.currentTimeMillis
      for (const signal of signals) {
        switch (signal._tag) {
          case "Published":
            for (const event of signal.events) yield* hold(event, now)
            break
          case "Announced":
            if (signal.maxId > mark) readRequested = true
            break
          case "Join":
            joining.push(signal)
            readRequested = true
            if (!tails.has(signal.subscriber.runId))
              tails.set(signal.subscriber.runId, { from: mark, events: [] })
            break
          case "Read":
            if (signal.events === null) {
              // failed: its joiners wait for the next one
              joining = [...joiningRead, ...joining]
              if (readRunning === "full") readRequested = true
            } else {
              for (const event of signal.events) yield* hold(event, now)
              // everything committed before they asked is now in `pending` or at or below the mark
              joiningNow = [...joiningNow, ...joiningRead]
            }
            joiningRead = []
            readRunning = null
            break
        }
      }
      const sequencedAt = yield* Clock.currentTimeMillis
      yield* advance(sequencedAt)
      yield* flush(sequencedAt, false)
      const admitted = joiningNow
      joiningNow = []
      yield* admit(admitted, sequencedAt)
      // a read starts from the mark as it is now, so it reads nothing this step has sequenced
      if (subscriberCount > 0 && now >= nextPollAt) readRequested = true
      const lowest = lowestPending()
      if (readRunning === null && readRequested) {
        readRunning = "full"
        joiningRead = joining
        joining = []
        readRequested = false
        nextPollAt = now + settings.pollIntervalMs
        nextGapReadAt = now + GAP_RECHECK_MS
        yield* startRead(null)
      } else if (readRunning === null && lowest !== null && lowest > mark + 1n && now >= nextGapReadAt) {
        readRunning = "gap"
        nextGapReadAt = now + GAP_RECHECK_MS
        yield* startRead(lowest)
      }
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
          return maxId === null ? Effect.void : send({ _tag: "Announced", maxId })
        }),
        Effect.tapErrorCause((cause) =>
          Effect.logWarning("run event listener failed; listening again", cause)
        ),
        Effect.retry(Schedule.spaced("1 second")),
        Effect.forkScoped
      )
    }

    /**
     * Events that committed, in any order; call after the transaction that wrote them commits. Events whose ids
     * are already sequenced are ignored, so publishing twice is harmless.
     */
    const publish = Effect.fn("RunEvents.publish")(function* (events: ReadonlyArray<CommittedEvent>) {
      if (events.length > 0) yield* send({ _tag: "Published", events: events.map(fromCommitted) })
    })

    // the highest id committed and not yet announced to other processes
    let unannounced: bigint | null = null
    const announce =
      pg === undefined
        ? Effect.void
        : yield* throttled(
            NOTIFY_INTERVAL_MS,
            Effect.suspend(() => {
              const maxId = unannounced
              unannounced = null
              return maxId === null
                ? Effect.void
                : sql`select pg_notify(${RUN_EVENTS_CHANNEL}, ${maxId.toString()})`.pipe(
                    Effect.asVoid,
                    Effect.catchAll((error) => Effect.logWarning("run events NOTIFY failed", error))
                  )
            })
          )

    /**
     * Tells other processes that events up to `maxId` committed: call after `publish`, once per committed batch.
     * The first NOTIFY goes out at once, later ones at most every NOTIFY_INTERVAL_MS with the highest id so far,
     * sent beside the caller. A failure is logged, not raised: the listeners' periodic read finds the events anyway.
     */
    const notify = (maxId: bigint | string) =>
      Effect.suspend(() => {
        const id = BigInt(maxId)
        if (unannounced === null || id > unannounced) unannounced = id
        return announce
      })

    /**
     * A committed batch of events, in id order: to this process's subscribers, then one NOTIFY (its highest id)
     * for the others. Never per cell.
     */
    const publishCommitted = (events: ReadonlyArray<CommittedEvent>) =>
      events.length === 0
        ? Effect.void
        : Effect.zipRight(publish(events), notify(events[events.length - 1]!.id))

    // Replay pages by run and starting id, least recently used first: subscribers that open a run together
    // read each page once between them, and it reaches all of them as one shared chunk.
    const pages = new Map<string, ReplayPage>()
    const pageReads = new Map<string, Deferred.Deferred<void>>()
    const replayReads = yield* Effect.makeSemaphore(REPLAY_READS)

    const cachedPage = (key: string, ceiling: bigint) => {
      const page = pages.get(key)
      if (page === undefined || (!page.full && page.upTo < ceiling)) return undefined
      pages.delete(key)
      pages.set(key, page)
      return page
    }

    const readPage = (key: string, runId: RunId, from: bigint, ceiling: bigint) =>
      replayReads.withPermits(1)(
        sql<CellEventRow>`
          select id::text as id, run_id, run_cell_id, event_type, payload, created_at
          from assay.run_cell_event
          where run_id = ${runId} and id > ${from.toString()}::bigint and id <= ${ceiling.toString()}::bigint
          order by run_cell_event.id
          limit ${READ_BATCH}`.pipe(
          orDieSql,
          Effect.map((rows) => {
            const full = rows.length === READ_BATCH
            const page: ReplayPage = {
              events: Chunk.unsafeFromArray(rows.map(toCellEvent)),
              full,
              upTo: full ? BigInt(rows[rows.length - 1]!.id) : ceiling
            }
            const known = pages.get(key)
            if (known === undefined || known.full || known.upTo < page.upTo) {
              pages.delete(key)
              pages.set(key, page)
              if (pages.size > REPLAY_PAGES_CACHED) pages.delete(pages.keys().next().value!)
            }
          })
        )
      )

    /**
     * The run's events in (from, ceiling], at most READ_BATCH of them, and where the next page starts. One read
     * per page at a time: a reader finding the page being read waits for it. The read runs in the service's
     * scope, so a subscriber that goes away mid-read leaves it to the others.
     */
    const replayPage = (
      runId: RunId,
      from: bigint,
      ceiling: bigint
    ): Effect.Effect<readonly [Chunk.Chunk<CellEvent>, Option.Option<bigint>]> =>
      Effect.suspend(() => {
        const key = `${runId}:${from}`
        const page = cachedPage(key, ceiling)
        if (page !== undefined) {
          const last = Chunk.last(page.events)
          const lastId = Option.isSome(last) ? BigInt(last.value.id) : from
          const events =
            lastId <= ceiling
              ? page.events
              : Chunk.filter(page.events, (event) => BigInt(event.id) <= ceiling)
          const next = page.full && lastId < ceiling ? Option.some(lastId) : Option.none()
          return Effect.succeed([events, next] as const)
        }
        const underway = pageReads.get(key)
        if (underway !== undefined)
          return Effect.zipRight(Deferred.await(underway), replayPage(runId, from, ceiling))
        return Effect.gen(function* () {
          const done = yield* Deferred.make<void>()
          pageReads.set(key, done)
          yield* readPage(key, runId, from, ceiling).pipe(
            Effect.exit,
            Effect.flatMap((exit) => {
              pageReads.delete(key)
              return Deferred.done(done, exit)
            }),
            Effect.forkIn(scope)
          )
          yield* Deferred.await(done)
          return yield* replayPage(runId, from, ceiling)
        })
      })

    const run = Runtime.runPromise(yield* Effect.runtime<never>())

    /** Joins the feed; answers the mark the subscriber's feed starts above, and the run's tail up to it. */
    const join = (subscriber: Subscriber) =>
      Effect.flatMap(Deferred.make<Admission>(), (done) =>
        Effect.zipRight(send({ _tag: "Join", subscriber, done }), Deferred.await(done))
      )

    /**
     * The run's events after `afterId` (all of them for null): replayed up to the mark answered when the
     * subscriber joins the feed (in the sequencer's step, after that step's delivery, so the replay ends where the
     * feed begins), from the table and then from the run's tail, then live.
     */
    const open = (runId: RunId, afterId: bigint | null): Subscription => {
      const subscriber = new Subscriber(runId)
      const after = afterId ?? 0n
      let ceiling: bigint | undefined
      // the replay: from the table up to the tail, then the tail from memory (let go once replayed)
      let replayFrom: bigint | null = after
      let tail: Tail | null = null
      let tailIndex = 0
      const next = async (): Promise<ReadonlyArray<Chunk.Chunk<CellEvent>>> => {
        if (ceiling === undefined) {
          const admission = await run(join(subscriber))
          ceiling = admission.ceiling
          tail = admission.tail
          tailIndex = tail.indexAfter(after)
        }
        const until = ceiling
        while (replayFrom !== null && subscriber.state !== "closed") {
          const tableEnd = tail !== null && tail.from < until ? tail.from : until
          if (replayFrom >= tableEnd) replayFrom = null
          else {
            const [events, from] = await run(replayPage(runId, replayFrom, tableEnd))
            replayFrom = Option.getOrNull(from)
            if (!Chunk.isEmpty(events)) return [events]
          }
        }
        if (tail !== null && tailIndex < tail.events.length && subscriber.state !== "closed") {
          const [events, end] = tail.page(tailIndex)
          tailIndex = end
          return [events]
        }
        tail = null
        while (subscriber.state !== "closed") {
          const chunks = subscriber.takeAll()
          // a client may resume from beyond this process's mark (it followed another process further)
          const fresh =
            after > until
              ? chunks
                  .map((chunk) => Chunk.filter(chunk, (event) => BigInt(event.id) > after))
                  .filter((chunk) => !Chunk.isEmpty(chunk))
              : chunks
          if (fresh.length > 0) return fresh
          await subscriber.ready()
        }
        return []
      }
      return { next, close: () => leave(subscriber) }
    }

    /**
     * The run's events after `afterId` (all of them for null) from the table, then live, in id order, each once.
     * The subscription is released when the stream ends or is interrupted; it ends by itself when the subscriber
     * falls too far behind (MAX_BACKLOG). Ownership is the caller's to check. `openSubscription` reads the same
     * subscription without running the stream.
     */
    const subscribe = (runId: RunId, afterId: bigint | null): Stream.Stream<CellEvent> => {
      const stream = Stream.unwrapScoped(
        Effect.map(
          Effect.acquireRelease(
            Effect.sync(() => open(runId, afterId)),
            (subscription) => Effect.sync(subscription.close)
          ),
          (subscription) =>
            Stream.repeatEffectChunkOption(
              Effect.flatMap(Effect.promise(subscription.next), (chunks) =>
                chunks.length === 0
                  ? Effect.fail(Option.none())
                  : Effect.succeed(
                      chunks.length === 1 ? chunks[0]! : Chunk.flatten(Chunk.unsafeFromArray(chunks))
                    )
              )
            )
        )
      )
      openers.set(stream, () => open(runId, afterId))
      return stream
    }

    return {
      publish,
      notify,
      publishCommitted,
      subscribe,
      /** The highest event id sequenced in this process: everything at or below it has committed. */
      lastEventId: Effect.sync(() => mark.toString()),
      /** Open subscriptions (streams) on the live feed, for diagnostics and tests. */
      subscriberCount: Effect.sync(() => subscriberCount)
    } as const
  })
}) {}
