import { HttpApiSchema, HttpServerRespondable, HttpServerResponse } from "@effect/platform"
import { Effect, Schema } from "effect"

/**
 * The domain's expected failures. Each carries a stable machine `code`, a readable `message` and optional
 * `details`, and knows its HTTP status. On the wire every one of them is the same envelope:
 * `{"error":{"code","message","details"?}}`.
 */
export const ErrorBody = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
})
export type ErrorBody = typeof ErrorBody.Type

export const ErrorEnvelope = Schema.Struct({ error: ErrorBody })
export type ErrorEnvelope = typeof ErrorEnvelope.Type

const fields = {
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}

export const envelopeOf = (error: ErrorBody): ErrorEnvelope => ({
  error:
    error.details === undefined
      ? { code: error.code, message: error.message }
      : { code: error.code, message: error.message, details: error.details }
})

const respond = (status: number, error: ErrorBody) =>
  Effect.succeed(HttpServerResponse.unsafeJson(envelopeOf(error), { status }))

/** 400: the request is malformed (bad JSON, a field of the wrong type, a file that cannot be parsed). */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  fields,
  HttpApiSchema.annotations({ status: 400 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(400, this)
  }
}

/** 422: well-formed, but it breaks a rule (a placeholder with no matching column, too many models). */
export class Unprocessable extends Schema.TaggedError<Unprocessable>()(
  "Unprocessable",
  fields,
  HttpApiSchema.annotations({ status: 422 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(422, this)
  }
}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  fields,
  HttpApiSchema.annotations({ status: 401 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(401, this)
  }
}

export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  fields,
  HttpApiSchema.annotations({ status: 403 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(403, this)
  }
}

/** 404, also for another user's resource: its existence is never confirmed. */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  fields,
  HttpApiSchema.annotations({ status: 404 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(404, this)
  }
}

export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  fields,
  HttpApiSchema.annotations({ status: 409 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(409, this)
  }
}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  fields,
  HttpApiSchema.annotations({ status: 413 })
) {
  [HttpServerRespondable.symbol]() {
    return respond(413, this)
  }
}

export const DomainError = Schema.Union(
  BadRequest,
  Unprocessable,
  Unauthorized,
  Forbidden,
  NotFound,
  Conflict,
  PayloadTooLarge
)
export type DomainError = typeof DomainError.Type

/** The body of every 500: nothing about the cause leaves the server. */
export const internalError: ErrorEnvelope = {
  error: { code: "internal_error", message: "The server failed to handle this request." }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ErrorClass<E extends ErrorBody> = Schema.Schema<E, any> & { new (props: ErrorBody): E }

/**
 * The REST form of a domain error: HttpApi encodes it as the envelope, with the status in the annotation, and
 * the OpenAPI document shows the envelope.
 */
const envelopeFor = <E extends ErrorBody>(cls: ErrorClass<E>, status: number, identifier: string) =>
  Schema.transform(ErrorEnvelope, Schema.typeSchema(cls), {
    strict: true,
    decode: ({ error }) => new cls(error),
    encode: (error) => envelopeOf(error)
  }).annotations({ ...HttpApiSchema.annotations({ status }), identifier })

export const BadRequestResponse = envelopeFor(BadRequest, 400, "BadRequest")
export const UnprocessableResponse = envelopeFor(Unprocessable, 422, "Unprocessable")
export const UnauthorizedResponse = envelopeFor(Unauthorized, 401, "Unauthorized")
export const ForbiddenResponse = envelopeFor(Forbidden, 403, "Forbidden")
export const NotFoundResponse = envelopeFor(NotFound, 404, "NotFound")
export const ConflictResponse = envelopeFor(Conflict, 409, "Conflict")
export const PayloadTooLargeResponse = envelopeFor(PayloadTooLarge, 413, "PayloadTooLarge")
