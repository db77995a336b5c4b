// The app's one door to the server's data: an @effect/rpc client built from the server's own contracts in
// src/domain (so a renamed field is a type error here), over HTTP with NDJSON, the session's token on every call.
import { FetchHttpClient, Headers } from "@effect/platform"
import { RpcClient, RpcMiddleware, RpcSerialization } from "@effect/rpc"
import { Context, Effect, Exit, Layer, ManagedRuntime } from "effect"
import { RpcAuthentication } from "../../../src/domain/Auth.ts"
import { AssayRpcs } from "../../../src/domain/Rpc.ts"
import { fromCause } from "./errors.ts"

const makeClient = RpcClient.make(AssayRpcs)
export type Client = Effect.Effect.Success<typeof makeClient>

class Rpc extends Context.Tag("assay/web/Rpc")<Rpc, Client>() {}

export type TokenSource = () => Promise<string | undefined>

export interface Api {
  /** Runs `f` with the client; resolves with its value or rejects with an ApiError. */
  readonly call: <A, E>(f: (client: Client) => Effect.Effect<A, E>) => Promise<A>
  readonly baseUrl: string
  readonly token: TokenSource
  readonly dispose: () => Promise<void>
}

/** A client for the server at `baseUrl` (absolute: the RPC protocol needs it, stack-notes trap 8). */
export const makeApi = (baseUrl: string, token: TokenSource): Api => {
  const protocol = RpcClient.layerProtocolHttp({ url: new URL("/rpc", baseUrl).href }).pipe(
    Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
  )
  const auth = RpcMiddleware.layerClient(RpcAuthentication, ({ request }) =>
    Effect.map(Effect.promise(token), (value) =>
      value === undefined
        ? request
        : { ...request, headers: Headers.set(request.headers, "authorization", `Bearer ${value}`) }
    )
  )
  const runtime = ManagedRuntime.make(
    Layer.scoped(Rpc, makeClient).pipe(Layer.provide(protocol), Layer.provide(auth))
  )
  return {
    baseUrl,
    token,
    call: async (f) => {
      const exit = await runtime.runPromiseExit(Effect.flatMap(Rpc, f))
      if (Exit.isSuccess(exit)) return exit.value
      throw fromCause(exit.cause)
    },
    dispose: () => runtime.dispose()
  }
}
