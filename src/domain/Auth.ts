import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"
import { Forbidden, ForbiddenResponse, Unauthorized, UnauthorizedResponse } from "./Errors.ts"
import type { UserId } from "./Ids.ts"

export interface User {
  readonly id: UserId
  readonly email?: string | undefined
}

/** The signed-in user of a request: every read and write is scoped to `id`. */
export class CurrentUser extends Context.Tag("assay/CurrentUser")<CurrentUser, User>() {}

/** REST: `Authorization: Bearer <Supabase access token>` (ignored in local mode). */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("assay/Authentication", {
  provides: CurrentUser,
  failure: Schema.Union(UnauthorizedResponse, ForbiddenResponse),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** RPC: the same token, sent by the client middleware on every call. */
export class RpcAuthentication extends RpcMiddleware.Tag<RpcAuthentication>()("assay/RpcAuthentication", {
  provides: CurrentUser,
  failure: Schema.Union(Unauthorized, Forbidden),
  requiredForClient: true
}) {}
