import { Layer } from "effect"
import type { PgliteAssets } from "./PgliteSqlClient.ts"
import * as Config from "./Config.ts"
import * as Database from "./Database.ts"
import * as Http from "./Http.ts"
import * as Logging from "./Logging.ts"
import * as Scheduler from "./Scheduler.ts"
import * as Services from "./Services.ts"

/**
 * The whole server: configuration, logging, the migrated database and the HTTP server. Built once: stateful
 * services must not be built twice.
 */
export const ServerApp = (assets?: PgliteAssets) =>
  Layer.mergeAll(Http.serve(Http.Routes), Services.SeedLocalDefaults).pipe(
    Layer.provide(Http.ServerLayer),
    Layer.provide(Services.ServicesLive),
    Layer.provide(Database.layer(assets)),
    Layer.provide(Logging.layer),
    Layer.provide(Config.layer),
    Layer.provide(Scheduler.layer)
  )

/** `assay migrate`: apply migrations and exit. */
export const MigrateApp = (assets?: PgliteAssets) =>
  Database.layer(assets).pipe(Layer.provide(Logging.layer), Layer.provide(Config.layer))
