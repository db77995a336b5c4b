import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { CurrentUser } from "../domain/Auth.ts"
import { Runs } from "../services/Runs.ts"

export const RunsHttp = HttpApiBuilder.group(AssayApi, "runs", (handlers) =>
  Effect.gen(function* () {
    const runs = yield* Runs
    return handlers
      .handle("create", ({ payload }) => Effect.flatMap(CurrentUser, (user) => runs.create(user.id, payload)))
      .handle("list", ({ urlParams }) => Effect.flatMap(CurrentUser, (user) => runs.list(user.id, urlParams)))
      .handle("get", ({ path }) => Effect.flatMap(CurrentUser, (user) => runs.get(user.id, path.id)))
      .handle("cancel", ({ path }) => Effect.flatMap(CurrentUser, (user) => runs.cancel(user.id, path.id)))
      .handle("rerunFailed", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => runs.rerunFailed(user.id, path.id))
      )
      .handle("rerunCell", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => runs.rerunCell(user.id, path.id, path.cellId))
      )
  })
)
