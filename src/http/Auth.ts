import { Effect, Layer, Option, Redacted } from "effect"
import { Authentication, RpcAuthentication, type User } from "../domain/Auth.ts"
import { Forbidden, Unauthorized } from "../domain/Errors.ts"
import { LOCAL_USER_ID, UserId } from "../domain/Ids.ts"
import { AppConfig } from "../layers/Config.ts"
import * as TokenVerifier from "../services/TokenVerifier.ts"
import { bearerToken, type VerifiedUser } from "../services/TokenVerifier.ts"

const localUser: User = { id: LOCAL_USER_ID }

/** The service-role key is for internal jobs; no user route accepts it. */
const asUser = (verified: VerifiedUser): Effect.Effect<User, Forbidden> =>
  verified.role === "service_role"
    ? Effect.fail(
        new Forbidden({
          code: "service_role_not_allowed",
          message: "The service-role key is not accepted here; sign in as a user."
        })
      )
    : Effect.succeed({ id: UserId.make(verified.id), email: verified.email })

/** Who is calling: the local user, or the verified Supabase user of the bearer token. One per process. */
export class Identity extends Effect.Service<Identity>()("assay/Identity", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    if (config.authMode === "local" || Option.isNone(config.supabaseUrl)) {
      return {
        identify: (_authorization: string | undefined): Effect.Effect<User, Unauthorized | Forbidden> =>
          Effect.succeed(localUser)
      } as const
    }
    const verifier = yield* TokenVerifier.make({
      supabaseUrl: config.supabaseUrl.value,
      jwtSecret: config.supabaseJwtSecret
    })
    return {
      identify: (authorization: string | undefined): Effect.Effect<User, Unauthorized | Forbidden> =>
        bearerToken(authorization).pipe(Effect.flatMap(verifier.verify), Effect.flatMap(asUser))
    } as const
  })
}) {}

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(Identity, ({ identify }) =>
    Authentication.of({
      bearer: (token) => {
        const value = Redacted.value(token)
        return identify(value === "" ? undefined : `Bearer ${value}`)
      }
    })
  )
)

export const RpcAuthenticationLive = Layer.effect(
  RpcAuthentication,
  Effect.map(Identity, ({ identify }) =>
    RpcAuthentication.of(({ headers }) => identify(headers["authorization"]))
  )
)
