import {
  HttpLayerRouter,
  HttpServerError,
  HttpServerRequest,
  HttpServerRespondable,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { envelopeOf, internalError } from "../domain/Errors.ts"

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The caller's `x-request-id` when it is sane, else a fresh one. */
const requestIdOf = (request: HttpServerRequest.HttpServerRequest) => {
  const given = request.headers["x-request-id"]
  return given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID()
}

const routeNotFound = HttpServerResponse.unsafeJson(
  envelopeOf({ code: "route_not_found", message: "No route matches this method and path." }),
  { status: 404 }
)

/**
 * Turns a failed request into its response: a domain error answers with its own status and envelope, a
 * missing route with 404, anything else with a bare 500 whose cause is logged, never sent.
 */
const responseFor = (cause: Cause.Cause<unknown>) => {
  // HttpApi re-raises what it cannot encode as a defect, so look at the squashed cause, not only failures
  const error = Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
  if (error instanceof HttpServerError.RouteNotFound) return Effect.succeed(routeNotFound)
  if (error instanceof HttpServerError.RequestError) {
    return Effect.succeed(
      HttpServerResponse.unsafeJson(
        envelopeOf({
          code: "invalid_request",
          message:
            error.reason === "Decode"
              ? "The request body could not be decoded (malformed JSON or form data)."
              : "The request body could not be read."
        }),
        { status: 400 }
      )
    )
  }
  if (HttpServerRespondable.isRespondable(error)) return HttpServerRespondable.toResponse(error)
  if (Cause.isInterruptedOnly(cause)) {
    // the client went away; nobody reads this response
    return Effect.succeed(HttpServerResponse.empty({ status: 499 }))
  }
  return Effect.logError("request failed", cause).pipe(
    Effect.as(HttpServerResponse.unsafeJson(internalError, { status: 500 }))
  )
}

/**
 * HttpApi answers a request it cannot decode with its own error shape; this puts it in the envelope, so every
 * 4xx looks the same. Only 400 JSON bodies are read.
 */
const envelopeDecodeError = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.status !== 400 || response.body._tag !== "Uint8Array") return response
  try {
    const body = JSON.parse(new TextDecoder().decode(response.body.body)) as {
      _tag?: unknown
      message?: unknown
      issues?: unknown
    }
    if (body._tag !== "HttpApiDecodeError") return response
    return HttpServerResponse.unsafeJson(
      envelopeOf({
        code: "invalid_request",
        message: typeof body.message === "string" ? body.message : "The request is not valid.",
        details: { issues: body.issues }
      }),
      { status: 400 }
    )
  } catch {
    return response
  }
}

/**
 * Every request: a request id (echoed in `x-request-id` and on every log line of the request), one access
 * log line, and failures mapped to the error envelope.
 */
export const RequestMiddleware = HttpLayerRouter.middleware(
  (httpEffect) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const requestId = requestIdOf(request)
      const start = Date.now()
      return httpEffect.pipe(
        Effect.catchAllCause(responseFor),
        Effect.map(envelopeDecodeError),
        Effect.tap((response) =>
          Effect.logInfo("http request").pipe(
            Effect.annotateLogs({
              method: request.method,
              path: request.url.split("?")[0],
              status: response.status,
              durationMs: Date.now() - start
            })
          )
        ),
        Effect.map((response) => HttpServerResponse.setHeader(response, "x-request-id", requestId)),
        Effect.annotateLogs("requestId", requestId)
      )
      // every failure is answered above; the router's types still ask for their marker
    }) as Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      HttpLayerRouter.unhandled,
      HttpServerRequest.HttpServerRequest
    >,
  { global: true }
)
