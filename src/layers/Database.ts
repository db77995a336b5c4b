import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { migrations } from "../../migrations/index.ts"
import { AppConfig } from "./Config.ts"
import * as PgliteSqlClient from "./PgliteSqlClient.ts"

export const MIGRATIONS_TABLE = "assay.schema_migrations"

const migrator = Migrator.make({})

/** Apply pending migrations; safe to run from several processes at once (the migrator locks its table). */
export const migrate: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  Migrator.MigrationError | SqlError,
  SqlClient.SqlClient
> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create schema if not exists assay`
  return yield* migrator({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE })
}).pipe(Effect.withSpan("Database.migrate"))

export const pgLayer = (url: Parameters<typeof PgClient.layer>[0]["url"]) =>
  PgClient.layer({
    url,
    maxConnections: 10,
    // node-postgres' default application name is empty; this names our sessions in pg_stat_activity
    applicationName: "assay"
  })

/** The app's one SqlClient: real Postgres when DATABASE_URL is set, else PGlite in ASSAY_DATA_DIR. */
export const clientLayer = (
  assets?: PgliteSqlClient.PgliteAssets
): Layer.Layer<SqlClient.SqlClient, SqlError, AppConfig> =>
  Layer.unwrapEffect(
    Effect.map(AppConfig, (config) =>
      Option.match(config.databaseUrl, {
        onSome: (url) => pgLayer(url),
        onNone: () => PgliteSqlClient.layer({ dataDir: path.resolve(config.dataDir, "db"), assets })
      })
    )
  )

/** The client, migrated before anything else may use it. */
export const layer = (assets?: PgliteSqlClient.PgliteAssets) =>
  Layer.effectDiscard(migrate).pipe(Layer.provideMerge(clientLayer(assets)))
