// Benchmark 4, live events: the real server (a child process) on real Postgres runs 5,000 rows × 4 mock models
// while 200 SSE subscribers follow `GET /api/v1/runs/:id/events`. Every subscriber must receive every event of
// the run after where it started (the table's rows, in id order, no gap, no duplicate); publish-to-receive
// latency is receive time minus the event's `createdAt` (when its row was written).
// Target: every subscriber complete, live-event latency p99 under 100 ms.
//
// Where they start (BENCH_FROM): "snapshot" (the default) is how the web app opens a run: it reads a page of the
// run's cells, whose `lastEventId` covers the run's `queued` events (published at its creation), and follows
// the stream after that id. "start" opens the stream with no Last-Event-ID: each subscriber first replays the
// run's 20,000 `queued` events from the table, and events created meanwhile wait behind that replay ("following"
// reports the events created after a subscriber had caught up, "catchUp" how long that took).
// Events created before a subscriber's stream opened are not counted as live. A stream the server ends is
// resumed with Last-Event-ID after the advertised retry delay, as EventSource does.
// The subscribers run in BENCH_CLIENT_THREADS worker threads (default 4; live-events-follower.ts), started before
// the run is created. BENCH_MOCK_LATENCY_MS sets the mock's answer time (default 0: the engine's top speed).
import { Worker } from "node:worker_threads"
import {
  type FollowerData,
  type FollowerStart,
  type FollowFrom,
  type Histogram,
  histogram,
  merge,
  record,
  sharedMemory,
  WINDOW_CAP_MS,
  WINDOW_MS,
  type WorkerReport
} from "./live-events-follower.ts"
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
const THREADS = Math.max(1, Math.min(SUBSCRIBERS, Number(process.env.BENCH_CLIENT_THREADS ?? 4)))
/** The mock's answer time (0: at once, the engine's top speed); e.g. 1000 for a provider's usual second. */
const MOCK_LATENCY_MS = Number(process.env.BENCH_MOCK_LATENCY_MS ?? 0)
const FROM: FollowFrom = process.env.BENCH_FROM === "start" ? "start" : "snapshot"
/** After the run ends, how long subscribers may go without any progress before the benchmark gives up. */
const STALL_MS = 30_000
const TARGET_P99_MS = 100

const summary = (h: Histogram) => ({
  count: h.total,
  p50: histogramPercentile(h.counts, h.total, 50),
  p90: histogramPercentile(h.counts, h.total, 90),
  p99: histogramPercentile(h.counts, h.total, 99),
  max: h.total === 0 ? null : Math.round(h.max)
})

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
// every event id of the run fits: a fresh database, its queued, started and succeeded events, and room to spare
const maxEventId = total * 3 * 4
const db = await freshDatabase("live")
const sql = database(db.url)
let server: ServerProcess | undefined
let watching = true
const shared = sharedMemory(SUBSCRIBERS, maxEventId)
const seen = new Int32Array(shared.seen)
const seenMax = new Int32Array(shared.seenMax)
const lastIds = new Int32Array(shared.lastIds)
const received = new Int32Array(shared.received)
const connects = new Int32Array(shared.connects)
const workers: Array<Worker> = []
let clientPeakRss = process.memoryUsage().rss
const rssTimer = setInterval(() => {
  clientPeakRss = Math.max(clientPeakRss, process.memoryUsage().rss)
}, 250)
try {
  server = await startServer(db.url)
  const models = Array.from({ length: MODELS }, (_, i) => ({
    provider: "mock" as const,
    model: `mock-${i + 1}${MOCK_LATENCY_MS > 0 ? `?latency=${MOCK_LATENCY_MS}` : ""}`
  }))
  for (let thread = 0; thread < THREADS; thread++) {
    const workerData: FollowerData = {
      indices: Array.from({ length: SUBSCRIBERS }, (_, i) => i).filter((i) => i % THREADS === thread),
      shared
    }
    const worker = new Worker(new URL("./live-events-follower.ts", import.meta.url), { workerData })
    await new Promise<void>((resolve, reject) => {
      worker.once("online", resolve)
      worker.once("error", reject)
    })
    workers.push(worker)
  }
  const clientCpuStart = process.cpuUsage()
  const serverCpuStart = await cpuSecondsOf(server.pid)
  const runStartedAt = Date.now()
  const { run, createdAt, runCreationMs } = await createRun(server.url, ROWS, models)
  if (run.counts.total !== total) throw new Error(`the run has ${run.counts.total} cells, expected ${total}`)

  const start: FollowerStart = {
    url: `${server.url}/api/v1/runs/${run.id}/events`,
    cellsUrl: `${server.url}/api/v1/runs/${run.id}/cells`,
    from: FROM,
    runStartedAt
  }
  for (const worker of workers) worker.postMessage(start)
  const reports = workers.map(
    (worker) =>
      new Promise<WorkerReport>((resolve, reject) => {
        worker.once("message", resolve)
        worker.once("error", reject)
      })
  )
  let allConnectedMs: number | null = null
  const sum = (values: Int32Array) => values.reduce((n, v) => n + v, 0)

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
        if (id >= seen.length) throw new Error(`event id ${id} beyond the ids the benchmark expects`)
        if (Atomics.load(seen, id) === 0) Atomics.store(seen, id, now - runStartedAt + 1)
        if (id > Atomics.load(seenMax, 0)) Atomics.store(seenMax, 0, id)
      }
      const before = cursor
      while (cursor + 1 < seen.length && Atomics.load(seen, cursor + 1) !== 0) cursor += 1
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
    const positions = [...lastIds].sort((a, b) => a - b)
    console.error(
      `${label} ${((performance.now() - createdAt) / 1000).toFixed(1)}s: newest event ${dbMaxId}, subscribers at ` +
        `min ${positions[0]} / median ${positions[positions.length >> 1]}, connects ${sum(connects)}`
    )
  }
  const newestEventId = async () => {
    const [row]: Array<{ id: string | null }> = await sql`
      select max(id)::text as id from assay.run_cell_event where run_id = ${run.id}`
    return Number(row?.id ?? 0)
  }

  // the run: until it has finished (its own status: counting its cells by status every 50 ms cost Postgres
  // as much CPU as a fifth of the engine's statements, on the cores the server shares)
  let lastReport = performance.now()
  for (;;) {
    if (allConnectedMs === null && connects.every((n) => n > 0)) {
      allConnectedMs = Math.round(performance.now() - createdAt)
    }
    const [state]: Array<{ status: string }> = await sql`select status from assay.run where id = ${run.id}`
    if (state !== undefined && ["completed", "failed", "canceled"].includes(state.status)) break
    if (performance.now() - lastReport > 2_000) {
      progress("run", await newestEventId())
      lastReport = performance.now()
    }
    await Bun.sleep(50)
  }
  const runMs = Math.round(performance.now() - createdAt)
  const counts = await cellCounts(sql, run.id)

  // every event of the run is committed now: the reference list
  const expectedRows: Array<{ id: string; event_type: string }> = await sql`
    select e.id::text as id, e.event_type from assay.run_cell_event e where e.run_id = ${run.id} order by e.id`
  const expected = expectedRows.map((r) => Number(r.id))
  const byType: Record<string, number> = {}
  for (const r of expectedRows) byType[r.event_type] = (byType[r.event_type] ?? 0) + 1
  const lastExpected = expected[expected.length - 1]!

  // the subscribers: until each has the last event, or nobody moves for STALL_MS
  let lastMoved = performance.now()
  let positionSum = sum(received)
  while (lastIds.some((id) => id < lastExpected)) {
    await Bun.sleep(50)
    const now = sum(received)
    if (now !== positionSum) {
      positionSum = now
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
  for (const worker of workers) worker.postMessage("stop")
  const done = await Promise.all(reports)
  watching = false
  await watcher

  const followers = done.flatMap((r) => r.followers).sort((a, b) => a.index - b.index)
  const combined = <K extends "live" | "all" | "following" | "visibleToReceived">(key: K) => {
    const h = histogram()
    for (const r of done) merge(h, r[key])
    return h
  }
  const liveByType = new Map<string, Histogram>()
  const liveByWindow: Array<Histogram> = []
  for (const r of done) {
    for (const [type, h] of Object.entries(r.liveByType)) {
      let into = liveByType.get(type)
      if (into === undefined) liveByType.set(type, (into = histogram()))
      merge(into, h)
    }
    r.liveByWindow.forEach((h, i) => {
      if (h !== null) merge((liveByWindow[i] ??= histogram(WINDOW_CAP_MS)), h)
    })
  }
  // per event created after the first subscriber connected: from its creation to its commit, as first seen by
  // the watcher or by any subscriber
  const watchedFrom = Math.min(...followers.map((f) => f.connectedAt ?? Number.POSITIVE_INFINITY))
  const createdToVisible = histogram()
  for (let id = 1; id < seen.length; id++) {
    const created = done.find((r) => !Number.isNaN(r.createdAt[id]!))?.createdAt[id]
    if (created === undefined || created < watchedFrom) continue
    const watched = seen[id]!
    const visible = Math.min(
      watched === 0 ? Infinity : runStartedAt + watched - 1,
      ...done.map((r) => (Number.isNaN(r.firstReceived[id]!) ? Infinity : r.firstReceived[id]!))
    )
    if (visible !== Infinity) record(createdToVisible, visible - created)
  }
  const catchUp = histogram()
  for (const f of followers) {
    if (f.connectedAt !== null && f.caughtUpAt !== null) record(catchUp, f.caughtUpAt - f.connectedAt)
  }

  // every subscriber against the table
  let complete = 0
  let missingTotal = 0
  let extraTotal = 0
  const problems: Array<Record<string, unknown>> = []
  const expectedSet = new Set(expected)
  let eventsPerSubscriberMin = Number.POSITIVE_INFINITY
  for (const f of followers) {
    // every event of the run after where it started (the first, or its snapshot's last event), in id order
    const due = f.startAfter === 0 ? expected : expected.filter((id) => id > f.startAfter)
    eventsPerSubscriberMin = Math.min(eventsPerSubscriberMin, due.length)
    const same = f.ids.length === due.length && due.every((id, i) => id === f.ids[i])
    if (same) {
      complete += 1
      continue
    }
    const got = new Set(f.ids)
    const missing = due.filter((id) => !got.has(id))
    const extra = f.ids.length - (due.length - missing.length)
    missingTotal += missing.length
    extraTotal += extra
    if (problems.length < 5) {
      problems.push({
        subscriber: f.index,
        startAfter: f.startAfter,
        received: f.ids.length,
        missing: missing.length,
        firstMissing: missing.slice(0, 5),
        duplicatesOrForeign: extra,
        notOfThisRun: f.ids.filter((id) => !expectedSet.has(id)).length,
        caughtUpMs: f.caughtUpAt === null || f.connectedAt === null ? null : f.caughtUpAt - f.connectedAt,
        outOfOrder: f.outOfOrder,
        connects: f.connects,
        errors: f.errors
      })
    }
  }
  const live = summary(combined("live"))
  const all = summary(combined("all"))
  const serverPeakRssMb = server.peakRssMb()
  const pass = complete === SUBSCRIBERS && live.p99 !== null && live.p99 < TARGET_P99_MS

  writeResult("live-events", {
    rows: ROWS,
    models: MODELS,
    cells: total,
    subscribers: SUBSCRIBERS,
    from: FROM,
    cellStatus: counts,
    events: expected.length,
    eventsByType: byType,
    runCreationMs,
    subscribersConnectedMs: allConnectedMs,
    runMs,
    lastEventDeliveredMs: deliveredMs,
    subscribersComplete: complete,
    // the fewest events one subscriber had to receive (all of them from the start; after its snapshot else)
    eventsPerSubscriberMin,
    startAfter: {
      min: Math.min(...followers.map((f) => f.startAfter)),
      max: Math.max(...followers.map((f) => f.startAfter))
    },
    missingEvents: missingTotal,
    duplicateOrForeignEvents: extraTotal,
    outOfOrderEvents: followers.reduce((n, f) => n + f.outOfOrder, 0),
    connects: followers.reduce((n, f) => n + f.connects, 0),
    streamsEndedByServer: followers.reduce((n, f) => n + f.ended, 0),
    connectionErrors: followers.reduce((n, f) => n + f.errors.length, 0),
    problems,
    clientThreads: THREADS,
    latencyMs: {
      live,
      all,
      following: summary(combined("following")),
      // per subscriber: from its connection to having received what the table held then
      catchUp: summary(catchUp),
      liveByType: Object.fromEntries([...liveByType].map(([type, h]) => [type, summary(h)])),
      // by creation time since POST /runs (seconds); latencies are capped at WINDOW_CAP_MS here
      liveByCreatedWindow: liveByWindow.flatMap((h, i) =>
        h === undefined ? [] : [{ fromS: (i * WINDOW_MS) / 1000, ...summary(h) }]
      ),
      // per event, created after the first subscriber connected; the watcher polls every ~5 ms
      createdToCommitted: summary(createdToVisible),
      // per live event and subscriber
      committedToReceived: summary(combined("visibleToReceived")),
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
  for (const worker of workers) void worker.terminate()
  watching = false
  await server?.stop()
  await sql.close()
  await db.drop()
}
