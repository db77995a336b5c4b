import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { CurrentUser } from "../domain/Auth.ts"
import { Prompts } from "../services/Prompts.ts"

export const PromptsHttp = HttpApiBuilder.group(AssayApi, "prompts", (handlers) =>
  Effect.gen(function* () {
    const prompts = yield* Prompts
    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.list(user.id, urlParams))
      )
      .handle("create", ({ payload }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.create(user.id, payload))
      )
      .handle("get", ({ path }) => Effect.flatMap(CurrentUser, (user) => prompts.get(user.id, path.id)))
      .handle("update", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.update(user.id, path.id, payload))
      )
      .handle("delete", ({ path }) => Effect.flatMap(CurrentUser, (user) => prompts.remove(user.id, path.id)))
      .handle("versions", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.versions(user.id, path.id))
      )
      .handle("freeze", ({ path }) => Effect.flatMap(CurrentUser, (user) => prompts.freeze(user.id, path.id)))
      .handle("version", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.version(user.id, path.id, path.versionId))
      )
      .handle("diff", ({ path, urlParams }) =>
        Effect.flatMap(CurrentUser, (user) => prompts.diff(user.id, path.id, urlParams.from, urlParams.to))
      )
  })
)
