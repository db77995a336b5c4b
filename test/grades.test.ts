import { FetchHttpClient, Headers, HttpApi, HttpLayerRouter } from "@effect/platform"
import { RpcClient, RpcMiddleware, RpcSerialization, RpcServer } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Stream } from "effect"
import { RpcAuthentication } from "../src/domain/Auth.ts"
import { GradeRpcs, GradesApi, type ManualGradeValue } from "../src/domain/Grade.ts"
import { type RunCellId, type RunId, UserId } from "../src/domain/Ids.ts"
import { AuthenticationLive, Identity, RpcAuthenticationLive } from "../src/http/Auth.ts"
import { GradeRpcHandlers, GradesHttp } from "../src/http/grades.ts"
import { Grades } from "../src/services/Grades.ts"
import { RunEvents, RunEventsSettings } from "../src/services/RunEvents.ts"
import { RunMetrics } from "../src/services/RunMetrics.ts"
import { seedRun, type SeededRun } from "./support/fixtures.ts"
import { api, signToken, supabaseEnv } from "./support/TestApp.ts"
import { testConfig } from "./support/TestConfig.ts"
import { testDatabases } from "./support/TestDatabase.ts"
import { BaseUrl, testServer } from "./support/TestServer.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** A seeded run whose cells all succeeded: model A's graded pass, fail; model B's pass, pass. */
const finishedRun = (sql: SqlClient.SqlClient, ownerId?: string) =>
  Effect.gen(function* () {
    const seeded = yield* seedRun(sql, { rows: 2, ...(ownerId ? { ownerId } : {}) })
    yield* sql`update assay.run_cell set status = 'succeeded', latency_ms = 10 where run_id = ${seeded.runId}`
    yield* sql`update assay.run_cell set grade = 'pass' where id = ${seeded.cellIds[0]!}`
    yield* sql`update assay.run_cell set grade = 'fail' where id = ${seeded.cellIds[1]!}`
    yield* sql`update assay.run_cell set grade = 'pass' where ${sql.in("id", seeded.cellIds.slice(2))}`
    return seeded
  })

const ids = (seeded: SeededRun, cell = 0) => ({
  owner: UserId.make(seeded.ownerId),
  runId: seeded.runId as RunId,
  cellId: seeded.cellIds[cell]! as RunCellId
})

const writes = (sql: SqlClient.SqlClient, seeded: SeededRun) =>
  Effect.map(
    sql<{ grades: number; events: number; graded: number }>`
      select
        (select count(*)::int from assay.manual_grade g join assay.run_cell c on c.id = g.run_cell_id
          where c.run_id = ${seeded.runId}) as grades,
        (select count(*)::int from assay.run_cell_event
          where run_id = ${seeded.runId} and event_type = 'manual_grade') as events,
        (select count(manual_grade)::int from assay.run_cell where run_id = ${seeded.runId}) as graded`,
    (rows) => rows[0]!
  )

/** Live events with the table poll pushed out of reach: an event only arrives if its writer publishes it. */
const RunEventsPublishedOnly = RunEvents.Default.pipe(
  Layer.provide(
    Layer.succeed(RunEventsSettings, { keepAliveMs: 10_000, pollIntervalMs: 600_000, gapTimeoutMs: 3_000 })
  )
)

for (const db of testDatabases) {
  layer(
    Layer.mergeAll(Grades.Default, RunMetrics.Default).pipe(
      Layer.provideMerge(RunEventsPublishedOnly),
      Layer.provideMerge(db.layer)
    ),
    {
      excludeTestServices: true,
      timeout: 60_000
    }
  )(`Grades on ${db.kind}`, (it) => {
    it.effect("a manual grade overrides the automatic one, with history and an event in the same write", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const seeded = yield* finishedRun(sql)
        const { owner, runId, cellId } = ids(seeded, 1)

        const passed = yield* grades.set(owner, runId, cellId, "pass")
        expect(passed).toMatchObject({
          runId,
          cellId,
          status: "succeeded",
          autoGrade: "fail",
          manualGrade: "pass",
          grade: "pass"
        })
        // the fixture's own history entry, then ours on top
        expect(passed.history.map((h) => h.value)).toEqual(["pass", "pass"])
        expect(passed.history[0]!.userId).toBe(owner)

        yield* grades.set(owner, runId, cellId, "fail")
        const unset = yield* grades.set(owner, runId, cellId, "unset")
        expect(unset).toMatchObject({ autoGrade: "fail", manualGrade: null, grade: "fail" })
        expect(unset.history.map((h) => h.value)).toEqual(["unset", "fail", "pass", "pass"])
        const times = unset.history.map((h) => h.createdAt.epochMillis)
        expect(times).toEqual([...times].sort((a, b) => b - a))

        const history = yield* grades.history(owner, runId, cellId)
        expect(history).toEqual(unset.history)

        const [cell] = yield* sql<{ manual_grade: string | null }>`
          select manual_grade from assay.run_cell where id = ${cellId}`
        expect(cell!.manual_grade).toBeNull()
        const events = yield* sql<{ payload: { value: ManualGradeValue; user: string } }>`
          select payload from assay.run_cell_event
          where run_cell_id = ${cellId} and event_type = 'manual_grade' order by id`
        expect(events.map((e) => e.payload)).toEqual([
          { value: "pass", user: owner },
          { value: "fail", user: owner },
          { value: "unset", user: owner }
        ])

        // the other cell is untouched
        const other = yield* grades.get(owner, runId, ids(seeded, 0).cellId)
        expect(other).toMatchObject({ autoGrade: "pass", manualGrade: null, grade: "pass" })
        expect(other.history.map((h) => h.value)).toEqual(["pass"])
      })
    )

    it.effect("metrics count the manual grade where set, else the automatic one", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const metrics = yield* RunMetrics
        const seeded = yield* finishedRun(sql)
        const { owner, runId } = ids(seeded)
        const before = (yield* metrics.get(owner, runId)).models[0]!.metrics
        expect([before.autoPassRate, before.manualPassRate, before.combinedPassRate]).toEqual([
          0.5,
          null,
          0.5
        ])

        yield* grades.set(owner, runId, ids(seeded, 1).cellId, "pass")
        const after = (yield* metrics.get(owner, runId)).models[0]!.metrics
        expect([after.autoPassRate, after.manualPassRate, after.combinedPassRate]).toEqual([0.5, 1, 1])
        expect([after.manualGraded, after.combinedGraded]).toEqual([1, 2])

        yield* grades.set(owner, runId, ids(seeded, 0).cellId, "fail")
        yield* grades.set(owner, runId, ids(seeded, 1).cellId, "unset")
        const last = yield* metrics.get(owner, runId)
        expect(last.models[0]!.metrics).toMatchObject({
          autoPassRate: 0.5,
          manualGraded: 1,
          manualPassRate: 0,
          combinedPassed: 0,
          combinedPassRate: 0
        })
        // the second model's cells were not touched
        expect(last.models[1]!.metrics.combinedPassRate).toBe(1)
        expect(last.overall.combinedPassRate).toBe(0.5)
      })
    )

    it.effect("another owner's cell, or a cell of another run, is not found, and nothing is written", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const seeded = yield* finishedRun(sql)
        const [other] = yield* sql<{ id: RunId }>`
          insert into assay.run (owner_id, prompt_id, prompt_version_id)
          select owner_id, prompt_id, prompt_version_id from assay.run where id = ${seeded.runId}
          returning id`
        const { owner, runId, cellId } = ids(seeded)
        const stranger = UserId.make(crypto.randomUUID())
        const before = yield* writes(sql, seeded)

        const attempts: Array<Effect.Effect<unknown, { _tag: string; code: string }>> = [
          grades.set(stranger, runId, cellId, "fail"),
          grades.set(stranger, runId, cellId, "unset"),
          grades.history(stranger, runId, cellId),
          grades.get(stranger, runId, cellId),
          // the owner's own cell, addressed through the owner's other run
          grades.set(owner, other!.id, cellId, "fail"),
          grades.history(owner, other!.id, cellId),
          grades.set(owner, runId, crypto.randomUUID() as RunCellId, "pass")
        ]
        for (const attempt of attempts) {
          const result = yield* Effect.either(attempt)
          expect(Either.isLeft(result) && [result.left._tag, result.left.code]).toEqual([
            "NotFound",
            "cell_not_found"
          ])
        }
        expect(yield* writes(sql, seeded)).toEqual(before)
        expect((yield* grades.get(owner, runId, cellId)).manualGrade).toBeNull()
      })
    )

    it.effect("only a succeeded cell takes pass or fail; unset is always allowed", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const seeded = yield* seedRun(sql, { rows: 1 })
        const { owner, runId, cellId } = ids(seeded)
        const before = yield* writes(sql, seeded)
        const refused = yield* Effect.either(grades.set(owner, runId, cellId, "pass"))
        expect(
          Either.isLeft(refused) && [refused.left._tag, refused.left.code, refused.left.details]
        ).toEqual(["Unprocessable", "cell_not_gradable", { status: "queued" }])
        expect(yield* writes(sql, seeded)).toEqual(before)

        const cleared = yield* grades.set(owner, runId, cellId, "unset")
        expect(cleared).toMatchObject({ status: "queued", manualGrade: null, grade: null })
        expect(yield* writes(sql, seeded)).toEqual({
          grades: before.grades + 1,
          events: before.events + 1,
          graded: 0
        })
      })
    )

    it.effect("the manual_grade event reaches live subscribers as soon as the grade commits", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const events = yield* RunEvents
        const seeded = yield* finishedRun(sql)
        const { owner, runId, cellId } = ids(seeded)
        const [last] = yield* sql<{ id: string }>`
          select max(id)::text as id from assay.run_cell_event where run_id = ${runId}`
        const received = yield* events
          .subscribe(runId, BigInt(last!.id))
          .pipe(Stream.take(1), Stream.runCollect, Effect.timeout("5 seconds"), Effect.fork)
        yield* Effect.sleep("50 millis")
        yield* grades.set(owner, runId, cellId, "fail")
        const [event] = Chunk.toReadonlyArray(yield* Fiber.join(received))
        expect(event).toMatchObject({
          runId,
          cellId,
          type: "manual_grade",
          payload: { value: "fail", user: owner }
        })
      })
    )

    it.effect("concurrent grading leaves the newest history entry equal to the cell's grade", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const grades = yield* Grades
        const seeded = yield* finishedRun(sql)
        const { owner, runId, cellId } = ids(seeded)
        const values: Array<ManualGradeValue> = [
          "pass",
          "fail",
          "unset",
          "fail",
          "pass",
          "fail",
          "unset",
          "pass"
        ]
        yield* Effect.forEach(values, (value) => grades.set(owner, runId, cellId, value), {
          concurrency: "unbounded",
          discard: true
        })
        const state = yield* grades.get(owner, runId, cellId)
        expect(state.history).toHaveLength(values.length + 1)
        const newest = state.history[0]!.value
        expect(state.manualGrade).toBe(newest === "unset" ? null : newest)
        const events = yield* sql<{ value: ManualGradeValue }>`
          select payload ->> 'value' as value from assay.run_cell_event
          where run_cell_id = ${cellId} and event_type = 'manual_grade' order by id`
        // events and history tell the same story, in the same order
        expect(events.map((e) => e.value)).toEqual(
          state.history
            .slice(0, values.length)
            .map((h) => h.value)
            .reverse()
        )
      })
    )
  })
}

/** Just this feature's REST group and RPCs, behind the real authentication, on a socket. */
const routes = Layer.mergeAll(
  HttpLayerRouter.addHttpApi(HttpApi.make("assay").add(GradesApi)).pipe(
    Layer.provide(GradesHttp),
    Layer.provide(AuthenticationLive)
  ),
  RpcServer.layerHttpRouter({
    group: GradeRpcs,
    path: "/rpc",
    protocol: "http",
    disableFatalDefects: true
  }).pipe(
    Layer.provide(GradeRpcHandlers),
    Layer.provide(RpcAuthenticationLive),
    Layer.provide(RpcSerialization.layerNdjson)
  )
)

const gradeClient = (baseUrl: string, token: string) =>
  RpcClient.make(GradeRpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${baseUrl}/rpc` }).pipe(
        Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
      )
    ),
    Effect.provide(
      RpcMiddleware.layerClient(RpcAuthentication, ({ request }) =>
        Effect.succeed({
          ...request,
          headers: Headers.set(request.headers, "authorization", `Bearer ${token}`)
        })
      )
    )
  )

for (const db of testDatabases) {
  layer(
    testServer(routes).pipe(
      Layer.provide(Layer.mergeAll(Grades.Default, RunMetrics.Default, Identity.Default)),
      Layer.provide(RunEventsPublishedOnly),
      Layer.provide(testConfig(supabaseEnv)),
      Layer.provideMerge(db.layer)
    ),
    { excludeTestServices: true, timeout: 60_000 }
  )(`grades over REST and RPC on ${db.kind}`, (it) => {
    it.effect(
      "the owner grades, reads history and metrics, and picks the active metric; others get 404",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const aliceId = crypto.randomUUID()
          const aliceToken = yield* promise(() => signToken({ sub: aliceId }))
          const bobToken = yield* promise(() => signToken({ sub: crypto.randomUUID() }))
          const alice = api(base, aliceToken)
          const bob = api(base, bobToken)
          const seeded = yield* finishedRun(sql, aliceId)
          const [cell0, cell1] = seeded.cellIds as [string, string]
          const cellRoute = `/api/v1/runs/${seeded.runId}/cells/${cell1}`

          const graded = yield* promise(() => alice.put(`${cellRoute}/grade`, { value: "pass" }))
          expect(graded.status).toBe(200)
          expect(graded.body).toMatchObject({
            runId: seeded.runId,
            cellId: cell1,
            status: "succeeded",
            autoGrade: "fail",
            manualGrade: "pass",
            grade: "pass"
          })
          expect(graded.body.history[0]).toMatchObject({ value: "pass", userId: aliceId })
          expect(typeof graded.body.history[0].createdAt).toBe("string")

          const history = yield* promise(() => alice.get(`${cellRoute}/grades`))
          expect(history.status).toBe(200)
          expect(history.body).toEqual(graded.body.history)

          const metrics = yield* promise(() => alice.get(`/api/v1/runs/${seeded.runId}/metrics`))
          expect(metrics.status).toBe(200)
          expect(metrics.body).toMatchObject({ runId: seeded.runId, activeMetric: "combined_pass_rate" })
          expect(metrics.body.models[0].metrics).toMatchObject({
            autoPassRate: 0.5,
            manualPassRate: 1,
            combinedPassRate: 1,
            meanLatencyMs: 10
          })

          const switched = yield* promise(() =>
            alice.put(`/api/v1/runs/${seeded.runId}/active-metric`, { activeMetric: "cost" })
          )
          expect(switched.status).toBe(200)
          expect(switched.body.activeMetric).toBe("cost")

          const badRequests = [
            () => alice.put(`${cellRoute}/grade`, { value: "maybe" }),
            () => alice.put(`${cellRoute}/grade`, { value: "pass", by: "me" }),
            () => alice.put(`/api/v1/runs/${seeded.runId}/cells/not-a-uuid/grade`, { value: "pass" }),
            () => alice.put(`/api/v1/runs/${seeded.runId}/active-metric`, { activeMetric: "vibes" })
          ]
          for (const attempt of badRequests) {
            const response = yield* promise(attempt)
            expect([response.status, response.body.error.code]).toEqual([400, "invalid_request"])
          }
          yield* sql`update assay.run_cell set status = 'failed' where id = ${cell0}`
          const notGradable = yield* promise(() =>
            alice.put(`/api/v1/runs/${seeded.runId}/cells/${cell0}/grade`, { value: "fail" })
          )
          expect([notGradable.status, notGradable.body.error.code]).toEqual([422, "cell_not_gradable"])

          const denied: Array<[() => ReturnType<typeof bob.get>, string]> = [
            [() => bob.put(`${cellRoute}/grade`, { value: "fail" }), "cell_not_found"],
            [() => bob.get(`${cellRoute}/grades`), "cell_not_found"],
            [() => bob.get(`/api/v1/runs/${seeded.runId}/metrics`), "run_not_found"],
            [
              () => bob.put(`/api/v1/runs/${seeded.runId}/active-metric`, { activeMetric: "latency" }),
              "run_not_found"
            ]
          ]
          for (const [attempt, code] of denied) {
            const response = yield* promise(attempt)
            expect([response.status, response.body.error.code]).toEqual([404, code])
          }
          const anonymous = yield* promise(() => api(base).get(`/api/v1/runs/${seeded.runId}/metrics`))
          expect(anonymous.status).toBe(401)

          // the same doors over RPC
          const rpc = yield* gradeClient(base, aliceToken)
          const viaRpc = yield* rpc.grades.set({
            runId: seeded.runId as RunId,
            cellId: cell1 as RunCellId,
            value: "fail"
          })
          expect([viaRpc.manualGrade, viaRpc.grade, viaRpc.history.length]).toEqual(["fail", "fail", 3])
          const rpcHistory = yield* rpc.grades.history({
            runId: seeded.runId as RunId,
            cellId: cell1 as RunCellId
          })
          expect(rpcHistory.map((h) => h.value)).toEqual(["fail", "pass", "pass"])
          const rpcMetrics = yield* rpc.runs.metrics({ id: seeded.runId as RunId })
          expect([rpcMetrics.activeMetric, rpcMetrics.models[0]!.metrics.combinedPassRate]).toEqual([
            "cost",
            0
          ])
          const rpcSwitched = yield* rpc.runs.setActiveMetric({
            id: seeded.runId as RunId,
            activeMetric: "tokens"
          })
          expect(rpcSwitched.activeMetric).toBe("tokens")

          const bobRpc = yield* gradeClient(base, bobToken)
          const rpcDenied: Array<Effect.Effect<unknown, { _tag: string }>> = [
            bobRpc.grades.set({ runId: seeded.runId as RunId, cellId: cell1 as RunCellId, value: "pass" }),
            bobRpc.grades.history({ runId: seeded.runId as RunId, cellId: cell1 as RunCellId }),
            bobRpc.runs.metrics({ id: seeded.runId as RunId }),
            bobRpc.runs.setActiveMetric({ id: seeded.runId as RunId, activeMetric: "latency" })
          ]
          for (const attempt of rpcDenied) {
            const result = yield* Effect.either(attempt)
            expect(Either.isLeft(result) && result.left._tag).toBe("NotFound")
          }

          // Bob changed nothing
          const [run] = yield* sql<{ active_metric: string }>`
          select active_metric from assay.run where id = ${seeded.runId}`
          expect(run!.active_metric).toBe("tokens")
          const [cell] = yield* sql<{ manual_grade: string }>`
          select manual_grade from assay.run_cell where id = ${cell1}`
          expect(cell!.manual_grade).toBe("fail")
        }).pipe(Effect.scoped)
    )
  })
}
