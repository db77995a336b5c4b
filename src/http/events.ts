import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, DateTime, Effect, Exit, Layer, type Option, Scope, Stream } from "effect"
import { CellEvent, StreamAuthentication } from "../domain/Cell.ts"
import { openSubscription, type Subscription } from "../services/RunEvents.ts"
import { Identity } from "./Auth.ts"

/** How long EventSource waits before reconnecting after the stream drops. */
const RETRY_MS = 2_000

const encoder = new TextEncoder()
const KEEP_ALIVE = encoder.encode(": keep-alive\n\n")
const RETRY = encoder.encode(`retry: ${RETRY_MS}\n\n`)

/**
 * One event's SSE frame: `id:` the event id, `event:` its type, `data:` the rest of the event as JSON (its cell,
 * payload and time, fields as `Schema.encode(CellEvent)` writes them). The id and type are not repeated in `data`,
 * nor the run (the stream's own): a run's events go to every subscriber, and a third of each frame was repetition.
 */
export const eventFrame = (event: CellEvent) =>
  `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify({
    cellId: event.cellId,
    payload: event.payload,
    createdAt: DateTime.formatIso(event.createdAt)
  })}\n\n`

/**
 * Encoded chunks by their first event. A run's subscribers receive its events as the same chunks (feed batches
 * and replay pages), so each is encoded once and its bytes written to every stream; an entry lives as long as
 * its events do.
 */
const encodedChunks = new WeakMap<
  CellEvent,
  { readonly events: ReadonlyArray<CellEvent>; readonly bytes: Uint8Array }
>()

const sameEvents = (a: ReadonlyArray<CellEvent>, b: ReadonlyArray<CellEvent>) => {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const encodeChunk = (chunk: Chunk.Chunk<CellEvent>): Uint8Array => {
  const events = Chunk.toReadonlyArray(chunk)
  const known = encodedChunks.get(events[0]!)
  if (known !== undefined && sameEvents(known.events, events)) return known.bytes
  const bytes = encoder.encode(events.map(eventFrame).join(""))
  encodedChunks.set(events[0]!, { events, bytes })
  return bytes
}

const concatBytes = (parts: ReadonlyArray<Uint8Array>) => {
  if (parts.length === 1) return parts[0]!
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0))
  let at = 0
  for (const part of parts) {
    bytes.set(part, at)
    at += part.length
  }
  return bytes
}

/** Any other stream of events read as a subscription, a chunk at a time, from its first `next`. */
const streamSubscription = (events: Stream.Stream<CellEvent>): Subscription => {
  const scope = Effect.runSync(Scope.make())
  let pull: Effect.Effect<Chunk.Chunk<CellEvent>, Option.Option<never>> | undefined
  const first = Effect.tap(Scope.extend(Stream.toPull(events), scope), (made) =>
    Effect.sync(() => {
      pull = made
    })
  )
  return {
    next: () =>
      Effect.runPromise(
        Effect.suspend(() => pull ?? Effect.flatten(first)).pipe(
          Effect.map((chunk) => [chunk]),
          Effect.catchAll(() => Effect.succeed([]))
        )
      ),
    close: () => void Effect.runFork(Scope.close(scope, Exit.void))
  }
}

/** What Bun hands a `type: "direct"` stream's `pull`: writes go straight to the response's socket. */
interface DirectController {
  write(data: Uint8Array): number | Promise<number>
  close(error?: Error): void
}

/**
 * The SSE body: `retry:` first (so the client has the headers at once), then the events, each batch written
 * when the client has taken what was written before (a slow client leaves its events in its subscription, whose
 * backlog limit ends it), everything that arrived meanwhile in one write; and a keep-alive comment every
 * `keepAliveMs` while nothing else is being written. A subscription from `RunEvents` is read directly: a fiber
 * woken per batch, for each of hundreds of clients, costs more than the writes.
 *
 * A Bun "direct" stream: its bytes go from `write` to the socket, with no queue (and no copy) per chunk in
 * between. What remains of the cost is one socket write per batch and client, which is why `RunEvents` hands a
 * run's events out at most every DELIVERY_INTERVAL_MS.
 */
const sseBody = (events: Stream.Stream<CellEvent>, keepAliveMs: number) => {
  const subscription = openSubscription(events) ?? streamSubscription(events)
  let timer: ReturnType<typeof setInterval> | undefined
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    clearInterval(timer)
    subscription.close()
  }
  const source = {
    type: "direct" as const,
    async pull(controller: DirectController) {
      let writing = false
      const write = async (bytes: Uint8Array) => {
        writing = true
        try {
          // no flush: Bun sends what was written when this tick ends, and a flush per write cost a syscall more
          const written = controller.write(bytes)
          if (typeof written !== "number") await written
        } finally {
          writing = false
        }
      }
      try {
        await write(RETRY)
        timer = setInterval(() => {
          if (writing || stopped) return
          write(KEEP_ALIVE).catch(stop)
        }, keepAliveMs)
        while (!stopped) {
          const chunks = await subscription.next()
          // ended (or the client went away while the events were on their way)
          if (chunks.length === 0 || stopped) break
          const parts = chunks.filter((chunk) => !Chunk.isEmpty(chunk))
          if (parts.length > 0) await write(concatBytes(parts.map(encodeChunk)))
        }
      } finally {
        const clientLeft = stopped
        stop()
        if (!clientLeft) controller.close()
      }
    },
    cancel: stop
  }
  // Bun's types describe the direct source; the DOM's ReadableStream constructor does not know it
  return new ReadableStream<Uint8Array>(source as unknown as UnderlyingDefaultSource<Uint8Array>)
}

/**
 * A run's events as Server-Sent Events (see `sseBody`). The events' subscription lives inside the body, so it is
 * released when the client goes away.
 */
export const eventStreamResponse = (events: Stream.Stream<CellEvent>, keepAliveMs: number) =>
  HttpServerResponse.raw(sseBody(events, keepAliveMs), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })

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
