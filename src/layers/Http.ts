import { HttpLayerRouter } from "@effect/platform"
import { Duration, Effect, Layer } from "effect"
import * as BunServer from "../http/BunServer.ts"
import { HealthRoute } from "../http/Health.ts"
import { RequestMiddleware } from "../http/Middleware.ts"
import { AppConfig } from "./Config.ts"

/** Every route of the app. */
export const Routes = Layer.mergeAll(HealthRoute)

/** The Bun server on ASSAY_HOST:ASSAY_PORT. */
export const ServerLayer = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    BunServer.layer({
      hostname: config.host,
      port: config.port,
      drainTimeout: Duration.millis(config.shutdownTimeoutMs)
    })
  )
)

/** Serves `routes` (the app's, or a test's) with the request middleware on the configured server. */
export const serve = <E, R>(routes: Layer.Layer<never, E, R>) =>
  HttpLayerRouter.serve(Layer.mergeAll(routes, RequestMiddleware), { disableLogger: true })
