import { DateTime, Effect, Schedule, Stream } from "effect"
import { CurrentUser } from "../domain/Auth.ts"
import type { RunEventMessage } from "../domain/Cell.ts"
import { CellRpcs } from "../domain/Rpc.ts"
import { RunCells } from "../services/RunCells.ts"
import { RunEventsSettings } from "../services/RunEvents.ts"

const keepAliveMessage: RunEventMessage = { _tag: "KeepAlive" }

/**
 * The RPC handlers of the cell operations, to spread into `AssayRpcs.of({...})` (or serve with
 * `CellRpcs.toLayer(CellRpcHandlers)`). Yield it where the other handlers are built.
 */
export const CellRpcHandlers = Effect.gen(function* () {
  const cells = yield* RunCells
  const { keepAliveMs } = yield* RunEventsSettings
  const owner = Effect.map(CurrentUser, (user) => user.id)

  return CellRpcs.of({
    "cells.list": ({ runId, updatedSince, cursor, limit }) =>
      Effect.flatMap(owner, (id) =>
        cells.list(id, runId, {
          updatedSince: updatedSince ? DateTime.toDate(updatedSince) : undefined,
          cursor,
          limit
        })
      ),
    "cells.get": ({ runId, cellId }) => Effect.flatMap(owner, (id) => cells.get(id, runId, cellId)),
    "runs.events": ({ id: runId, after }) =>
      Stream.unwrap(Effect.flatMap(owner, (id) => cells.events(id, runId, after ?? null))).pipe(
        Stream.map((event): RunEventMessage => event),
        Stream.merge(Stream.fromSchedule(Schedule.spaced(keepAliveMs)).pipe(Stream.as(keepAliveMessage)), {
          haltStrategy: "left"
        })
      )
  })
})
