import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { CurrentUser } from "../domain/Auth.ts"
import { ApiKeys } from "../services/ApiKeys.ts"
import { Models } from "../services/Models.ts"

export const ModelsHttp = HttpApiBuilder.group(AssayApi, "models", (handlers) =>
  Effect.gen(function* () {
    const models = yield* Models
    return handlers
      .handle("list", () => Effect.flatMap(CurrentUser, (user) => models.list(user.id)))
      .handle("create", ({ payload }) =>
        Effect.flatMap(CurrentUser, (user) => models.create(user.id, payload))
      )
      .handle("seedDefaults", () => Effect.flatMap(CurrentUser, (user) => models.seedDefaults(user.id)))
      .handle("get", ({ path }) => Effect.flatMap(CurrentUser, (user) => models.get(user.id, path.id)))
      .handle("update", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => models.update(user.id, path.id, payload))
      )
      .handle("delete", ({ path }) => Effect.flatMap(CurrentUser, (user) => models.remove(user.id, path.id)))
  })
)

export const ApiKeysHttp = HttpApiBuilder.group(AssayApi, "apiKeys", (handlers) =>
  Effect.gen(function* () {
    const keys = yield* ApiKeys
    return handlers
      .handle("list", () => Effect.flatMap(CurrentUser, (user) => keys.list(user.id)))
      .handle("put", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => keys.put(user.id, path.provider, payload.key))
      )
      .handle("delete", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => keys.remove(user.id, path.provider))
      )
  })
)
