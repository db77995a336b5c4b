// Shared by the benchmarks that drive the real server: `assay serve` as a child process on a given database, a
// small REST client for setting up runs, and a Postgres connection for checking what the server wrote.
import { SQL } from "bun"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { csv } from "./support.ts"

const root = path.resolve(import.meta.dir, "..")
const mainScript = path.join(root, "src", "main.ts")

/** A port that was free a moment ago (the server logs its address only at Info, which the benchmarks mute). */
const freePort = async () => {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = probe.port
  await probe.stop(true)
  return port
}

export interface ServerProcess {
  readonly url: string
  readonly pid: number
  readonly child: Bun.Subprocess<"ignore", "pipe", "pipe">
  /** From spawn to the first healthy `/healthz`. */
  readonly startMs: number
  /** The last lines the process wrote (stdout and stderr), for diagnostics. */
  readonly output: () => string
  /** How many times the process logged each message, by level (JSON log lines only). */
  readonly logCounts: () => Record<string, number>
  /** Peak resident memory of the process so far (VmHWM), in MB; null once it has exited. */
  readonly peakRssMb: () => number | null
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  readonly stop: (graceMs?: number) => Promise<number | null>
}

const TAIL_CHARS = 20_000

/**
 * `bun src/main.ts serve` on `databaseUrl` with quiet logs, in an empty working directory (so no `.env` leaks
 * in); resolves once `/healthz` answers 200.
 */
export const startServer = async (
  databaseUrl: string,
  env: Record<string, string> = {}
): Promise<ServerProcess> => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "assay-bench-server-"))
  const port = await freePort()
  const started = performance.now()
  // e.g. BENCH_SERVER_BUN_ARGS="--cpu-prof-md --cpu-prof-dir=/tmp/prof" to profile the server
  const bunArgs = (process.env.BENCH_SERVER_BUN_ARGS ?? "").split(" ").filter((a) => a !== "")
  const child = Bun.spawn([process.execPath, ...bunArgs, mainScript, "serve"], {
    cwd,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      ASSAY_DATA_DIR: cwd,
      ASSAY_HOST: "127.0.0.1",
      ASSAY_PORT: String(port),
      LOG_LEVEL: process.env.BENCH_SERVER_LOG ?? "Warn",
      ...env
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe"
  })
  let tail = ""
  const logCounts: Record<string, number> = {}
  const countLine = (line: string) => {
    if (!line.startsWith("{")) return
    try {
      const entry = JSON.parse(line) as { logLevel?: string; message?: unknown }
      const key = `${entry.logLevel ?? "?"}: ${typeof entry.message === "string" ? entry.message : JSON.stringify(entry.message)}`
      logCounts[key] = (logCounts[key] ?? 0) + 1
    } catch {
      // not a log line of ours
    }
  }
  // one reader per pipe for the life of the child, so its pipes never fill
  const drain = async (stream: ReadableStream<Uint8Array>, echo: boolean) => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    let partial = ""
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      const text = decoder.decode(value, { stream: true })
      if (echo) process.stderr.write(text)
      tail = (tail + text).slice(-TAIL_CHARS)
      const lines = (partial + text).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) countLine(line)
    }
  }
  const echo = process.env.BENCH_SERVER_ECHO === "1"
  void drain(child.stdout, echo)
  void drain(child.stderr, echo)

  const url = `http://127.0.0.1:${port}`
  const deadline = performance.now() + 60_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${tail}`)
    if (performance.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`server not healthy after 60 s:\n${tail}`)
    }
    const healthy = await fetch(`${url}/healthz`).then(
      (r) => r.status === 200,
      () => false
    )
    if (healthy) break
    await Bun.sleep(25)
  }
  const startMs = Math.round(performance.now() - started)

  const peakRssMb = () => {
    try {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8")
      const match = /VmHWM:\s+(\d+) kB/.exec(status)
      return match ? Math.round(Number(match[1]) / 1024) : null
    } catch {
      return null
    }
  }

  const stop = async (graceMs = 15_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    child.kill("SIGTERM")
    const exited = await Promise.race([child.exited, Bun.sleep(graceMs).then(() => "timeout" as const)])
    if (exited !== "timeout") return exited
    child.kill("SIGKILL")
    await child.exited
    return null
  }

  return {
    url,
    pid: child.pid,
    child,
    startMs,
    output: () => tail,
    logCounts: () => ({ ...logCounts }),
    peakRssMb,
    stop
  }
}

/** JSON over `/api/v1`; a non-2xx answer throws with its body. */
export const restClient = (baseUrl: string) => {
  const call = async <A>(method: string, route: string, init: RequestInit = {}): Promise<A> => {
    const response = await fetch(`${baseUrl}/api/v1${route}`, { method, ...init })
    const text = await response.text()
    if (!response.ok) throw new Error(`${method} ${route} → ${response.status}: ${text.slice(0, 500)}`)
    return (text === "" ? undefined : JSON.parse(text)) as A
  }
  const json = (body: unknown): RequestInit => ({
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  })
  return {
    get: <A>(route: string) => call<A>("GET", route),
    post: <A>(route: string, body: unknown) => call<A>("POST", route, json(body)),
    upload: <A>(route: string, filename: string, content: string, name: string) => {
      const form = new FormData()
      form.append("name", name)
      form.append("file", new Blob([content], { type: "text/csv" }), filename)
      return call<A>("POST", route, { body: form })
    }
  }
}

export interface ModelSpec {
  readonly provider: "mock" | "openai" | "anthropic" | "openai-compatible"
  readonly model: string
  readonly baseUrl?: string
}

export interface RunSummary {
  readonly id: string
  readonly status: string
  readonly counts: { readonly total: number }
}

/**
 * Over REST: a generator prompt, a CSV dataset of `rows` distinct documents and the given models; then a run of
 * them all. Returns the run and how long its creation took.
 */
export const createRun = async (baseUrl: string, rows: number, models: ReadonlyArray<ModelSpec>) => {
  const api = restClient(baseUrl)
  const prompt = await api.post<{ id: string }>("/prompts", {
    name: "Summarise",
    type: "generator",
    systemText: "You summarise.",
    userTemplate: "Summarise {{text}} in one line."
  })
  const dataset = await api.upload<{ id: string }>(
    "/datasets",
    "docs.csv",
    csv(rows, (i) => ({ text: `document ${i} about topic ${i % 97}` })),
    "docs"
  )
  // local mode seeds default models at start-up (`mock-1` among them): reuse a matching one
  const existing =
    await api.get<Array<{ id: string; provider: string; model: string; baseUrl: string | null }>>("/models")
  const modelIds: Array<string> = []
  for (const spec of models) {
    const found = existing.find(
      (m) => m.provider === spec.provider && m.model === spec.model && m.baseUrl === (spec.baseUrl ?? null)
    )
    const model =
      found ??
      (await api.post<{ id: string }>("/models", {
        provider: spec.provider,
        model: spec.model,
        label: spec.model,
        baseUrl: spec.baseUrl ?? null
      }))
    modelIds.push(model.id)
  }
  const started = performance.now()
  const run = await api.post<RunSummary>("/runs", {
    promptId: prompt.id,
    datasetId: dataset.id,
    modelIds
  })
  return { run, createdAt: started, runCreationMs: Math.round(performance.now() - started) }
}

/** A plain Postgres connection for polling and checks (Bun's client: nothing of the app's layers involved). */
export const database = (url: string) => new SQL({ url, max: 2 })

/** Counts of a run's cells by status. */
export const cellCounts = async (sql: SQL, runId: string) => {
  const rows: Array<{ status: string; n: number }> = await sql`
    select status, count(*)::int as n from assay.run_cell where run_id = ${runId} group by status`
  const counts: Record<string, number> = {}
  for (const row of rows) counts[row.status] = row.n
  return counts
}

/** Nearest-rank percentile of a histogram with one bucket per millisecond. */
export const histogramPercentile = (histogram: Uint32Array, total: number, p: number) => {
  if (total === 0) return null
  const rank = Math.ceil((p / 100) * total)
  let seen = 0
  for (let ms = 0; ms < histogram.length; ms++) {
    seen += histogram[ms]!
    if (seen >= rank) return ms
  }
  return histogram.length - 1
}
