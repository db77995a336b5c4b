// Benchmark 4's subscribers, run in worker threads (`live-events.ts` starts them): 200 SSE clients in one
// JavaScript thread would make the client, not the server, the slowest part of the benchmark (every event is
// parsed 200 times), where real subscribers are as many browsers. Each worker follows its share of the
// subscribers, keeps its own latency histograms and reports them, with every id each subscriber received, when
// told to stop. Progress and the table watcher's sightings go through shared memory.
import { isMainThread, parentPort, workerData } from "node:worker_threads"

export const HISTOGRAM_MS = 600_000
// live latency by when the event was created (WINDOW_MS windows from the run's creation), to tell the
// subscribers' catch-up from the steady state after it; latencies above WINDOW_CAP_MS count as that
export const WINDOW_MS = 10_000
export const WINDOW_CAP_MS = 60_000

export interface Histogram {
  readonly counts: Uint32Array
  total: number
  max: number
}

export const histogram = (maxMs = HISTOGRAM_MS): Histogram => ({
  counts: new Uint32Array(maxMs + 1),
  total: 0,
  max: 0
})

export const record = (h: Histogram, ms: number) => {
  const bucket = Math.min(h.counts.length - 1, Math.max(0, Math.round(ms)))
  h.counts[bucket]! += 1
  h.total += 1
  if (ms > h.max) h.max = ms
}

/** `record` for a whole number of milliseconds (receive times and `createdAt` are): the hot path's. */
const bump = (h: Histogram, ms: number) => {
  const counts = h.counts
  counts[ms < 0 ? 0 : ms >= counts.length ? counts.length - 1 : ms]! += 1
  h.total += 1
  if (ms > h.max) h.max = ms
}

/** Adds `from` into `into` (histograms of one size). */
export const merge = (into: Histogram, from: Histogram) => {
  for (let i = 0; i < from.counts.length; i++) into.counts[i]! += from.counts[i]!
  into.total += from.total
  into.max = Math.max(into.max, from.max)
}

/** What the main thread and the workers share, as shared memory. */
export interface Shared {
  /** By event id: when the table watcher first saw it committed, as ms after `runStartedAt` + 1 (0: not yet). */
  readonly seen: SharedArrayBuffer
  /** The highest event id the watcher has seen. */
  readonly seenMax: SharedArrayBuffer
  /** By subscriber: the last id received, how many events received, how many times connected. */
  readonly lastIds: SharedArrayBuffer
  readonly received: SharedArrayBuffer
  readonly connects: SharedArrayBuffer
}

export const sharedMemory = (subscribers: number, maxEventId: number): Shared => ({
  seen: new SharedArrayBuffer(4 * (maxEventId + 1)),
  seenMax: new SharedArrayBuffer(4),
  lastIds: new SharedArrayBuffer(4 * subscribers),
  received: new SharedArrayBuffer(4 * subscribers),
  connects: new SharedArrayBuffer(4 * subscribers)
})

export interface FollowerData {
  readonly indices: ReadonlyArray<number>
  readonly shared: Shared
}

/**
 * Where the subscribers start. "snapshot": as the web app opens a run, each reads a page of the run's cells
 * (the run as it stands, with its `lastEventId`) and follows the event stream after that id. "start": each
 * opens the stream with no Last-Event-ID and replays the run's events from the first.
 */
export type FollowFrom = "snapshot" | "start"

/** Sent to a worker once the run exists: its subscribers connect at once (the worker is already running). */
export interface FollowerStart {
  readonly url: string
  readonly cellsUrl: string
  readonly from: FollowFrom
  readonly runStartedAt: number
}

export interface FollowerReport {
  readonly index: number
  /** The id it started after (the snapshot's `lastEventId`; 0 from the start). */
  readonly startAfter: number
  readonly ids: Int32Array
  readonly connectedAt: number | null
  /** When it had received everything the table held when it connected (its catch-up), epoch ms. */
  readonly caughtUpAt: number | null
  readonly connects: number
  /** Streams that ended while the benchmark was still listening (the server closed them). */
  readonly ended: number
  readonly errors: ReadonlyArray<string>
  readonly outOfOrder: number
}

export interface WorkerReport {
  readonly followers: ReadonlyArray<FollowerReport>
  readonly live: Histogram
  readonly all: Histogram
  readonly following: Histogram
  readonly visibleToReceived: Histogram
  readonly liveByType: Record<string, Histogram>
  readonly liveByWindow: ReadonlyArray<Histogram | null>
  /** By event id: createdAt (epoch ms), and when this worker first received it; NaN where never. */
  readonly createdAt: Float64Array
  readonly firstReceived: Float64Array
}

interface Follower {
  readonly index: number
  startAfter: number
  readonly ids: Array<number>
  lastId: number
  /** Epoch ms when the first response arrived: events created after it are live for this subscriber. */
  connectedAt: number | null
  /** The newest id in the table when it connected, and when it had received it. */
  catchUpId: number
  caughtUpAt: number | null
  connects: number
  ended: number
  readonly errors: Array<string>
  outOfOrder: number
}

// The subscribers parse the stream as bytes: decoding and slicing strings would cost more than the rest.
const FRAME_END = Buffer.from("\n\n")
const CREATED_AT = Buffer.from('"createdAt":"')
const NEWLINE = 0x0a
const digitsAt = (b: Buffer, from: number, count: number) => {
  let n = 0
  for (let i = from; i < from + count; i++) n = n * 10 + b[i]! - 48
  return n
}
/** Epoch ms of the day of the last `YYYY-MM-DD` seen, so most frames need no Date arithmetic. */
let dayKey = -1
let dayMs = 0
/** `YYYY-MM-DDTHH:mm:ss.sssZ` at `b[at]` (the server writes `toISOString`), as epoch ms. */
const isoAt = (b: Buffer, at: number) => {
  const key = digitsAt(b, at, 4) * 10_000 + digitsAt(b, at + 5, 2) * 100 + digitsAt(b, at + 8, 2)
  if (key !== dayKey) {
    dayKey = key
    dayMs = Date.UTC(Math.floor(key / 10_000), (Math.floor(key / 100) % 100) - 1, key % 100)
  }
  if (b[at + 23] !== 0x5a) throw new Error(`unexpected createdAt ${b.toString("latin1", at, at + 30)}`)
  return (
    dayMs +
    ((digitsAt(b, at + 11, 2) * 60 + digitsAt(b, at + 14, 2)) * 60 + digitsAt(b, at + 17, 2)) * 1000 +
    digitsAt(b, at + 20, 3)
  )
}

const follower = (data: FollowerData & FollowerStart) => {
  const seen = new Int32Array(data.shared.seen)
  const seenMax = new Int32Array(data.shared.seenMax)
  const lastIds = new Int32Array(data.shared.lastIds)
  const received = new Int32Array(data.shared.received)
  const connects = new Int32Array(data.shared.connects)

  const live = histogram()
  const all = histogram()
  const following = histogram()
  // where live latency goes: event created → visible in the table (the writer's transaction, to its commit),
  // then visible → received (the server's delivery)
  const visibleToReceived = histogram()
  const liveByType: Record<string, Histogram> = {}
  const liveByWindow: Array<Histogram | null> = []
  const createdAt = new Float64Array(seen.length).fill(Number.NaN)
  const firstReceived = new Float64Array(seen.length).fill(Number.NaN)

  // live latency by event type, found by the type's first letter and length
  const typeHistograms: Array<Histogram | undefined> = []

  /**
   * One event frame as the server writes it: `id:`, `event:` and `data:` lines (the JSON has no raw newline)
   * and a blank line; `typeStart`, `typeEnd` and `dataEnd` locate the type and the data line's newline. Called
   * for every event of every subscriber (millions): integer arithmetic, no allocation, no string.
   */
  const onEvent = (
    f: Follower,
    b: Buffer,
    id: number,
    typeStart: number,
    typeEnd: number,
    dataEnd: number,
    receivedAt: number
  ) => {
    // createdAt is the data's last field: `"createdAt":"<24 characters>"}` ends the line
    let at = dataEnd - CREATED_AT.length - 26
    if (b[at] !== 0x22 || b[at + 1] !== 0x63 || b[at + 12] !== 0x22) at = b.lastIndexOf(CREATED_AT, dataEnd)
    if (at < typeEnd) throw new Error(`event ${id} without createdAt`)
    const created = isoAt(b, at + CREATED_AT.length)
    if (id >= seen.length) throw new Error(`event id ${id} beyond the ids the benchmark expects`)
    if (id <= f.lastId) f.outOfOrder += 1
    else f.lastId = id
    f.ids.push(id)
    if (f.caughtUpAt === null && id >= f.catchUpId) f.caughtUpAt = receivedAt
    createdAt[id] = created
    if (!(firstReceived[id]! <= receivedAt)) firstReceived[id] = receivedAt
    const latency = receivedAt - created
    bump(all, latency)
    if (f.connectedAt !== null && created >= f.connectedAt) {
      bump(live, latency)
      if (f.caughtUpAt !== null && created >= f.caughtUpAt) bump(following, latency)
      const window = Math.max(0, ((created - data.runStartedAt) / WINDOW_MS) | 0)
      bump((liveByWindow[window] ??= histogram(WINDOW_CAP_MS)), latency)
      // a delivered event has committed: the watcher may not have polled since
      const watched = Atomics.load(seen, id)
      const visible = Math.min(
        firstReceived[id]!,
        watched === 0 ? receivedAt : data.runStartedAt + watched - 1
      )
      bump(visibleToReceived, receivedAt - visible)
      const typeKey = b[typeStart]! * 32 + Math.min(31, typeEnd - typeStart)
      let byType = typeHistograms[typeKey]
      if (byType === undefined) {
        byType = typeHistograms[typeKey] = histogram()
        liveByType[b.toString("latin1", typeStart, typeEnd)] = byType
      }
      bump(byType, latency)
    }
  }

  /** Reads the frames of `b` from `start`; answers where the first incomplete one starts (or `b.length`). */
  const onFrames = (f: Follower, b: Buffer, receivedAt: number, onRetry: (ms: number) => void) => {
    const n = b.length
    let start = 0
    while (start < n) {
      if (b[start] === 0x69) {
        // `id: <digits>\n`, `event: <type>\n`: short lines, read here; the data line's end by one search
        let i = start + 4
        let id = 0
        while (i < n && b[i] !== NEWLINE) id = id * 10 + b[i++]! - 48
        const typeStart = i + 8
        i = typeStart
        while (i < n && b[i] !== NEWLINE) i++
        const typeEnd = i
        const dataEnd = i >= n ? -1 : b.indexOf(NEWLINE, typeEnd + 7)
        if (dataEnd === -1 || dataEnd + 1 >= n) return start
        if (b[dataEnd + 1] !== NEWLINE) {
          throw new Error(`unexpected frame ${b.toString("latin1", start, dataEnd + 2)}`)
        }
        onEvent(f, b, id, typeStart, typeEnd, dataEnd, receivedAt)
        start = dataEnd + 2
      } else {
        // `retry: ...` or a comment
        const end = b.indexOf(FRAME_END, start)
        if (end === -1) return start
        if (b[start] === 0x72) onRetry(Number(b.toString("latin1", start + 7, end)))
        start = end + 2
      }
    }
    return start
  }

  const follow = async (f: Follower, signal: AbortSignal) => {
    let retryMs = 2_000
    if (data.from === "snapshot") {
      const response = await fetch(`${data.cellsUrl}?limit=1`, { signal })
      if (response.status !== 200) throw new Error(`cells: HTTP ${response.status}`)
      const page = (await response.json()) as { lastEventId: string }
      f.startAfter = f.lastId = Number(page.lastEventId)
    }
    while (!signal.aborted) {
      try {
        const headers: Record<string, string> = f.lastId > 0 ? { "last-event-id": String(f.lastId) } : {}
        const response = await fetch(data.url, { headers, signal })
        if (response.status !== 200 || response.body === null) {
          throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`)
        }
        f.connects += 1
        connects[f.index] = f.connects
        if (f.connectedAt === null) {
          f.connectedAt = Date.now()
          f.catchUpId = Atomics.load(seenMax, 0)
        }
        const reader = response.body.getReader()
        // the start of a frame the last read ended inside
        let rest: Buffer | null = null
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          const receivedAt = Date.now()
          const chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
          const b: Buffer = rest === null ? chunk : Buffer.concat([rest, chunk])
          const start = onFrames(f, b, receivedAt, (ms) => (retryMs = ms || retryMs))
          lastIds[f.index] = f.lastId
          received[f.index] = f.ids.length
          rest = start === b.length ? null : Buffer.from(b.subarray(start))
        }
        f.ended += 1
      } catch (error) {
        if (signal.aborted) return
        if (f.errors.length < 5) f.errors.push(error instanceof Error ? error.message : String(error))
      }
      if (signal.aborted) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryMs)
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true })
      })
    }
  }

  const stop = new AbortController()
  const followers = data.indices.map((index): Follower => ({
    index,
    startAfter: 0,
    ids: [],
    lastId: 0,
    connectedAt: null,
    catchUpId: Number.POSITIVE_INFINITY,
    caughtUpAt: null,
    connects: 0,
    ended: 0,
    errors: [],
    outOfOrder: 0
  }))
  const tasks = followers.map((f) =>
    follow(f, stop.signal).catch((error: unknown) => {
      f.errors.push(error instanceof Error ? error.message : String(error))
    })
  )
  parentPort!.once("message", () => {
    stop.abort()
    void Promise.all(tasks).then(() => {
      const report: WorkerReport = {
        followers: followers.map((f) => ({
          index: f.index,
          startAfter: f.startAfter,
          ids: Int32Array.from(f.ids),
          connectedAt: f.connectedAt,
          caughtUpAt: f.caughtUpAt,
          connects: f.connects,
          ended: f.ended,
          errors: f.errors,
          outOfOrder: f.outOfOrder
        })),
        live,
        all,
        following,
        visibleToReceived,
        liveByType,
        liveByWindow: Array.from(liveByWindow, (h) => h ?? null),
        createdAt,
        firstReceived
      }
      parentPort!.postMessage(report)
    })
  })
}

if (!isMainThread) {
  // started before the run exists, so that nothing but the connection stands between its creation and them
  parentPort!.once("message", (start: FollowerStart) =>
    follower({ ...(workerData as FollowerData), ...start })
  )
}
