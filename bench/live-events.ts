// Benchmark 4, live events: the real server (a child process) on real Postgres runs 5,000 rows × 4 mock models
// while 200 SSE subscribers follow `GET /api/v1/runs/:id/events`. Every subscriber must receive every event of
// the run (queued, started, succeeded: the table's rows, in id order, no gap, no duplicate); publish-to-receive
// latency is receive time minus the event's `createdAt`.
// Target: every subscriber complete, live-event latency p99 under 100 ms.
//
// The run's cells and their `queued` events are created in one transaction with the run, so nobody can subscribe
// before them: subscribers connect right after `POST /runs` and start from the beginning (no Last-Event-ID),
// as a page opened on a new run does. Events created before a subscriber's stream opened reach it by replay
// from the table; their receive time minus `createdAt` is the subscriber's wait, not publish-to-receive, so the
// target is taken on the events created after the subscriber connected ("live"), and all events are reported too.
// A stream the server ends is resumed with Last-Event-ID after the advertised retry delay, as EventSource does.
import {
  cellCounts,
  createRun,
  database,
  histogramPercentile,
  type ServerProcess,
  startServer
} from "./server.ts"
import { freshDatabase, writeResult } from "./support.ts"

const ROWS = Number(process.env.BENCH_ROWS ?? 5_000)
const MODELS = 4
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 200)
/** After the run ends, how long subscribers may go without any progress before the benchmark gives up. */
const STALL_MS = 30_000
const HISTOGRAM_MS = 600_000
const TARGET_P99_MS = 100

interface Follower {
  readonly index: number
  readonly ids: Array<number>
  lastId: number
  /** Epoch ms when the first response arrived: events created after it are live for this subscriber. */
  connectedAt: number | null
  connects: number
  /** Streams that ended while the benchmark was still listening (the server closed them). */
  ended: number
  readonly errors: Array<string>
  outOfOrder: number
}

const histogram = (maxMs = HISTOGRAM_MS) => ({ counts: new Uint32Array(maxMs + 1), total: 0, max: 0 })
type Histogram = ReturnType<typeof histogram>
const liveLatency = histogram()
const allLatency = histogram()
const liveByType = new Map<string, Histogram>()
// where live latency goes: event created → visible in the table (the writer's transaction, to its commit),
// then visible → received (the server's delivery)
const visibleToReceived = histogram()
/** A number per event id: a fresh database's ids are small and dense, and 200 subscribers look each one up. */
class ById {
  private values = new Float64Array(1 << 16).fill(Number.NaN)
  get(id: number) {
    return id < this.values.length ? this.values[id]! : Number.NaN
  }
  has(id: number) {
    return !Number.isNaN(this.get(id))
  }
  set(id: number, value: number) {
    if (id >= this.values.length) {
      const grown = new Float64Array(Math.max(id + 1, this.values.length * 2)).fill(Number.NaN)
      grown.set(this.values)
      this.values = grown
    }
    this.values[id] = value
  }
  *entries() {
    for (let id = 0; id < this.values.length; id++) if (this.has(id)) yield [id, this.values[id]!] as const
  }
}
/** Epoch ms when each event id was first seen committed (by the table watcher, or by a delivery). */
const visibleAt = new ById()
// live latency by when the event was created (WINDOW_MS windows from the run's creation), to tell the
// subscribers' catch-up from the steady state after it; latencies above WINDOW_CAP_MS count as that
const WINDOW_MS = 10_000
const WINDOW_CAP_MS = 60_000
const liveByWindow: Array<Histogram> = []
let runStartedAt = Number.POSITIVE_INFINITY
/** createdAt of each event id, as first received. */
const createdAtOf = new ById()

const record = (h: Histogram, ms: number) => {
  const bucket = Math.min(h.counts.length - 1, Math.max(0, Math.round(ms)))
  h.counts[bucket]! += 1
  h.total += 1
  if (ms > h.max) h.max = ms
}

const summary = (h: Histogram) => ({
  count: h.total,
  p50: histogramPercentile(h.counts, h.total, 50),
  p90: histogramPercentile(h.counts, h.total, 90),
  p99: histogramPercentile(h.counts, h.total, 99),
  max: h.total === 0 ? null : Math.round(h.max)
})

// The subscribers parse the stream as bytes: 200 of them read every event, and decoding and slicing strings
// would make the client, not the server, the slowest part of the benchmark.
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

const typeNames = new Map<number, string>()

/**
 * One event frame as the server writes it: `id:`, `event:` and `data:` lines (the JSON has no raw newline) and
 * a blank line; `idEnd`, `typeEnd` and `dataEnd` are the positions of the three lines' newlines.
 */
const onEvent = (
  f: Follower,
  b: Buffer,
  start: number,
  idEnd: number,
  typeEnd: number,
  dataEnd: number,
  receivedAt: number
) => {
  const id = digitsAt(b, start + 4, idEnd - start - 4)
  // createdAt is the CellEvent's last field, after the payload: `"createdAt":"<24 characters>"}` ends the line
  let at = dataEnd - CREATED_AT.length - 26
  if (b[at] !== 0x22 || b[at + 1] !== 0x63 || b[at + 12] !== 0x22) at = b.lastIndexOf(CREATED_AT, dataEnd)
  if (at < typeEnd) throw new Error(`event ${id} without createdAt`)
  const createdAt = isoAt(b, at + CREATED_AT.length)
  if (id <= f.lastId) f.outOfOrder += 1
  else f.lastId = id
  f.ids.push(id)
  if (!createdAtOf.has(id)) createdAtOf.set(id, createdAt)
  // a delivered event has committed: the watcher may not have polled since
  let visible = visibleAt.get(id)
  if (Number.isNaN(visible) || visible > receivedAt) visibleAt.set(id, (visible = receivedAt))
  const latency = receivedAt - createdAt
  record(allLatency, latency)
  if (f.connectedAt !== null && createdAt >= f.connectedAt) {
    record(liveLatency, latency)
    const window = Math.max(0, Math.floor((createdAt - runStartedAt) / WINDOW_MS))
    record((liveByWindow[window] ??= histogram(WINDOW_CAP_MS)), latency)
    record(visibleToReceived, receivedAt - visible)
    // an event type is known by its first letter and length
    const typeKey = b[idEnd + 8]! * 100 + typeEnd - idEnd - 8
    let type = typeNames.get(typeKey)
    if (type === undefined) typeNames.set(typeKey, (type = b.toString("latin1", idEnd + 8, typeEnd)))
    let byType = liveByType.get(type)
    if (byType === undefined) liveByType.set(type, (byType = histogram()))
    record(byType, latency)
  }
}

/** Reads the frames of `b` from `start`; answers where the first incomplete one starts (or `b.length`). */
const onFrames = (
  f: Follower,
  b: Buffer,
  start: number,
  receivedAt: number,
  onRetry: (ms: number) => void
) => {
  while (start < b.length) {
    if (b[start] === 0x69) {
      // `id: ...`
      const idEnd = b.indexOf(NEWLINE, start)
      const typeEnd = idEnd === -1 ? -1 : b.indexOf(NEWLINE, idEnd + 1)
      const dataEnd = typeEnd === -1 ? -1 : b.indexOf(NEWLINE, typeEnd + 1)
      if (dataEnd === -1 || dataEnd + 1 >= b.length) return start
      if (b[dataEnd + 1] !== NEWLINE)
        throw new Error(`unexpected frame ${b.toString("latin1", start, dataEnd + 2)}`)
      onEvent(f, b, start, idEnd, typeEnd, dataEnd, receivedAt)
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

const follow = async (f: Follower, url: string, signal: AbortSignal) => {
  let retryMs = 2_000
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = f.lastId > 0 ? { "last-event-id": String(f.lastId) } : {}
      const response = await fetch(url, { headers, signal })
      if (response.status !== 200 || response.body === null) {
        throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`)
      }
      f.connects += 1
      f.connectedAt ??= Date.now()
      const reader = response.body.getReader()
      // the start of a frame the last read ended inside
      let rest: Buffer | null = null
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        const receivedAt = Date.now()
        const chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
        const b: Buffer = rest === null ? chunk : Buffer.concat([rest, chunk])
        const start = onFrames(f, b, 0, receivedAt, (ms) => (retryMs = ms || retryMs))
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

/** CPU seconds (user + system) a process has used, from /proc; null when unreadable. */
const cpuSecondsOf = async (pid: number) => {
  try {
    const stat = await Bun.file(`/proc/${pid}/stat`).text()
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) "
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

const total = ROWS * MODELS
const db = await freshDatabase("live")
const sql = database(db.url)
let server: ServerProcess | undefined
const stop = new AbortController()
let watching = true
const followers: Array<Follower> = []
const tasks: Array<Promise<void>> = []
let clientPeakRss = process.memoryUsage().rss
const rssTimer = setInterval(() => {
  clientPeakRss = Math.max(clientPeakRss, process.memoryUsage().rss)
}, 250)
try {
  server = await startServer(db.url)
  const models = Array.from({ length: MODELS }, (_, i) => ({
    provider: "mock" as const,
    model: `mock-${i + 1}`
  }))
  const clientCpuStart = process.cpuUsage()
  const serverCpuStart = await cpuSecondsOf(server.pid)
  runStartedAt = Date.now()
  const { run, createdAt, runCreationMs } = await createRun(server.url, ROWS, models)
  if (run.counts.total !== total) throw new Error(`the run has ${run.counts.total} cells, expected ${total}`)

  const eventsUrl = `${server.url}/api/v1/runs/${run.id}/events`
  for (let index = 0; index < SUBSCRIBERS; index++) {
    const f: Follower = {
      index,
      ids: [],
      lastId: 0,
      connectedAt: null,
      connects: 0,
      ended: 0,
      errors: [],
      outOfOrder: 0
    }
    followers.push(f)
    tasks.push(follow(f, eventsUrl, stop.signal))
  }
  let allConnectedMs: number | null = null

  // the table watcher: polls the run's events above the highest id below which it has seen all
  let watcherPolls = 0
  const watcher = (async () => {
    let cursor = 0
    let holeSince: number | null = null
    while (watching) {
      const rows: Array<{ id: string }> = await sql`
        select e.id::text as id from assay.run_cell_event e
        where e.run_id = ${run.id} and e.id > ${cursor} order by e.id`
      const now = Date.now()
      watcherPolls += 1
      for (const row of rows) {
        const id = Number(row.id)
        if (!visibleAt.has(id)) visibleAt.set(id, now)
      }
      const before = cursor
      while (visibleAt.has(cursor + 1)) cursor += 1
      // ids never committed (a rolled-back insert) leave a hole: step over it after a while
      if (cursor === before && rows.length > 0) {
        holeSince ??= now
        if (now - holeSince > 5_000) cursor = Number(rows[0]!.id) - 1
      } else holeSince = null
      await Bun.sleep(5)
    }
  })().catch((error: unknown) => {
    if (watching) throw error
  })

  const progress = (label: string, dbMaxId: number) => {
    const positions = followers.map((f) => f.lastId).sort((a, b) => a - b)
    console.error(
      `${label} ${((performance.now() - createdAt) / 1000).toFixed(1)}s: newest event ${dbMaxId}, subscribers at ` +
        `min ${positions[0]} / median ${positions[positions.length >> 1]}, connects ${followers.reduce((n, f) => n + f.connects, 0)}`
    )
  }
  const newestEventId = async () => {
    const [row]: Array<{ id: string | null }> = await sql`
      select max(id)::text as id from assay.run_cell_event where run_id = ${run.id}`
    return Number(row?.id ?? 0)
  }

  // the run: until every cell has finished
  let lastReport = performance.now()
  let counts: Record<string, number> = {}
  for (;;) {
    if (allConnectedMs === null && followers.every((f) => f.connectedAt !== null)) {
      allConnectedMs = Math.round(performance.now() - createdAt)
    }
    counts = await cellCounts(sql, run.id)
    const finished = (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.canceled ?? 0)
    if (finished >= total) break
    if (performance.now() - lastReport > 2_000) {
      progress("run", await newestEventId())
      lastReport = performance.now()
    }
    await Bun.sleep(50)
  }
  const runMs = Math.round(performance.now() - createdAt)

  // every event of the run is committed now: the reference list
  const expectedRows: Array<{ id: string; event_type: string }> = await sql`
    select e.id::text as id, e.event_type from assay.run_cell_event e where e.run_id = ${run.id} order by e.id`
  const expected = expectedRows.map((r) => Number(r.id))
  const byType: Record<string, number> = {}
  for (const r of expectedRows) byType[r.event_type] = (byType[r.event_type] ?? 0) + 1
  const lastExpected = expected[expected.length - 1]!

  // the subscribers: until each has the last event, or nobody moves for STALL_MS
  let lastMoved = performance.now()
  let positionSum = followers.reduce((n, f) => n + f.ids.length, 0)
  while (followers.some((f) => f.lastId < lastExpected)) {
    await Bun.sleep(50)
    const sum = followers.reduce((n, f) => n + f.ids.length, 0)
    if (sum !== positionSum) {
      positionSum = sum
      lastMoved = performance.now()
    } else if (performance.now() - lastMoved > STALL_MS) break
    if (performance.now() - lastReport > 2_000) {
      progress("catch-up", lastExpected)
      lastReport = performance.now()
    }
  }
  const deliveredMs = Math.round(performance.now() - createdAt)
  const serverCpuEnd = await cpuSecondsOf(server.pid)
  const clientCpu = process.cpuUsage(clientCpuStart)
  stop.abort()
  await Promise.all(tasks)
  watching = false
  await watcher
  const watchedFrom = Math.min(...followers.map((f) => f.connectedAt ?? Number.POSITIVE_INFINITY))
  const createdToVisible = histogram()
  for (const [id, created] of createdAtOf.entries()) {
    const visible = visibleAt.get(id)
    if (created >= watchedFrom && !Number.isNaN(visible)) record(createdToVisible, visible - created)
  }

  // every subscriber against the table
  let complete = 0
  let missingTotal = 0
  let extraTotal = 0
  const problems: Array<Record<string, unknown>> = []
  const expectedSet = new Set(expected)
  for (const f of followers) {
    const same = f.ids.length === expected.length && f.ids.every((id, i) => id === expected[i])
    if (same) {
      complete += 1
      continue
    }
    const got = new Set(f.ids)
    const missing = expected.filter((id) => !got.has(id))
    const extra = f.ids.length - (expected.length - missing.length)
    missingTotal += missing.length
    extraTotal += extra
    if (problems.length < 5) {
      problems.push({
        subscriber: f.index,
        received: f.ids.length,
        missing: missing.length,
        firstMissing: missing.slice(0, 5),
        duplicatesOrForeign: extra,
        notOfThisRun: f.ids.filter((id) => !expectedSet.has(id)).length,
        outOfOrder: f.outOfOrder,
        connects: f.connects,
        errors: f.errors
      })
    }
  }
  const live = summary(liveLatency)
  const all = summary(allLatency)
  const serverPeakRssMb = server.peakRssMb()
  const pass = complete === SUBSCRIBERS && live.p99 !== null && live.p99 < TARGET_P99_MS

  writeResult("live-events", {
    rows: ROWS,
    models: MODELS,
    cells: total,
    subscribers: SUBSCRIBERS,
    cellStatus: counts,
    events: expected.length,
    eventsByType: byType,
    runCreationMs,
    subscribersConnectedMs: allConnectedMs,
    runMs,
    lastEventDeliveredMs: deliveredMs,
    subscribersComplete: complete,
    missingEvents: missingTotal,
    duplicateOrForeignEvents: extraTotal,
    outOfOrderEvents: followers.reduce((n, f) => n + f.outOfOrder, 0),
    connects: followers.reduce((n, f) => n + f.connects, 0),
    streamsEndedByServer: followers.reduce((n, f) => n + f.ended, 0),
    connectionErrors: followers.reduce((n, f) => n + f.errors.length, 0),
    problems,
    latencyMs: {
      live,
      all,
      liveByType: Object.fromEntries([...liveByType].map(([type, h]) => [type, summary(h)])),
      // by creation time since POST /runs (seconds); latencies are capped at WINDOW_CAP_MS here
      liveByCreatedWindow: liveByWindow.flatMap((h, i) =>
        h === undefined ? [] : [{ fromS: (i * WINDOW_MS) / 1000, ...summary(h) }]
      ),
      // per event, created after the first subscriber connected; the watcher polls every ~5 ms
      createdToCommitted: summary(createdToVisible),
      // per live event and subscriber
      committedToReceived: summary(visibleToReceived),
      watcherPolls
    },
    serverLog: server.logCounts(),
    server: {
      startMs: server.startMs,
      peakRssMb: serverPeakRssMb,
      cpuSeconds:
        serverCpuStart === null || serverCpuEnd === null
          ? null
          : Math.round((serverCpuEnd - serverCpuStart) * 10) / 10
    },
    client: {
      peakRssMb: Math.round(clientPeakRss / 1024 / 1024),
      cpuSeconds: Math.round((clientCpu.user + clientCpu.system) / 1e5) / 10
    },
    targets: { subscribersComplete: SUBSCRIBERS, liveP99Ms: TARGET_P99_MS },
    pass
  })
} catch (error) {
  console.error(error)
  if (server) console.error(`server output (tail):\n${server.output()}`)
  process.exitCode = 1
} finally {
  clearInterval(rssTimer)
  stop.abort()
  watching = false
  await server?.stop()
  await sql.close()
  await db.drop()
}
