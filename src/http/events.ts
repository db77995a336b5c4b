import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Layer, Schedule, Schema, Stream } from "effect"
import { CellEvent, StreamAuthentication } from "../domain/Cell.ts"
import { Identity } from "./Auth.ts"

/** How long EventSource waits before reconnecting after the stream drops. */
const RETRY_MS = 2_000

const encoder = new TextEncoder()
const encodeEvent = Schema.encodeSync(CellEvent)

const frame = (event: CellEvent) =>
  `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(encodeEvent(event))}\n\n`

/**
 * A run's events as Server-Sent Events: a `retry:` line first (it also flushes the headers), then one frame per
 * event, with a `: keep-alive` comment every `keepAliveMs` so an idle stream survives proxies and Bun's idle
 * timeout. The events' subscription lives inside the body, so it is released when the client goes away.
 */
export const eventStreamResponse = (events: Stream.Stream<CellEvent>, keepAliveMs: number) => {
  const frames = events.pipe(Stream.mapChunks((chunk) => Chunk.of(Chunk.join(Chunk.map(chunk, frame), ""))))
  const keepAlive = Stream.fromSchedule(Schedule.spaced(keepAliveMs)).pipe(Stream.as(": keep-alive\n\n"))
  const body = Stream.make(`retry: ${RETRY_MS}\n\n`).pipe(
    Stream.concat(Stream.merge(frames, keepAlive, { haltStrategy: "left" })),
    Stream.map((text) => encoder.encode(text))
  )
  return HttpServerResponse.stream(body, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}

/**
 * The event stream's authentication: the `Authorization` header when sent, else the `access_token` query
 * parameter (EventSource cannot send headers). Both security schemes run the same check, so whichever the
 * middleware tries last reports the real failure.
 */
export const StreamAuthenticationLive = Layer.effect(
  StreamAuthentication,
  Effect.map(Identity, ({ identify }) => {
    const fromRequest = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const header = request.headers["authorization"]
      if (header !== undefined && header !== "") return yield* identify(header)
      const params = yield* HttpServerRequest.ParsedSearchParams
      const token = params["access_token"]
      return yield* identify(typeof token === "string" && token !== "" ? `Bearer ${token}` : undefined)
    })
    return StreamAuthentication.of({ bearer: () => fromRequest, accessToken: () => fromRequest })
  })
)
