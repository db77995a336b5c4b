import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { migrate } from "../src/layers/Database.ts"
import * as PgliteSqlClient from "../src/layers/PgliteSqlClient.ts"
import { seedRun } from "./support/fixtures.ts"
import { adminUrl, emptyPostgresLayer, testDatabases } from "./support/TestDatabase.ts"

const TABLES = [
  "api_key",
  "dataset",
  "dataset_row",
  "manual_grade",
  "model_config",
  "prompt",
  "prompt_version",
  "run",
  "run_cell",
  "run_cell_event",
  "run_model"
]

const count = (sql: SqlClient.SqlClient, table: string, column: string, id: string) =>
  Effect.map(
    sql<{ n: number }>`select count(*)::int as n from ${sql(`assay.${table}`)} where ${sql(column)} = ${id}`,
    (rows) => rows[0]!.n
  )

/** Migrations from nothing, on an empty database of each kind. */
const emptyDatabases: ReadonlyArray<readonly [string, Layer.Layer<SqlClient.SqlClient, unknown>]> = [
  ["pglite", PgliteSqlClient.layer({})],
  ...(adminUrl ? [["postgres", emptyPostgresLayer(adminUrl)] as const] : [])
]

describe.each(emptyDatabases)("migrations from empty on %s", (_kind, database) => {
  it.live(
    "creates every table with row-level security, and a second run applies nothing",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const before = yield* sql<{ n: number }>`
        select count(*)::int as n from information_schema.tables where table_schema = 'assay'`
        expect(before[0]!.n).toBe(0)

        const first = yield* migrate
        expect(first.map(([id, name]) => `${id}_${name}`)).toEqual([
          "1_initial",
          "2_engine",
          "3_engine_writes",
          "4_event_time"
        ])

        const tables = yield* sql<{ relname: string; relrowsecurity: boolean }>`
        select c.relname, c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'assay' and c.relkind = 'r' and c.relname <> 'schema_migrations' order by c.relname`
        expect(tables.map((t) => t.relname)).toEqual(TABLES)
        expect(tables.every((t) => t.relrowsecurity)).toBe(true)

        const second = yield* migrate
        expect(second).toEqual([])
      }).pipe(Effect.provide(database), Effect.provide(Reactivity.layer)),
    { timeout: 60_000 }
  )
})

for (const database of testDatabases) {
  layer(database.layer, { excludeTestServices: true, timeout: 60_000 })(
    `schema on ${database.kind}`,
    (it) => {
      it.effect("deleting a run removes its models, cells, events and grades, and nothing else", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const seeded = yield* seedRun(sql, { rows: 3 })
          const other = yield* seedRun(sql, { rows: 2 })
          expect(yield* count(sql, "run_model", "run_id", seeded.runId)).toBe(2)
          expect(yield* count(sql, "run_cell", "run_id", seeded.runId)).toBe(6)
          expect(yield* count(sql, "run_cell_event", "run_id", seeded.runId)).toBe(6)

          yield* sql`delete from assay.run where id = ${seeded.runId}`

          expect(yield* count(sql, "run_model", "run_id", seeded.runId)).toBe(0)
          expect(yield* count(sql, "run_cell", "run_id", seeded.runId)).toBe(0)
          expect(yield* count(sql, "run_cell_event", "run_id", seeded.runId)).toBe(0)
          const grades = yield* sql<{ n: number }>`
          select count(*)::int as n from assay.manual_grade where user_id = ${seeded.ownerId}`
          expect(grades[0]!.n).toBe(0)
          // the dataset and prompt outlive the run; the other run is untouched
          expect(yield* count(sql, "dataset_row", "dataset_id", seeded.datasetId)).toBe(3)
          expect(yield* count(sql, "prompt_version", "prompt_id", seeded.promptId)).toBe(1)
          expect(yield* count(sql, "run_cell", "run_id", other.runId)).toBe(4)
        })
      )

      it.effect("a dataset used by a run cannot be deleted; deleting a prompt takes its runs along", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const seeded = yield* seedRun(sql, { rows: 2 })
          const blocked = yield* Effect.exit(sql`delete from assay.dataset where id = ${seeded.datasetId}`)
          expect(Exit.isFailure(blocked)).toBe(true)
          expect(yield* count(sql, "dataset_row", "dataset_id", seeded.datasetId)).toBe(2)

          yield* sql`delete from assay.prompt where id = ${seeded.promptId}`
          expect(yield* count(sql, "run", "id", seeded.runId)).toBe(0)
          expect(yield* count(sql, "run_cell", "run_id", seeded.runId)).toBe(0)

          yield* sql`delete from assay.dataset where id = ${seeded.datasetId}`
          expect(yield* count(sql, "dataset_row", "dataset_id", seeded.datasetId)).toBe(0)
        })
      )

      it.effect("check constraints reject values outside every enum", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const seeded = yield* seedRun(sql, { rows: 1 })
          const owner = seeded.ownerId
          const cell = seeded.cellIds[0]!
          const attempts = [
            sql`insert into assay.prompt (owner_id, name, type) values (${owner}, 'x', 'judge')`,
            sql`insert into assay.model_config (owner_id, provider, model, label) values (${owner}, 'cohere', 'm', 'm')`,
            sql`insert into assay.dataset (owner_id, name, format) values (${owner}, 'd', 'xlsx')`,
            sql`update assay.run set status = 'paused' where id = ${seeded.runId}`,
            sql`update assay.run set active_metric = 'vibes' where id = ${seeded.runId}`,
            sql`update assay.run_cell set status = 'done' where id = ${cell}`,
            sql`update assay.run_cell set grade = 'maybe' where id = ${cell}`,
            sql`update assay.run_cell set stage = 'review' where id = ${cell}`,
            sql`insert into assay.run_cell_event (run_id, run_cell_id, event_type) values (${seeded.runId}, ${cell}, 'exploded')`,
            sql`insert into assay.manual_grade (run_cell_id, value, user_id) values (${cell}, 'meh', ${owner})`,
            sql`insert into assay.api_key (owner_id, provider, encrypted_key, key_suffix) values (${owner}, 'mock', '\\x00', 'abcd')`,
            // a running cell must hold a lease
            sql`update assay.run_cell set status = 'running' where id = ${cell}`
          ]
          for (const attempt of attempts) {
            const exit = yield* Effect.exit(attempt)
            expect(Exit.isFailure(exit)).toBe(true)
          }
          // and the values inside the enums pass
          yield* sql`update assay.run_cell set status = 'running', lease_owner = 'w1', lease_expires_at = now() + interval '30 seconds', grade = 'pass', stage = 'grade' where id = ${cell}`
          yield* sql`update assay.run set status = 'running', active_metric = 'cost' where id = ${seeded.runId}`
        })
      )

      it.effect("model configs are unique per owner, provider, model and base URL", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const owner = crypto.randomUUID()
          yield* sql`insert into assay.model_config (owner_id, provider, model, label) values (${owner}, 'openai', 'gpt-4o', 'a')`
          const duplicate = yield* Effect.exit(
            sql`insert into assay.model_config (owner_id, provider, model, label) values (${owner}, 'openai', 'gpt-4o', 'b')`
          )
          expect(Exit.isFailure(duplicate)).toBe(true)
          // another base URL, or another owner, is a different model
          yield* sql`insert into assay.model_config (owner_id, provider, model, label, base_url) values (${owner}, 'openai', 'gpt-4o', 'c', 'http://127.0.0.1:8080/v1')`
          yield* sql`insert into assay.model_config (owner_id, provider, model, label) values (${crypto.randomUUID()}, 'openai', 'gpt-4o', 'd')`
        })
      )

      it.effect("events are ordered by id in insertion order, across cells and transactions", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const seeded = yield* seedRun(sql, { rows: 2 })
          const types = ["started", "retrying", "succeeded", "grader_started", "grader_succeeded"] as const
          const written: Array<string> = []
          for (const [i, type] of types.entries()) {
            for (const cell of seeded.cellIds) {
              const tag = `${type}:${cell}:${i}`
              written.push(tag)
              yield* sql.withTransaction(
                sql`insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
                  values (${seeded.runId}, ${cell}, ${type}, ${JSON.stringify({ tag })}::jsonb)`
              )
            }
          }
          const events = yield* sql<{ id: string; payload: { tag?: string } }>`
          select id, payload from assay.run_cell_event
          where run_id = ${seeded.runId} and event_type <> 'queued' order by id`
          expect(events.map((e) => e.payload.tag)).toEqual(written)
          const ids = events.map((e) => BigInt(e.id))
          expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true)
        })
      )

      it.effect("updated_at moves on every update of a cell", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const seeded = yield* seedRun(sql, { rows: 1 })
          const cell = seeded.cellIds[0]!
          const [before] = yield* sql<{
            updated_at: Date
          }>`select updated_at from assay.run_cell where id = ${cell}`
          yield* Effect.sleep("20 millis")
          yield* sql`update assay.run_cell set output_raw = 'hello' where id = ${cell}`
          const [after] = yield* sql<{
            updated_at: Date
          }>`select updated_at from assay.run_cell where id = ${cell}`
          expect(after!.updated_at).toBeInstanceOf(Date)
          expect(after!.updated_at.getTime()).toBeGreaterThan(before!.updated_at.getTime())
        })
      )

      it.effect("row-level security lets a Supabase user see only their own rows", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const mine = yield* seedRun(sql, { rows: 2 })
          yield* seedRun(sql, { rows: 2 })
          // a role without BYPASSRLS, as Supabase's `authenticated` is (roles are cluster-wide: create once)
          yield* sql.unsafe(`do $$ begin
            create role assay_rls_probe nologin;
          exception when duplicate_object then null; end $$`)
          yield* sql.unsafe(`grant usage on schema assay to assay_rls_probe;
          grant select on all tables in schema assay to assay_rls_probe`)
          const seen = yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`select set_config('request.jwt.claims', ${JSON.stringify({ sub: mine.ownerId })}, true)`
              yield* sql.unsafe("set local role assay_rls_probe")
              const runs = yield* sql<{ owner_id: string }>`select owner_id from assay.run`
              const cells = yield* sql<{ n: number }>`select count(*)::int as n from assay.run_cell`
              const rows = yield* sql<{ n: number }>`select count(*)::int as n from assay.dataset_row`
              return { runs, cells: cells[0]!.n, rows: rows[0]!.n }
            })
          )
          expect(seen.runs.map((r) => r.owner_id)).toEqual([mine.ownerId])
          expect(seen.cells).toBe(4)
          expect(seen.rows).toBe(2)
        })
      )
    }
  )
}
