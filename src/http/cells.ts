import { HttpApiBuilder } from "@effect/platform"
import { DateTime, Effect } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { CurrentUser } from "../domain/Auth.ts"
import { RunCells } from "../services/RunCells.ts"
import { RunEventsSettings } from "../services/RunEvents.ts"
import { eventStreamResponse } from "./events.ts"

export const CellsHttp = HttpApiBuilder.group(AssayApi, "cells", (handlers) =>
  Effect.gen(function* () {
    const cells = yield* RunCells
    // read when the routes are built: a request-time read would see only the default
    const { keepAliveMs } = yield* RunEventsSettings
    return handlers
      .handle("list", ({ path, urlParams }) =>
        Effect.flatMap(CurrentUser, (user) =>
          cells.list(user.id, path.id, {
            updatedSince: urlParams.updated_since ? DateTime.toDate(urlParams.updated_since) : undefined,
            cursor: urlParams.cursor,
            limit: urlParams.limit
          })
        )
      )
      .handle("get", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => cells.get(user.id, path.id, path.cellId))
      )
      .handle("events", ({ path, urlParams, headers }) =>
        Effect.flatMap(CurrentUser, (user) =>
          cells.events(user.id, path.id, headers["last-event-id"] ?? urlParams.after ?? null)
        ).pipe(Effect.map((events) => eventStreamResponse(events, keepAliveMs)))
      )
  })
)
