import { Layer } from "effect"
import type { PgliteAssets } from "./PgliteSqlClient.ts"
import * as Config from "./Config.ts"
import * as Database from "./Database.ts"
import * as Http from "./Http.ts"
import * as Logging from "./Logging.ts"

/**
 * The whole server: configuration, logging, the migrated database and the HTTP server. Built once: stateful
 * services must not be built twice.
 */
export const ServerApp = (assets?: PgliteAssets) =>
  Http.serve(Http.Routes).pipe(
    Layer.provide(Http.ServerLayer),
    Layer.provide(Database.layer(assets)),
    Layer.provide(Logging.layer),
    Layer.provide(Config.layer)
  )

/** `assay migrate`: apply migrations and exit. */
export const MigrateApp = (assets?: PgliteAssets) =>
  Database.layer(assets).pipe(Layer.provide(Logging.layer), Layer.provide(Config.layer))
