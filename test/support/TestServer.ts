import { HttpServer } from "@effect/platform"
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import * as BunServer from "../../src/http/BunServer.ts"
import * as Http from "../../src/layers/Http.ts"

export class BaseUrl extends Context.Tag("test/BaseUrl")<BaseUrl, string>() {}

/** `routes` served over a real socket on 127.0.0.1 (a free port), with the app's middleware. */
export const testServer = <E, R>(
  routes: Layer.Layer<never, E, R>,
  options: { readonly drainTimeoutMs?: number; readonly logLevel?: LogLevel.LogLevel } = {}
) =>
  Layer.effect(
    BaseUrl,
    Effect.map(HttpServer.HttpServer, (server) => {
      const address = server.address as HttpServer.TcpAddress
      return `http://127.0.0.1:${address.port}`
    })
  ).pipe(
    Layer.provideMerge(Http.serve(routes)),
    Layer.provide(
      BunServer.layer({ hostname: "127.0.0.1", port: 0, drainTimeout: options.drainTimeoutMs ?? 5_000 })
    ),
    // quiet by default: a test that reads logs asks for them
    Layer.provide(Logger.minimumLogLevel(options.logLevel ?? LogLevel.Warning))
  )

export type TestDb = Layer.Layer<SqlClient.SqlClient, unknown>
