import { PGlite, type PGliteOptions, types } from "@electric-sql/pglite"
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Stream } from "effect"
import * as fs from "node:fs/promises"

/** Files PGlite loads at start; a compiled binary passes its embedded copies (see src/main.ts). */
export interface PgliteAssets {
  readonly wasm: string
  readonly initdbWasm: string
  readonly data: string
}

export interface PgliteConfig {
  /** A directory for durable data; absent means in memory. */
  readonly dataDir?: string | undefined
  /** A dump (`dumpDataDir`) to start from instead of running initdb: tests clone a migrated template. */
  readonly loadDataDir?: Blob | undefined
  readonly assets?: PgliteAssets | undefined
}

/** The underlying PGlite instance, for what only it can do (dumps in tests). */
export class Pglite extends Context.Tag("assay/Pglite")<Pglite, PGlite>() {}

// Match node-postgres, so code behaves the same on both databases: int8 and numeric arrive as strings.
const parsers = {
  [types.INT8]: (value: string) => value,
  [types.NUMERIC]: (value: string) => value
}

const loadAssets = async (assets: PgliteAssets): Promise<Partial<PGliteOptions>> => ({
  pgliteWasmModule: await WebAssembly.compile(await Bun.file(assets.wasm).arrayBuffer()),
  initdbWasmModule: await WebAssembly.compile(await Bun.file(assets.initdbWasm).arrayBuffer()),
  fsBundle: new Blob([await Bun.file(assets.data).arrayBuffer()])
})

const open = (config: PgliteConfig) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        if (config.dataDir) await fs.mkdir(config.dataDir, { recursive: true })
        return PGlite.create({
          ...(config.dataDir ? { dataDir: config.dataDir } : {}),
          ...(config.loadDataDir ? { loadDataDir: config.loadDataDir } : {}),
          ...(config.assets ? await loadAssets(config.assets) : {}),
          parsers
        })
      },
      catch: (cause) =>
        new SqlError({
          cause,
          message: `Failed to open the embedded database in ${config.dataDir ?? "memory"}`
        })
    }),
    (db) =>
      db.closed
        ? Effect.void
        : Effect.promise(() => db.close()).pipe(Effect.interruptible, Effect.timeoutOption(5_000))
  )

const fail = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

/**
 * An @effect/sql client over one embedded PGlite connection. PGlite has a single session, so a one-permit
 * semaphore serialises access: a statement holds the permit while it runs, a transaction for its whole life.
 */
export const make = (config: PgliteConfig) =>
  Effect.gen(function* () {
    const db = yield* open(config)
    const permit = yield* Effect.makeSemaphore(1)
    const compiler = PgClient.makeCompiler()

    const rowsOf = (results: ReadonlyArray<{ rows: ReadonlyArray<unknown> }>) =>
      results.length === 1 ? results[0]!.rows : results.map((r) => r.rows)

    class PgliteConnection implements Connection {
      constructor(private readonly inTransaction: boolean) {}

      // Statements are uninterruptible once sent: PGlite cannot cancel one, and the permit must cover it.
      private run<A>(f: () => Promise<A>): Effect.Effect<A, SqlError> {
        const statement = Effect.uninterruptible(Effect.tryPromise({ try: f, catch: fail }))
        return this.inTransaction ? statement : permit.withPermits(1)(statement)
      }

      private rows(sql: string, params: ReadonlyArray<unknown>) {
        return this.run(async () =>
          params.length === 0
            ? (rowsOf(await db.exec(sql)) as ReadonlyArray<any>) // eslint-disable-line @typescript-eslint/no-explicit-any
            : (await db.query<object>(sql, params as Array<unknown>)).rows
        )
      }

      execute(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        return transformRows ? Effect.map(this.rows(sql, params), transformRows) : this.rows(sql, params)
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        return this.run(() => db.query(sql, params as Array<unknown>))
      }
      executeValues(sql: string, params: ReadonlyArray<unknown>) {
        return this.run(
          async () =>
            (await db.query<Array<unknown>>(sql, params as Array<unknown>, { rowMode: "array" })).rows
        )
      }
      executeUnprepared(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        return this.execute(sql, params, transformRows)
      }
      executeStream(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        // PGlite has no cursors over its wire: the result is read whole, then streamed.
        return Stream.fromIterableEffect(this.execute(sql, params, transformRows))
      }
    }

    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(new PgliteConnection(false)),
      transactionAcquirer: Effect.as(
        Effect.acquireRelease(permit.take(1), () => permit.release(1)),
        new PgliteConnection(true)
      ),
      compiler,
      spanAttributes: [["db.system.name", "postgresql"]]
    })
    return { client, db }
  })

export const layer = (config: PgliteConfig): Layer.Layer<SqlClient.SqlClient | Pglite, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(config), ({ client, db }) =>
      Context.make(SqlClient.SqlClient, client).pipe(Context.add(Pglite, db))
    )
  ).pipe(Layer.provide(Reactivity.layer))
