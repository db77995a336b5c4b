// Shared set-up for the benchmarks: a fresh migrated database on a real Postgres, the app's services on it,
// and a JSON result writer. Benchmarks run with `bun bench/<name>.ts`; results go to bench/results/<name>.json.
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, ManagedRuntime, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Config from "../src/layers/Config.ts"
import * as Database from "../src/layers/Database.ts"
import * as Scheduler from "../src/layers/Scheduler.ts"
import { ServicesLive } from "../src/layers/Services.ts"

export const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const onAdmin = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(adminUrl), maxConnections: 1 })),
    Effect.scoped,
    Effect.runPromise
  )

/** A new database for one benchmark run; `drop` removes it. */
export const freshDatabase = async (label: string) => {
  const name = `assay_bench_${label}_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`
  await onAdmin((sql) => sql.unsafe(`create database ${name}`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: () => onAdmin((sql) => sql.unsafe(`drop database if exists ${name} with (force)`))
  }
}

/** The app's services (engine included) on `databaseUrl`, configured by `env`, quiet logs. */
export const services = (databaseUrl: string, env: Record<string, string> = {}) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "assay-bench-"))
  const config = Config.layerFrom(
    ConfigProvider.fromMap(
      new Map(Object.entries({ ASSAY_DATA_DIR: dataDir, DATABASE_URL: databaseUrl, ...env }))
    )
  )
  const layer = ServicesLive.pipe(
    Layer.provideMerge(Database.layer()),
    Layer.provideMerge(config),
    // the server's scheduler, as `ServerApp` runs it
    Layer.provide(Scheduler.layer),
    Layer.provide(
      Logger.minimumLogLevel(process.env.BENCH_LOG === "debug" ? LogLevel.Debug : LogLevel.Warning)
    )
  )
  return ManagedRuntime.make(layer)
}

export const machine = () => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
  platform: `${os.platform()} ${os.arch()}`,
  bun: Bun.version,
  postgres: adminUrl.replace(/\/\/[^@]*@/, "//")
})

export const writeResult = (name: string, result: Record<string, unknown>) => {
  const dir = path.join(import.meta.dir, "results")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${name}.json`)
  const body = { benchmark: name, at: new Date().toISOString(), machine: machine(), ...result }
  fs.writeFileSync(file, JSON.stringify(body, null, 2) + "\n")
  console.log(JSON.stringify(body, null, 2))
  console.log(`written to ${path.relative(process.cwd(), file)}`)
}

/** Peak resident memory, sampled every 100 ms while `f` runs. */
export const withPeakRss = async <A>(f: () => Promise<A>) => {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 100)
  try {
    const value = await f()
    return { value, peakRssMb: Math.round(Math.max(peak, process.memoryUsage().rss) / 1024 / 1024) }
  } finally {
    clearInterval(timer)
  }
}

export const csv = (rows: number, columns: (i: number) => Record<string, string>) => {
  const first = columns(0)
  const headers = Object.keys(first)
  const quote = (v: string) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)
  const lines = [headers.join(",")]
  for (let i = 0; i < rows; i++) {
    const values = columns(i)
    lines.push(headers.map((h) => quote(values[h] ?? "")).join(","))
  }
  return lines.join("\n") + "\n"
}
