import type { SqlClient } from "@effect/sql"
import type { Effect } from "effect"
import initial from "./0001_initial.ts"
import engine from "./0002_engine.ts"
import engineWrites from "./0003_engine_writes.ts"
import eventTime from "./0004_event_time.ts"

/**
 * Every migration, in order: `<id>_<name>` → the Effect that applies it. Static imports, so `bun build --compile`
 * bundles them into the binary (a directory scan would not survive bundling).
 */
export const migrations: Record<string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>> = {
  "0001_initial": initial,
  "0002_engine": engine,
  "0003_engine_writes": engineWrites,
  "0004_event_time": eventTime
}
