import { Context, Effect, Layer, Option, Redacted } from "effect"
import * as Jose from "jose"
import { Unauthorized } from "../domain/Errors.ts"

/** The caller behind a verified Supabase access token. */
export interface VerifiedUser {
  /** The user's UUID (`sub`); the nil UUID for a service-role token without `sub`. */
  readonly id: string
  readonly role: "authenticated" | "service_role"
  readonly email?: string
}

export interface TokenVerifierOptions {
  /** The project URL, e.g. https://abc.supabase.co: the issuer is `<url>/auth/v1`, the JWKS beneath it. */
  readonly supabaseUrl: URL
  /** The project's legacy JWT secret: HS256 tokens are accepted only when it is present. */
  readonly jwtSecret: Option.Option<Redacted.Redacted<string>>
  /** The `aud` a user token must carry; "authenticated" unless given. */
  readonly audience?: string
}

/**
 * Verifies Supabase access tokens. Every expected failure is an `Unauthorized` whose `code` is one of
 * `missing_token`, `malformed_token`, `token_expired`, `token_not_yet_valid`, `invalid_signature`,
 * `invalid_audience`, `invalid_issuer`, `unsupported_algorithm`, `invalid_subject`, `invalid_role`; no message
 * contains the token. An unreachable or broken JWKS endpoint is a defect (a 500), not a 401: the token may be
 * fine.
 *
 * A token whose `role` is `service_role` (Supabase's service key is such a JWT) verifies as
 * `{ role: "service_role", id: NIL_UUID }` (or its `sub`, when that is a UUID). It passes every route that only
 * asks for a verified token, so callers must check `role` wherever the service role is not allowed.
 */
export class TokenVerifier extends Context.Tag("assay/TokenVerifier")<
  TokenVerifier,
  { readonly verify: (token: string) => Effect.Effect<VerifiedUser, Unauthorized> }
>() {}

export const NIL_UUID = "00000000-0000-0000-0000-000000000000"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// Supabase's access tokens are well under 4 KB; refusing huge ones keeps parsing cheap.
const MAX_TOKEN_LENGTH = 16_384
const CLOCK_TOLERANCE_SECONDS = 30
const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256"]
// The `iss` of Supabase's API-key JWTs (hosted projects, and the CLI's local stack).
const API_KEY_ISSUERS = ["supabase", "supabase-demo"]

const unauthorized = (code: string, message: string) => new Unauthorized({ code, message })

/** `Authorization: Bearer <token>` → the token. */
export const bearerToken = (authorizationHeader: string | undefined): Effect.Effect<string, Unauthorized> => {
  const parts = (authorizationHeader ?? "").trim().split(/\s+/)
  if (parts[0] === "")
    return Effect.fail(unauthorized("missing_token", "An Authorization header is required."))
  if (parts[0]!.toLowerCase() !== "bearer" || parts.length > 2)
    return Effect.fail(
      unauthorized("malformed_token", "The Authorization header must be of the form `Bearer <token>`.")
    )
  if (parts.length === 1)
    return Effect.fail(unauthorized("missing_token", "The Authorization header carries no bearer token."))
  return Effect.succeed(parts[1]!)
}

/** A jose failure as the `Unauthorized` it means, or `undefined` when it is not about the token (a defect). */
const failureOf = (error: unknown): Unauthorized | undefined => {
  if (error instanceof Jose.errors.JWTExpired) return unauthorized("token_expired", "The token has expired.")
  if (error instanceof Jose.errors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return unauthorized("token_not_yet_valid", "The token is not valid yet.")
    return unauthorized("malformed_token", `The token's "${error.claim}" claim is missing or invalid.`)
  }
  if (
    error instanceof Jose.errors.JWSSignatureVerificationFailed ||
    error instanceof Jose.errors.JWKSNoMatchingKey ||
    error instanceof Jose.errors.JWKSMultipleMatchingKeys
  )
    return unauthorized("invalid_signature", "The token's signature is not valid.")
  if (error instanceof Jose.errors.JOSEAlgNotAllowed || error instanceof Jose.errors.JOSENotSupported)
    return unauthorized("unsupported_algorithm", "The token's signing algorithm is not accepted.")
  if (error instanceof Jose.errors.JWSInvalid || error instanceof Jose.errors.JWTInvalid)
    return unauthorized("malformed_token", "The token is not a well-formed JWT.")
  return undefined
}

const audienceIncludes = (aud: unknown, audience: string) =>
  typeof aud === "string" ? aud === audience : Array.isArray(aud) && aud.includes(audience)

/** The claims a verified signature vouches for, checked against what Assay accepts. */
const userOf = (
  payload: Jose.JWTPayload,
  issuer: string,
  audience: string
): Effect.Effect<VerifiedUser, Unauthorized> => {
  const role = payload["role"]
  const sub = payload.sub
  if (role === "service_role") {
    // The service key carries neither `sub` nor `aud`, and Supabase's own issuer name instead of the auth URL.
    if (payload.iss !== issuer && !API_KEY_ISSUERS.includes(payload.iss ?? ""))
      return Effect.fail(unauthorized("invalid_issuer", "The token was not issued by this project."))
    if (payload.aud !== undefined && !audienceIncludes(payload.aud, audience))
      return Effect.fail(unauthorized("invalid_audience", "The token is meant for another audience."))
    if (sub !== undefined && !UUID.test(sub))
      return Effect.fail(unauthorized("invalid_subject", "The token's subject is not a user id."))
    return Effect.succeed({ id: sub ?? NIL_UUID, role: "service_role" })
  }
  if (payload.iss !== issuer)
    return Effect.fail(unauthorized("invalid_issuer", "The token was not issued by this project."))
  if (!audienceIncludes(payload.aud, audience))
    return Effect.fail(unauthorized("invalid_audience", "The token is meant for another audience."))
  if (role !== "authenticated")
    return Effect.fail(unauthorized("invalid_role", "The token does not belong to a signed-in user."))
  if (sub === undefined || !UUID.test(sub))
    return Effect.fail(unauthorized("invalid_subject", "The token's subject is not a user id."))
  const email = payload["email"]
  return Effect.succeed(
    typeof email === "string" && email !== ""
      ? { id: sub.toLowerCase(), role: "authenticated", email }
      : { id: sub.toLowerCase(), role: "authenticated" }
  )
}

export const make = (options: TokenVerifierOptions): Effect.Effect<TokenVerifier["Type"]> =>
  Effect.sync(() => {
    const base = options.supabaseUrl.href.replace(/\/+$/, "")
    const issuer = `${base}/auth/v1`
    const audience = options.audience ?? "authenticated"
    // Fetched on first use, cached, and refetched (rate-limited) when a token names an unknown `kid`.
    const jwks = Jose.createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))
    const secret = Option.map(options.jwtSecret, (s) => new TextEncoder().encode(Redacted.value(s)))

    const check = (token: string, alg: string) => {
      const verifyOptions = { clockTolerance: CLOCK_TOLERANCE_SECONDS, requiredClaims: ["exp"] }
      if (alg === "HS256" && Option.isSome(secret))
        return Jose.jwtVerify(token, secret.value, { ...verifyOptions, algorithms: ["HS256"] })
      return Jose.jwtVerify(token, jwks, { ...verifyOptions, algorithms: ASYMMETRIC_ALGORITHMS })
    }

    const verify = Effect.fn("TokenVerifier.verify")(function* (token: string) {
      if (token === "") return yield* unauthorized("missing_token", "No token was given.")
      if (token.length > MAX_TOKEN_LENGTH || token.split(".").length !== 3)
        return yield* unauthorized("malformed_token", "The token is not a well-formed JWT.")
      const header = yield* Effect.try({
        try: () => Jose.decodeProtectedHeader(token),
        catch: () => unauthorized("malformed_token", "The token is not a well-formed JWT.")
      })
      const alg = header.alg ?? ""
      const accepted = ASYMMETRIC_ALGORITHMS.includes(alg) || (alg === "HS256" && Option.isSome(secret))
      if (!accepted)
        return yield* unauthorized("unsupported_algorithm", "The token's signing algorithm is not accepted.")
      const verified = yield* Effect.tryPromise({
        try: () => check(token, alg),
        catch: (error) => error
      }).pipe(
        Effect.catchAll((error) => {
          const failure = failureOf(error)
          return failure ? Effect.fail(failure) : Effect.die(error)
        })
      )
      return yield* userOf(verified.payload, issuer, audience)
    })

    return TokenVerifier.of({ verify })
  })

export const layer = (options: TokenVerifierOptions): Layer.Layer<TokenVerifier> =>
  Layer.effect(TokenVerifier, make(options))
