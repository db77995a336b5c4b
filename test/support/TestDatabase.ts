import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { inject } from "vitest"
import * as Database from "../../src/layers/Database.ts"
import * as PgliteSqlClient from "../../src/layers/PgliteSqlClient.ts"

export type DatabaseKind = "pglite" | "postgres"

export interface TestDatabase {
  readonly kind: DatabaseKind
  /** A migrated database of its own, dropped when the layer is released. */
  readonly layer: Layer.Layer<SqlClient.SqlClient, unknown>
}

/** A PGlite cloned from the migrated template the global setup made. */
export const pgliteLayer: Layer.Layer<SqlClient.SqlClient | PgliteSqlClient.Pglite, SqlError> =
  Layer.unwrapEffect(
    Effect.promise(async () => {
      const template = new Blob([await Bun.file(inject("pgliteTemplate")).arrayBuffer()])
      return PgliteSqlClient.layer({ loadDataDir: template })
    })
  )

export const adminUrl = process.env.TEST_DATABASE_URL

const databaseUrl = (base: string, name: string) => {
  const url = new URL(base)
  url.pathname = `/${name}`
  return url.toString()
}

/** Runs `f` on a connection of its own to the TEST_DATABASE_URL server. */
export const onAdmin = <A, E>(base: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(base), maxConnections: 1 })),
    Effect.scoped
  )

/** A fresh, empty database on the TEST_DATABASE_URL server; dropped on release. */
export const emptyPostgresLayer = (
  base: string
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const name = `assay_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`
      yield* Effect.acquireRelease(
        onAdmin(base, (sql) => sql.unsafe(`create database ${name}`)),
        () =>
          onAdmin(base, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`)).pipe(
            Effect.orDie
          )
      )
      return Database.pgLayer(Redacted.make(databaseUrl(base, name)))
    })
  )

export const postgresLayer = (base: string) =>
  Layer.effectDiscard(Database.migrate).pipe(Layer.provideMerge(emptyPostgresLayer(base)))

export const testDatabases: ReadonlyArray<TestDatabase> = [
  { kind: "pglite", layer: pgliteLayer },
  ...(adminUrl ? [{ kind: "postgres" as const, layer: postgresLayer(adminUrl) }] : [])
]
