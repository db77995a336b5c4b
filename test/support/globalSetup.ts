import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { migrate } from "../../src/layers/Database.ts"
import * as PgliteSqlClient from "../../src/layers/PgliteSqlClient.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** A dump of a freshly migrated PGlite database: each suite clones it (~0.8 s) instead of running initdb (~5 s). */
    pgliteTemplate: string
  }
}

export default async function setup(project: TestProject) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "assay-test-"))
  const file = path.join(dir, "template.tar.gz")
  await Effect.gen(function* () {
    const { client, db } = yield* PgliteSqlClient.make({})
    yield* Effect.provideService(migrate, SqlClient.SqlClient, client)
    const dump = yield* Effect.promise(() => db.dumpDataDir("gzip"))
    yield* Effect.promise(() => Bun.write(file, dump))
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer), Effect.runPromise)
  project.provide("pgliteTemplate", file)
  return async () => {
    await fs.rm(dir, { recursive: true, force: true })
  }
}
