import { Etag, HttpApp, HttpServer } from "@effect/platform"
import { BunContext, BunHttpPlatform } from "@effect/platform-bun"
import { Data, Duration, Effect, Layer } from "effect"

export class ServerStartError extends Data.TaggedError("ServerStartError")<{ readonly message: string }> {}

export interface BunServerOptions {
  readonly hostname: string
  readonly port: number
  /** How long in-flight requests may run once shutdown starts; then open connections are cut. */
  readonly drainTimeout: Duration.DurationInput
  /** Bun closes a connection after this many seconds without bytes (SSE sends keep-alives well inside it). */
  readonly idleTimeoutSeconds?: number
  readonly maxRequestBodySize?: number
}

/**
 * An HttpServer on `Bun.serve` that shuts down gracefully. (@effect/platform-bun's server interrupts every
 * in-flight request when its scope closes.) On release: stop accepting, let in-flight requests finish within
 * `drainTimeout`, then cut what is left. Release runs before the layers the app depends on (the database)
 * are closed, because the serving scope is the innermost one.
 */
const make = (options: BunServerOptions) =>
  Effect.gen(function* () {
    const notServing = () => new Response("service unavailable", { status: 503 })
    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Bun.serve({
            hostname: options.hostname,
            port: options.port,
            idleTimeout: options.idleTimeoutSeconds ?? 30,
            maxRequestBodySize: options.maxRequestBodySize ?? 64 * 1024 * 1024,
            fetch: notServing
          }),
        catch: (cause) =>
          new ServerStartError({
            message: `cannot listen on ${options.hostname}:${options.port} (${cause instanceof Error ? cause.message : String(cause)})`
          })
      }),
      (server) => Effect.promise(() => server.stop(true))
    )

    return HttpServer.make({
      address: { _tag: "TcpAddress", hostname: server.hostname ?? options.hostname, port: server.port ?? 0 },
      serve: (httpApp, middleware) =>
        Effect.gen(function* () {
          const runtime = yield* Effect.runtime<never>()
          const handler = HttpApp.toWebHandlerRuntime(runtime)(httpApp, middleware)
          yield* Effect.acquireRelease(
            Effect.sync(() => server.reload({ fetch: (request) => handler(request) })),
            () =>
              Effect.gen(function* () {
                yield* Effect.logInfo("http server draining").pipe(
                  Effect.annotateLogs("inFlight", server.pendingRequests)
                )
                // release actions are uninterruptible: the wait must be made interruptible for the timeout to cut it
                const drained = yield* Effect.promise(() => server.stop(false)).pipe(
                  Effect.interruptible,
                  Effect.timeoutOption(options.drainTimeout)
                )
                if (drained._tag === "None") {
                  yield* Effect.logWarning("http server drain timed out; closing open connections").pipe(
                    Effect.annotateLogs("inFlight", server.pendingRequests)
                  )
                  yield* Effect.promise(() => server.stop(true))
                }
              })
          )
        })
    })
  })

export const layer = (options: BunServerOptions) =>
  Layer.mergeAll(
    Layer.scoped(HttpServer.HttpServer, make(options)),
    BunHttpPlatform.layer,
    Etag.layerWeak,
    BunContext.layer
  )
