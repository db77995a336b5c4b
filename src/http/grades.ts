import { HttpApiBuilder } from "@effect/platform"
import { AssayApi } from "../domain/Api.ts"
import { Effect } from "effect"
import { CurrentUser } from "../domain/Auth.ts"
import { GradeRpcs } from "../domain/Grade.ts"
import { Grades } from "../services/Grades.ts"
import { RunMetrics } from "../services/RunMetrics.ts"

export const GradesHttp = HttpApiBuilder.group(AssayApi, "grades", (handlers) =>
  Effect.gen(function* () {
    const grades = yield* Grades
    const metrics = yield* RunMetrics
    return handlers
      .handle("set", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => grades.set(user.id, path.id, path.cellId, payload.value))
      )
      .handle("history", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => grades.history(user.id, path.id, path.cellId))
      )
      .handle("metrics", ({ path }) => Effect.flatMap(CurrentUser, (user) => metrics.get(user.id, path.id)))
      .handle("setActiveMetric", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => metrics.setActiveMetric(user.id, path.id, payload.activeMetric))
      )
  })
)

/** The RPC doors onto grades and metrics; merged into AssayRpcs' server beside RpcHandlers. */
export const GradeRpcHandlers = GradeRpcs.toLayer(
  Effect.gen(function* () {
    const grades = yield* Grades
    const metrics = yield* RunMetrics
    return GradeRpcs.of({
      "grades.set": ({ runId, cellId, value }) =>
        Effect.flatMap(CurrentUser, (user) => grades.set(user.id, runId, cellId, value)),
      "grades.history": ({ runId, cellId }) =>
        Effect.flatMap(CurrentUser, (user) => grades.history(user.id, runId, cellId)),
      "runs.metrics": ({ id }) => Effect.flatMap(CurrentUser, (user) => metrics.get(user.id, id)),
      "runs.setActiveMetric": ({ id, activeMetric }) =>
        Effect.flatMap(CurrentUser, (user) => metrics.setActiveMetric(user.id, id, activeMetric))
    })
  })
)
