import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option, Redacted } from "effect"
import * as Jose from "jose"
import {
  bearerToken,
  layer as tokenVerifierLayer,
  make,
  NIL_UUID,
  TokenVerifier,
  type VerifiedUser
} from "../src/services/TokenVerifier.ts"

const SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
const USER_ID = "4f1c2a7e-9b3d-4e8a-a1c5-2d6f8b0e9c31"

/** Signing keys, and a local stand-in for the project's auth server that publishes only some of them. */
class Keys extends Context.Tag("test/Keys")<
  Keys,
  {
    readonly supabaseUrl: URL
    readonly es1: CryptoKey
    readonly es2: CryptoKey
    readonly rsa: CryptoKey
    /** Not published in the JWKS. */
    readonly stranger: CryptoKey
    readonly jwksRequests: () => number
  }
>() {}

const KeysLive = Layer.scoped(
  Keys,
  Effect.gen(function* () {
    const generate = (alg: string) => Effect.promise(() => Jose.generateKeyPair(alg, { extractable: true }))
    const es1 = yield* generate("ES256")
    const es2 = yield* generate("ES256")
    const rsa = yield* generate("RS256")
    const stranger = yield* generate("ES256")
    const publish = (key: CryptoKey, kid: string, alg: string) =>
      Effect.promise(async () => ({ ...(await Jose.exportJWK(key)), kid, alg, use: "sig" }))
    const jwks = JSON.stringify({
      keys: [
        yield* publish(es1.publicKey, "es-1", "ES256"),
        yield* publish(es2.publicKey, "es-2", "ES256"),
        yield* publish(rsa.publicKey, "rsa-1", "RS256")
      ]
    })
    let requests = 0
    const server = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.serve({
          hostname: "127.0.0.1",
          port: 0,
          fetch: (request) => {
            if (new URL(request.url).pathname !== "/auth/v1/.well-known/jwks.json")
              return new Response("not found", { status: 404 })
            requests++
            return new Response(jwks, { headers: { "content-type": "application/json" } })
          }
        })
      ),
      (server) => Effect.promise(() => server.stop(true))
    )
    return {
      supabaseUrl: new URL(`http://127.0.0.1:${server.port}`),
      es1: es1.privateKey,
      es2: es2.privateKey,
      rsa: rsa.privateKey,
      stranger: stranger.privateKey,
      jwksRequests: () => requests
    }
  })
)

const issuerOf = (url: URL) => `${url.href.replace(/\/$/, "")}/auth/v1`

const userClaims = (url: URL): Jose.JWTPayload => ({
  iss: issuerOf(url),
  aud: "authenticated",
  sub: USER_ID,
  role: "authenticated",
  email: "ada@example.com"
})

const without = (claims: Jose.JWTPayload, name: string): Jose.JWTPayload =>
  Object.fromEntries(Object.entries(claims).filter(([key]) => key !== name))

const sign = (
  claims: Jose.JWTPayload,
  key: CryptoKey | Uint8Array,
  header: Jose.JWTHeaderParameters,
  expiresAt: number | string = "5m"
) =>
  Effect.promise(() =>
    new Jose.SignJWT(claims).setProtectedHeader(header).setIssuedAt().setExpirationTime(expiresAt).sign(key)
  )

const secretKey = (secret: string) => new TextEncoder().encode(secret)

const verifierFor = (url: URL, secret: Option.Option<string> = Option.some(SECRET)) =>
  make({ supabaseUrl: url, jwtSecret: Option.map(secret, Redacted.make) })

/** The failure's code, after checking that nothing of the token leaked into it. */
const failureCode = (verifier: TokenVerifier["Type"], token: string) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(verifier.verify(token))
    expect(error._tag).toBe("Unauthorized")
    if (token.length > 0) {
      expect(error.message).not.toContain(token)
      expect(JSON.stringify(error)).not.toContain(token)
      for (const part of token.split(".").filter((p) => p.length > 8))
        expect(error.message).not.toContain(part)
    }
    return error.code
  })

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

layer(KeysLive, { excludeTestServices: true })("TokenVerifier", (it) => {
  it.effect("accepts an HS256 user token signed with the project secret", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const token = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS256" })
      const user = yield* verifier.verify(token)
      expect(user).toEqual<VerifiedUser>({ id: USER_ID, role: "authenticated", email: "ada@example.com" })
    })
  )

  it.effect(
    "accepts ES256 and RS256 tokens through the JWKS, picking the key by kid, and caches the set",
    () =>
      Effect.gen(function* () {
        const keys = yield* Keys
        const verifier = yield* verifierFor(keys.supabaseUrl, Option.none())
        const before = keys.jwksRequests()
        const claims = without(userClaims(keys.supabaseUrl), "email")
        const es = yield* sign(claims, keys.es2, { alg: "ES256", kid: "es-2" })
        const rs = yield* sign(claims, keys.rsa, { alg: "RS256", kid: "rsa-1" })
        expect(yield* verifier.verify(es)).toEqual({ id: USER_ID, role: "authenticated" })
        expect(yield* verifier.verify(rs)).toEqual({ id: USER_ID, role: "authenticated" })
        const first = yield* sign(claims, keys.es1, { alg: "ES256", kid: "es-1" })
        expect((yield* verifier.verify(first)).id).toBe(USER_ID)
        expect(keys.jwksRequests() - before).toBe(1)
      })
  )

  it.effect("rejects an expired token, but tolerates a few seconds of clock skew", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const now = Math.floor(Date.now() / 1000)
      const expired = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS256" }, now - 120)
      expect(yield* failureCode(verifier, expired)).toBe("token_expired")
      const justExpired = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS256" }, now - 5)
      expect((yield* verifier.verify(justExpired)).id).toBe(USER_ID)
    })
  )

  it.effect("rejects a token that is not valid yet, and one without an expiry", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const early = yield* Effect.promise(() =>
        new Jose.SignJWT(userClaims(supabaseUrl))
          .setProtectedHeader({ alg: "HS256" })
          .setNotBefore("10m")
          .setExpirationTime("20m")
          .sign(secretKey(SECRET))
      )
      expect(yield* failureCode(verifier, early)).toBe("token_not_yet_valid")
      const endless = yield* Effect.promise(() =>
        new Jose.SignJWT(userClaims(supabaseUrl)).setProtectedHeader({ alg: "HS256" }).sign(secretKey(SECRET))
      )
      expect(yield* failureCode(verifier, endless)).toBe("malformed_token")
    })
  )

  it.effect(
    "rejects signatures by another secret, by a key outside the JWKS, or under another key's kid",
    () =>
      Effect.gen(function* () {
        const keys = yield* Keys
        const verifier = yield* verifierFor(keys.supabaseUrl)
        const claims = userClaims(keys.supabaseUrl)
        const otherSecret = yield* sign(claims, secretKey(`${SECRET}-other`), { alg: "HS256" })
        expect(yield* failureCode(verifier, otherSecret)).toBe("invalid_signature")
        const unknownKid = yield* sign(claims, keys.stranger, { alg: "ES256", kid: "es-9" })
        expect(yield* failureCode(verifier, unknownKid)).toBe("invalid_signature")
        const borrowedKid = yield* sign(claims, keys.stranger, { alg: "ES256", kid: "es-2" })
        expect(yield* failureCode(verifier, borrowedKid)).toBe("invalid_signature")
        const wrongFamily = yield* sign(claims, keys.es1, { alg: "ES256", kid: "rsa-1" })
        expect(yield* failureCode(verifier, wrongFamily)).toBe("invalid_signature")
      })
  )

  it.effect("rejects a token for another audience, or with none", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const other = yield* sign({ ...userClaims(supabaseUrl), aud: "other" }, secretKey(SECRET), {
        alg: "HS256"
      })
      expect(yield* failureCode(verifier, other)).toBe("invalid_audience")
      const none = yield* sign(without(userClaims(supabaseUrl), "aud"), secretKey(SECRET), {
        alg: "HS256"
      })
      expect(yield* failureCode(verifier, none)).toBe("invalid_audience")
      const custom = yield* make({
        supabaseUrl,
        jwtSecret: Option.some(Redacted.make(SECRET)),
        audience: "other"
      })
      expect((yield* custom.verify(other)).id).toBe(USER_ID)
    })
  )

  it.effect("rejects a token from another issuer", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const foreign = yield* sign(
        { ...userClaims(supabaseUrl), iss: "https://elsewhere.supabase.co/auth/v1" },
        secretKey(SECRET),
        { alg: "HS256" }
      )
      expect(yield* failureCode(verifier, foreign)).toBe("invalid_issuer")
      const apiKeyIssuer = yield* sign({ ...userClaims(supabaseUrl), iss: "supabase" }, secretKey(SECRET), {
        alg: "HS256"
      })
      expect(yield* failureCode(verifier, apiKeyIssuer)).toBe("invalid_issuer")
    })
  )

  it.effect("rejects alg none, other algorithms, and HS256 when no secret is configured", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const exp = Math.floor(Date.now() / 1000) + 300
      const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ ...userClaims(supabaseUrl), exp })}.`
      expect(yield* failureCode(verifier, unsigned)).toBe("unsupported_algorithm")
      const hs512 = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS512" })
      expect(yield* failureCode(verifier, hs512)).toBe("unsupported_algorithm")
      const withoutSecret = yield* verifierFor(supabaseUrl, Option.none())
      const hs256 = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS256" })
      expect(yield* failureCode(withoutSecret, hs256)).toBe("unsupported_algorithm")
    })
  )

  it.effect("rejects a subject that is missing or not a UUID, and a role that is not a signed-in user", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const key = secretKey(SECRET)
      const noSub = yield* sign(without(userClaims(supabaseUrl), "sub"), key, { alg: "HS256" })
      expect(yield* failureCode(verifier, noSub)).toBe("invalid_subject")
      const badSub = yield* sign({ ...userClaims(supabaseUrl), sub: "user-42" }, key, { alg: "HS256" })
      expect(yield* failureCode(verifier, badSub)).toBe("invalid_subject")
      const anon = yield* sign({ ...userClaims(supabaseUrl), role: "anon" }, key, { alg: "HS256" })
      expect(yield* failureCode(verifier, anon)).toBe("invalid_role")
    })
  )

  it.effect("rejects strings that are not JWTs", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      expect(yield* failureCode(verifier, "")).toBe("missing_token")
      const exp = Math.floor(Date.now() / 1000) + 300
      const malformed = [
        "not-a-token",
        "only.two",
        "a.b.c.d.e",
        "!!!.@@@.###",
        `${Buffer.from("not json").toString("base64url")}.${base64url({ exp })}.c2ln`,
        `${base64url({ alg: "HS256" })}.${base64url({ exp })}`,
        `${base64url({ alg: "HS256" })}.${"a".repeat(20_000)}.c2ln`
      ]
      for (const token of malformed) expect(yield* failureCode(verifier, token)).toBe("malformed_token")
      // correctly signed, but the payload is not a JSON object
      const notClaims = yield* Effect.promise(() =>
        new Jose.CompactSign(new TextEncoder().encode("hello"))
          .setProtectedHeader({ alg: "HS256" })
          .sign(secretKey(SECRET))
      )
      expect(yield* failureCode(verifier, notClaims)).toBe("malformed_token")
    })
  )

  it.effect("accepts Supabase's service key as the service role, from either issuer", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const verifier = yield* verifierFor(supabaseUrl)
      const key = secretKey(SECRET)
      const serviceKey = yield* sign({ iss: "supabase", ref: "abcdefgh", role: "service_role" }, key, {
        alg: "HS256",
        typ: "JWT"
      })
      expect(yield* verifier.verify(serviceKey)).toEqual<VerifiedUser>({ id: NIL_UUID, role: "service_role" })
      const withSub = yield* sign(
        { iss: issuerOf(supabaseUrl), sub: USER_ID, aud: "authenticated", role: "service_role" },
        key,
        { alg: "HS256" }
      )
      expect(yield* verifier.verify(withSub)).toEqual<VerifiedUser>({ id: USER_ID, role: "service_role" })
      const foreign = yield* sign({ iss: "someone-else", role: "service_role" }, key, { alg: "HS256" })
      expect(yield* failureCode(verifier, foreign)).toBe("invalid_issuer")
      const forged = yield* sign({ iss: "supabase", role: "service_role" }, secretKey("guess"), {
        alg: "HS256"
      })
      expect(yield* failureCode(verifier, forged)).toBe("invalid_signature")
      const wrongAudience = yield* sign({ iss: "supabase", role: "service_role", aud: "other" }, key, {
        alg: "HS256"
      })
      expect(yield* failureCode(verifier, wrongAudience)).toBe("invalid_audience")
    })
  )

  it.effect("an unreachable JWKS is a defect, not a rejected token", () =>
    Effect.gen(function* () {
      const keys = yield* Keys
      const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") })
      const url = new URL(`http://127.0.0.1:${closed.port}`)
      yield* Effect.promise(() => closed.stop(true))
      const verifier = yield* verifierFor(url)
      const token = yield* sign(userClaims(url), keys.es1, { alg: "ES256", kid: "es-1" })
      const exit = yield* Effect.exit(verifier.verify(token))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(Exit.isFailure(exit) && Option.isNone(Cause.failureOption(exit.cause))).toBe(true)
    })
  )

  it.effect("the layer provides a working verifier", () =>
    Effect.gen(function* () {
      const { supabaseUrl } = yield* Keys
      const token = yield* sign(userClaims(supabaseUrl), secretKey(SECRET), { alg: "HS256" })
      const user = yield* Effect.flatMap(TokenVerifier, (v) => v.verify(token)).pipe(
        Effect.provide(tokenVerifierLayer({ supabaseUrl, jwtSecret: Option.some(Redacted.make(SECRET)) }))
      )
      expect(user.id).toBe(USER_ID)
    })
  )
})

describe("bearerToken", () => {
  const codeOf = (header: string | undefined) => Effect.map(Effect.flip(bearerToken(header)), (e) => e.code)

  it.effect("takes the token out of a Bearer header, whatever the scheme's case and surrounding space", () =>
    Effect.gen(function* () {
      expect(yield* bearerToken("Bearer abc.def.ghi")).toBe("abc.def.ghi")
      expect(yield* bearerToken("bearer abc.def.ghi")).toBe("abc.def.ghi")
      expect(yield* bearerToken("  BEARER   abc.def.ghi  ")).toBe("abc.def.ghi")
    })
  )

  it.effect("a missing header or token is missing_token; anything else is malformed_token", () =>
    Effect.gen(function* () {
      expect(yield* codeOf(undefined)).toBe("missing_token")
      expect(yield* codeOf("")).toBe("missing_token")
      expect(yield* codeOf("   ")).toBe("missing_token")
      expect(yield* codeOf("Bearer")).toBe("missing_token")
      expect(yield* codeOf("Bearer ")).toBe("missing_token")
      expect(yield* codeOf("Basic dXNlcjpwYXNz")).toBe("malformed_token")
      expect(yield* codeOf("abc.def.ghi")).toBe("malformed_token")
      expect(yield* codeOf("Bearer abc def")).toBe("malformed_token")
      const error = yield* Effect.flip(bearerToken("Token secret-value-123"))
      expect(error.message).not.toContain("secret-value-123")
    })
  )
})
