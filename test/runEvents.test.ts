import { HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { expect, it, layer } from "@effect/vitest"
import { Chunk, Context, DateTime, Deferred, Duration, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CellEvent } from "../src/domain/Cell.ts"
import { LOCAL_USER_ID, type RunCellId, type RunId } from "../src/domain/Ids.ts"
import { eventStreamResponse } from "../src/http/events.ts"
import * as Database from "../src/layers/Database.ts"
import * as Scheduler from "../src/layers/Scheduler.ts"
import { Routes } from "../src/layers/Http.ts"
import { ServicesLive } from "../src/layers/Services.ts"
import {
  type CellEventRow,
  openSubscription,
  RUN_EVENTS_CHANNEL,
  RunEvents,
  RunEventsSettings,
  type RunEventsSettingsShape,
  toCellEvent
} from "../src/services/RunEvents.ts"
import { insertEvent, seedRun } from "./support/fixtures.ts"
import { testConfig } from "./support/TestConfig.ts"
import { adminUrl, testDatabases } from "./support/TestDatabase.ts"
import { BaseUrl, testServer, type TestDb } from "./support/TestServer.ts"

const settings: RunEventsSettingsShape = { keepAliveMs: 300, pollIntervalMs: 200, gapTimeoutMs: 400 }

const eventIdsOf = (runId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{
        id: string
      }>`select id::text as id from assay.run_cell_event where run_id = ${runId} order by run_cell_event.id`
  ).pipe(Effect.map((rows) => rows.map((r) => r.id)))

/** Collects a stream's elements as they arrive, so a test can look at them while it runs. */
const collect = <A>(stream: Stream.Stream<A>) =>
  Effect.gen(function* () {
    const seen: Array<A> = []
    const fiber = yield* Stream.runForEach(stream, (a) => Effect.sync(() => seen.push(a))).pipe(Effect.fork)
    return { seen, fiber } as const
  })

const waitUntil = (condition: () => boolean, timeoutMs = 5_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage("timed out waiting for a condition")
      yield* Effect.sleep("20 millis")
    }
  })

/** A seeded run handed to the local user (seeding twice for one owner would clash on its models). */
const seedLocalRun = (rows: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const run = yield* seedRun(sql, { rows })
    yield* sql`update assay.run set owner_id = ${LOCAL_USER_ID} where id = ${run.runId}`
    return run
  })

const ids = (events: ReadonlyArray<CellEvent>) => events.map((e) => e.id)

/** `count` events of one cell in one statement, not published (as another process's, its NOTIFY lost). */
const insertEvents = (runId: string, cellId: string, count: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<CellEventRow>`
      insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
      select ${runId}, ${cellId}, 'retrying', jsonb_build_object('attempt', n)
      from generate_series(1, ${count}) as n
      order by n
      returning id::text as id, run_id, run_cell_id, event_type, payload, created_at`
  ).pipe(Effect.map((rows) => rows.map(toCellEvent)))

/**
 * A new run's subscription opened directly after its last event, once it has joined the feed and taken one
 * event published alone (which must reach it by itself).
 */
const followingAfterOne = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const events = yield* RunEvents
  const run = yield* seedRun(sql, { rows: 1 })
  const last = (yield* eventIdsOf(run.runId)).at(-1)!
  const before = yield* events.subscriberCount
  const subscription = openSubscription(events.subscribe(run.runId as RunId, BigInt(last)))!
  const taking = subscription.next()
  yield* waitUntil(() => Effect.runSync(events.subscriberCount) === before + 1)
  const one = yield* insertEvent(run.runId, run.cellIds[0]!, "started")
  yield* events.publish([one])
  expect(ids((yield* Effect.promise(() => taking)).flatMap((chunk) => [...chunk]))).toEqual([one.id])
  return { run, subscription, before }
})

const withSettings = (values: RunEventsSettingsShape) => Layer.succeed(RunEventsSettings, values)

for (const db of testDatabases) {
  // on the server's scheduler (src/layers/Scheduler.ts), under which the sequencer's waits can time out as a
  // batch arrives
  layer(
    RunEvents.Default.pipe(
      Layer.provideMerge(db.layer),
      Layer.provide(withSettings(settings)),
      Layer.provide(Scheduler.layer)
    ),
    {
      excludeTestServices: true,
      timeout: 60_000
    }
  )(`RunEvents on ${db.kind}`, (it) => {
    it.effect("replays the run's events from the table, unpublished ones included, then goes live", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 2 })
        const other = yield* seedRun(sql, { rows: 1 })
        // written without publish, as by another process whose NOTIFY was lost
        const extra = yield* insertEvent(run.runId, run.cellIds[0]!, "started")
        const expected = [...(yield* eventIdsOf(run.runId))]
        expect(expected).toHaveLength(5)
        expect(expected[4]).toBe(extra.id)

        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, null))
        yield* waitUntil(() => seen.length === 5)
        expect(ids(seen)).toEqual(expected)

        const live = yield* insertEvent(run.runId, run.cellIds[1]!, "succeeded", { tokens: 3 })
        yield* events.publish([live])
        yield* events.publish([yield* insertEvent(other.runId, other.cellIds[0]!)])
        yield* waitUntil(() => seen.length === 6)
        expect(seen[5]).toMatchObject({ id: live.id, type: "succeeded", payload: { tokens: 3 } })
        yield* Effect.sleep("300 millis")
        expect(seen.every((e) => e.runId === run.runId)).toBe(true)
        expect(seen).toHaveLength(6)
        yield* Fiber.interrupt(fiber)
      })
    )

    it.effect("delivers in id order, once, whatever order events are published in", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        const after = (yield* eventIdsOf(run.runId)).at(-1)!
        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, BigInt(after)))
        yield* waitUntil(() => Effect.runSync(events.subscriberCount) > 0)

        const [a, b, c] = [
          yield* insertEvent(run.runId, run.cellIds[0]!, "started"),
          yield* insertEvent(run.runId, run.cellIds[1]!, "started"),
          yield* insertEvent(run.runId, run.cellIds[0]!, "succeeded")
        ]
        yield* events.publish([c!])
        yield* events.publish([a!])
        yield* events.publish([b!, a!, c!])
        yield* waitUntil(() => seen.length >= 3)
        yield* Effect.sleep("300 millis")
        expect(ids(seen)).toEqual([a!.id, b!.id, c!.id])
        yield* Fiber.interrupt(fiber)
      })
    )

    it.effect("skips an id that never commits (a rolled-back insert) after the gap timeout", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        const after = (yield* eventIdsOf(run.runId)).at(-1)!
        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, BigInt(after)))
        yield* waitUntil(() => Effect.runSync(events.subscriberCount) > 0)

        const lost = yield* sql
          .withTransaction(
            Effect.flatMap(insertEvent(run.runId, run.cellIds[0]!).pipe(Effect.orDie), (event) =>
              Effect.fail(event.id)
            )
          )
          .pipe(
            Effect.flip,
            Effect.flatMap((id) => (typeof id === "string" ? Effect.succeed(id) : Effect.die(id)))
          )
        const next = yield* insertEvent(run.runId, run.cellIds[0]!, "failed")
        expect(BigInt(next.id)).toBe(BigInt(lost) + 1n)
        const start = Date.now()
        yield* events.publish([next])
        yield* waitUntil(() => seen.length === 1)
        expect(Date.now() - start).toBeGreaterThanOrEqual(settings.gapTimeoutMs - 50)
        expect(ids(seen)).toEqual([next.id])
        yield* Fiber.interrupt(fiber)
      })
    )

    it.effect("ending the stream releases its subscription", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        const before = yield* events.subscriberCount
        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, null))
        yield* waitUntil(() => seen.length === 2)
        expect(yield* events.subscriberCount).toBe(before + 1)
        yield* Fiber.interrupt(fiber)
        expect(yield* events.subscriberCount).toBe(before)
        // a finite consumer releases it too
        const firstTwo = yield* Stream.runCollect(Stream.take(events.subscribe(run.runId as RunId, null), 2))
        expect(Chunk.size(firstTwo)).toBe(2)
        expect(yield* events.subscriberCount).toBe(before)
      })
    )

    it.effect("a subscriber joining with more unpublished events than the backlog limit gets them all", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        // nobody published these: the subscriber's join reads them past the mark
        yield* insertEvents(run.runId, run.cellIds[0]!, 12_000)
        const expected = yield* eventIdsOf(run.runId)
        const before = yield* events.subscriberCount
        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, null))
        // another one at the same time, resuming from the middle of those events
        const resumed = yield* collect(events.subscribe(run.runId as RunId, BigInt(expected[7_000]!)))
        yield* waitUntil(
          () => seen.length >= expected.length && resumed.seen.length >= expected.length - 7_001,
          30_000
        )
        expect(ids(seen)).toEqual(expected)
        expect(ids(resumed.seen)).toEqual(expected.slice(7_001))
        // still on the live feed: not dropped for a backlog that was their replay
        expect(yield* events.subscriberCount).toBe(before + 2)
        const live = yield* insertEvent(run.runId, run.cellIds[1]!, "succeeded")
        yield* events.publish([live])
        yield* waitUntil(
          () => seen.length === expected.length + 1 && resumed.seen.length === expected.length - 7_000
        )
        expect(seen.at(-1)!.id).toBe(live.id)
        expect(resumed.seen.at(-1)!.id).toBe(live.id)
        yield* Fiber.interrupt(fiber)
        yield* Fiber.interrupt(resumed.fiber)
      })
    )

    it.effect("subscribers joining at different marks replay across pages from where each asked", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        yield* insertEvents(run.runId, run.cellIds[0]!, 7_500)
        const first = yield* eventIdsOf(run.runId)
        const a = yield* collect(events.subscribe(run.runId as RunId, null))
        yield* waitUntil(() => a.seen.length >= first.length, 15_000)
        expect(ids(a.seen)).toEqual(first)

        // more unpublished events: a later subscriber's replay reaches further than the first one's
        yield* insertEvents(run.runId, run.cellIds[1]!, 3_000)
        const all = yield* eventIdsOf(run.runId)
        const b = yield* collect(events.subscribe(run.runId as RunId, null))
        const c = yield* collect(events.subscribe(run.runId as RunId, BigInt(all[6_234]!)))
        yield* waitUntil(() => b.seen.length >= all.length && c.seen.length >= all.length - 6_235, 15_000)
        expect(ids(b.seen)).toEqual(all)
        expect(ids(c.seen)).toEqual(all.slice(6_235))
        // the first subscriber gets them live, from the table
        yield* waitUntil(() => a.seen.length >= all.length, 15_000)
        expect(ids(a.seen)).toEqual(all)
        yield* Effect.forEach([a, b, c], ({ fiber }) => Fiber.interrupt(fiber))
      })
    )

    it.effect("a subscriber resuming beyond the mark gets only the events after its id", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const run = yield* seedRun(sql, { rows: 1 })
        const last = BigInt((yield* eventIdsOf(run.runId)).at(-1)!)
        // as if it had followed another process that sequenced two more events already
        const before = yield* events.subscriberCount
        const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, last + 2n))
        yield* waitUntil(() => Effect.runSync(events.subscriberCount) === before + 1)
        const written = [
          yield* insertEvent(run.runId, run.cellIds[0]!, "started"),
          yield* insertEvent(run.runId, run.cellIds[0]!, "succeeded"),
          yield* insertEvent(run.runId, run.cellIds[1]!, "started")
        ]
        expect(BigInt(written[0]!.id)).toBe(last + 1n)
        yield* events.publish(written)
        yield* waitUntil(() => seen.length === 1)
        yield* Effect.sleep("300 millis")
        expect(ids(seen)).toEqual([written[2]!.id])
        yield* Fiber.interrupt(fiber)
      })
    )

    it.effect("a subscriber that stops taking events is dropped past the backlog limit", () =>
      Effect.gen(function* () {
        const events = yield* RunEvents
        const { run, subscription, before } = yield* followingAfterOne

        // it takes nothing more: 10,000 events wait for it, and the next batch finds it too far behind
        const burst = yield* insertEvents(run.runId, run.cellIds[0]!, 10_000)
        yield* events.publish(burst)
        yield* waitUntil(() => BigInt(Effect.runSync(events.lastEventId)) >= BigInt(burst.at(-1)!.id))
        yield* events.publish([yield* insertEvent(run.runId, run.cellIds[1]!, "started")])
        yield* waitUntil(() => Effect.runSync(events.subscriberCount) === before, 15_000)
        expect(yield* Effect.promise(() => subscription.next())).toEqual([])
        subscription.close()
      })
    )

    it.effect(
      "a lone event goes out at once; events committed in quick succession go out in a few batches",
      () =>
        Effect.gen(function* () {
          const events = yield* RunEvents
          // its first event, alone, came at once
          const { run, subscription } = yield* followingAfterOne

          // 40 commits of one event each, 2 ms apart (as an engine's claims and result writes at full speed)
          const burst = yield* insertEvents(run.runId, run.cellIds[0]!, 40)
          const reading = (async () => {
            const chunks: Array<Chunk.Chunk<CellEvent>> = []
            while (chunks.reduce((n, chunk) => n + Chunk.size(chunk), 0) < burst.length) {
              chunks.push(...(await subscription.next()))
            }
            return chunks
          })()
          for (const event of burst) {
            yield* events.publish([event])
            yield* Effect.sleep("2 millis")
          }
          const chunks = yield* Effect.promise(() => reading)
          expect(ids(chunks.flatMap((chunk) => [...chunk]))).toEqual(ids(burst))
          // about one batch per 20 ms over the ~100 ms they took, not one per commit
          expect(chunks.length).toBeLessThanOrEqual(10)
          subscription.close()
        })
    )

    it.effect("loses no published batch when it arrives as the sequencer's wait times out", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const events = yield* RunEvents
        const { run, subscription } = yield* followingAfterOne
        // ids taken from the table's sequence and never written: nothing but their publish can deliver them
        // (a lost one would be skipped as a hole after the gap timeout)
        const reserved = yield* sql<{ id: string }>`
          select nextval(pg_get_serial_sequence('assay.run_cell_event', 'id'))::text as id
          from generate_series(1, 1500)`
        const published = reserved.map((row) =>
          toCellEvent({
            id: row.id,
            run_id: run.runId,
            run_cell_id: run.cellIds[0]!,
            event_type: "retrying",
            payload: {},
            created_at: new Date()
          })
        )
        const reading = (async () => {
          const received: Array<CellEvent> = []
          while (received.length < published.length) {
            const chunks = await subscription.next()
            if (chunks.length === 0) break
            for (const chunk of chunks) received.push(...chunk)
          }
          return received
        })()
        // a busy process: fibers that fill the scheduler's slices, so resumptions wait for the next turn
        const busy = yield* Effect.sync(() => {
          const until = performance.now() + 3
          while (performance.now() < until) {
            // spin
          }
        }).pipe(
          Effect.zipRight(Effect.yieldNow()),
          Effect.forever,
          Effect.withScheduler(Scheduler.timeSliced),
          Effect.fork
        )
        // one at a time, at every spacing around the sequencer's 20 ms delivery deadlines
        for (const [i, event] of published.entries()) {
          yield* events.publish([event])
          if (i % 3 === 0) yield* Effect.sleep(Duration.millis(i % 23))
        }
        const received = yield* Effect.promise(() => reading).pipe(Effect.timeout("20 seconds"))
        yield* Fiber.interrupt(busy)
        expect(ids(received)).toEqual(ids(published))
        subscription.close()
      })
    )

    if (db.kind === "postgres") {
      it.effect("holds back an event until a lower id that commits later is delivered first", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const events = yield* RunEvents
          const run = yield* seedRun(sql, { rows: 1 })
          const after = (yield* eventIdsOf(run.runId)).at(-1)!
          const { seen, fiber } = yield* collect(events.subscribe(run.runId as RunId, BigInt(after)))
          yield* waitUntil(() => Effect.runSync(events.subscriberCount) > 0)

          const written = yield* Deferred.make<CellEvent>()
          const release = yield* Deferred.make<void>()
          const slow = yield* sql
            .withTransaction(
              Effect.gen(function* () {
                const event = yield* insertEvent(run.runId, run.cellIds[0]!, "started")
                yield* Deferred.succeed(written, event)
                yield* Deferred.await(release)
                return event
              })
            )
            .pipe(Effect.fork)
          const low = yield* Deferred.await(written)
          const high = yield* insertEvent(run.runId, run.cellIds[1]!, "started")
          expect(BigInt(high.id)).toBeGreaterThan(BigInt(low.id))
          yield* events.publish([high])
          yield* Effect.sleep("150 millis")
          expect(seen).toEqual([])
          yield* Deferred.succeed(release, undefined)
          yield* events.publish([yield* Fiber.join(slow)])
          yield* waitUntil(() => seen.length === 2)
          expect(ids(seen)).toEqual([low.id, high.id])
          yield* Fiber.interrupt(fiber)
        })
      )

      it.effect("another process's events arrive through NOTIFY", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const events = yield* RunEvents
          const run = yield* seedRun(sql, { rows: 1 })
          const [{ name }] = (yield* sql<{ name: string }>`select current_database() as name`) as [
            { name: string }
          ]
          const url = new URL(adminUrl!)
          url.pathname = `/${name}`
          // a separate build with its own connections and a poll too slow to matter: only NOTIFY can be in time
          const other = Context.get(
            yield* Layer.build(
              RunEvents.Default.pipe(
                Layer.provide(Database.pgLayer(Redacted.make(url.toString()))),
                Layer.provide(withSettings({ ...settings, pollIntervalMs: 60_000 }))
              )
            ),
            RunEvents
          )
          const after = (yield* eventIdsOf(run.runId)).at(-1)!
          const { seen, fiber } = yield* collect(other.subscribe(run.runId as RunId, BigInt(after)))
          yield* waitUntil(() => Effect.runSync(other.subscriberCount) > 0)
          yield* Effect.sleep("200 millis")

          const batch = yield* sql.withTransaction(
            Effect.all([
              insertEvent(run.runId, run.cellIds[0]!, "started"),
              insertEvent(run.runId, run.cellIds[0]!, "succeeded")
            ])
          )
          yield* events.publish(batch)
          yield* events.notify(batch[1].id)
          const start = Date.now()
          yield* waitUntil(() => seen.length === 2, 3_000)
          expect(Date.now() - start).toBeLessThan(3_000)
          expect(ids(seen)).toEqual(ids(batch))
          yield* Fiber.interrupt(fiber)
        }).pipe(Effect.scoped)
      )

      it.effect(
        "commits in quick succession are announced by a few NOTIFYs, the last with the highest id",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const events = yield* RunEvents
            const heard: Array<string> = []
            const listening = yield* (sql as PgClient.PgClient).listen(RUN_EVENTS_CHANNEL).pipe(
              Stream.runForEach((payload) => Effect.sync(() => heard.push(payload))),
              Effect.fork
            )
            yield* Effect.sleep("200 millis")
            // ids far above any real one, so that no other test's NOTIFY can be taken for these
            const base = 10_000_000_000n
            for (let i = 1n; i <= 100n; i++) {
              yield* events.notify(base + i)
              if (i % 10n === 0n) yield* Effect.sleep("2 millis")
            }
            yield* waitUntil(() => heard.includes(String(base + 100n)))
            const ours = heard.filter((payload) => BigInt(payload) > base)
            // the first as soon as the notifier runs (within the first ten), then at most one per 20 ms while
            // they keep coming (100 in ~25 ms); one per call would be 100
            expect(BigInt(ours[0]!)).toBeLessThanOrEqual(base + 10n)
            expect(ours.length).toBeLessThanOrEqual(4)
            expect(ours.map(BigInt)).toEqual([...ours.map(BigInt)].sort((a, b) => (a < b ? -1 : 1)))
            yield* Fiber.interrupt(listening)
          })
      )
    }
  })
}

const sseApp = (db: TestDb) =>
  testServer(Routes).pipe(
    Layer.provideMerge(ServicesLive),
    Layer.provideMerge(db),
    Layer.provide(withSettings(settings)),
    Layer.provide(
      testConfig({
        ASSAY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "assay-sse-")),
        ASSAY_ENGINE: "false"
      })
    )
  )

interface SseFrame {
  readonly id?: string
  readonly event?: string
  readonly data?: string
  readonly retry?: string
  readonly comment?: string
}

const parseFrame = (raw: string): SseFrame => {
  const frame: Record<string, string> = {}
  for (const line of raw.split("\n")) {
    if (line.startsWith(":")) frame["comment"] = line.slice(1).trim()
    else {
      const colon = line.indexOf(":")
      frame[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "")
    }
  }
  return frame
}

/** Reads an SSE body frame by frame; a read that times out stays in flight for the next call. */
const sseReader = (body: ReadableStream<Uint8Array>) => {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  let inflight: ReturnType<typeof reader.read> | null = null
  const next = async (timeoutMs = 5_000): Promise<SseFrame> => {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const end = buffer.indexOf("\n\n")
      if (end !== -1) {
        const raw = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        return parseFrame(raw)
      }
      inflight ??= reader.read()
      const result = await Promise.race([
        inflight,
        new Promise<"timeout">((resolve) =>
          setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()))
        )
      ])
      if (result === "timeout") throw new Error("no SSE frame in time")
      inflight = null
      if (result.done) throw new Error("the SSE stream ended")
      buffer += decoder.decode(result.value, { stream: true })
    }
  }
  /** The next `count` events, skipping comments and `retry:`. */
  const events = async (count: number) => {
    const out: Array<SseFrame> = []
    while (out.length < count) {
      const frame = await next()
      if (frame.id !== undefined) out.push(frame)
    }
    return out
  }
  return { next, events, cancel: () => reader.cancel() }
}

const connect = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(url, { headers, signal: controller.signal })
    return { response, reader: sseReader(response.body!), abort: () => controller.abort() }
  })

for (const db of testDatabases) {
  layer(sseApp(db.layer), { excludeTestServices: true, timeout: 60_000 })(
    `the SSE route on ${db.kind}`,
    (it) => {
      it.effect("resumes after Last-Event-ID with exactly the missed events, then live ones", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const events = yield* RunEvents
          const run = yield* seedLocalRun(3)
          const url = `${base}/api/v1/runs/${run.runId}/events`
          const before = yield* events.subscriberCount

          const first = yield* connect(url)
          expect(first.response.status).toBe(200)
          expect(first.response.headers.get("content-type")).toContain("text/event-stream")
          expect(first.response.headers.get("cache-control")).toBe("no-cache")
          expect(yield* Effect.promise(() => first.reader.next())).toEqual({ retry: "2000" })
          const replayed = yield* Effect.promise(() => first.reader.events(6))
          expect(replayed.map((f) => f.id)).toEqual(yield* eventIdsOf(run.runId))
          expect(replayed.every((f) => f.event === "queued")).toBe(true)
          const data = JSON.parse(replayed[0]!.data!)
          expect(Object.keys(data)).toEqual(["cellId", "payload", "createdAt"])
          expect(run.cellIds).toContain(data.cellId)
          expect(data.payload).toEqual({})
          expect(new Date(data.createdAt).toISOString()).toBe(data.createdAt)

          // the client goes away: its subscription is released
          first.abort()
          yield* waitUntil(() => Effect.runSync(events.subscriberCount) === before)

          const missed = [
            yield* insertEvent(run.runId, run.cellIds[0]!, "started"),
            yield* insertEvent(run.runId, run.cellIds[0]!, "succeeded")
          ]
          yield* events.publish(missed)

          const second = yield* connect(url, { "last-event-id": replayed[5]!.id! })
          expect(second.response.status).toBe(200)
          const resumed = yield* Effect.promise(() => second.reader.events(2))
          expect(resumed.map((f) => f.id)).toEqual(ids(missed))
          expect(resumed.map((f) => f.event)).toEqual(["started", "succeeded"])

          const live = yield* insertEvent(run.runId, run.cellIds[1]!, "started")
          yield* events.publish([live, ...missed])
          const [liveFrame] = yield* Effect.promise(() => second.reader.events(1))
          expect(liveFrame!.id).toBe(live.id)
          // nothing else comes before the next keep-alive: no duplicates
          const quiet = yield* Effect.promise(() => second.reader.next(2_000))
          expect(quiet).toEqual({ comment: "keep-alive" })
          second.abort()
        })
      )

      it.effect("sends keep-alive comments on an idle stream and honours ?after=", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const run = yield* seedLocalRun(1)
          const last = (yield* eventIdsOf(run.runId)).at(-1)!
          const stream = yield* connect(`${base}/api/v1/runs/${run.runId}/events?after=${last}`)
          const frames = [
            yield* Effect.promise(() => stream.reader.next()),
            yield* Effect.promise(() => stream.reader.next(2_000)),
            yield* Effect.promise(() => stream.reader.next(2_000))
          ]
          expect(frames).toEqual([{ retry: "2000" }, { comment: "keep-alive" }, { comment: "keep-alive" }])
          stream.abort()
        })
      )

      it.effect("answers 404 for an unknown run and 400 for a malformed Last-Event-ID", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const sql = yield* SqlClient.SqlClient
          const run = yield* seedLocalRun(1)
          const missing = yield* Effect.promise(() =>
            fetch(`${base}/api/v1/runs/${crypto.randomUUID()}/events`)
          )
          expect(missing.status).toBe(404)
          expect((yield* Effect.promise(() => missing.json())).error.code).toBe("run_not_found")
          // another owner's run is just as absent
          const foreign = yield* seedRun(sql, { rows: 1 })
          const theirs = yield* Effect.promise(() => fetch(`${base}/api/v1/runs/${foreign.runId}/events`))
          expect(theirs.status).toBe(404)
          const bad = yield* Effect.promise(() =>
            fetch(`${base}/api/v1/runs/${run.runId}/events`, { headers: { "last-event-id": "12; drop" } })
          )
          expect(bad.status).toBe(400)
          expect((yield* Effect.promise(() => bad.json())).error.code).toBe("invalid_request")
        })
      )
    }
  )
}

it.live("the SSE body writes any stream of events: `data:` is the cell, payload and time as JSON", () =>
  Effect.gen(function* () {
    const runId = crypto.randomUUID() as RunId
    const event = (id: string, payload: unknown) =>
      new CellEvent({
        id,
        runId,
        cellId: crypto.randomUUID() as RunCellId,
        type: "succeeded",
        payload,
        createdAt: DateTime.unsafeMake("2026-01-02T03:04:05.678Z")
      })
    const events = [event("7", { output: 'line\nnext "quoted"', tokens: 3 }), event("8", {})]
    const response = HttpServerResponse.toWeb(eventStreamResponse(Stream.fromIterable(events), 60_000))
    expect(response.headers.get("content-type")).toContain("text/event-stream")
    // the stream ends with its events, and so does the body
    const frames = (yield* Effect.promise(() => response.text())).split("\n\n").filter((f) => f !== "")
    expect(frames[0]).toBe("retry: 2000")
    expect(frames.slice(1).map(parseFrame)).toEqual(
      events.map((e) => ({
        id: e.id,
        event: "succeeded",
        data: JSON.stringify({ cellId: e.cellId, payload: e.payload, createdAt: "2026-01-02T03:04:05.678Z" })
      }))
    )
  })
)
