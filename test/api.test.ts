import { expect, layer } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import type { PromptId } from "../src/domain/Ids.ts"
import { api, csvForm, rpcClient, signToken, supabaseEnv, testApp } from "./support/TestApp.ts"
import { BaseUrl } from "./support/TestServer.ts"
import { pgliteLayer, testDatabases } from "./support/TestDatabase.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

const TOPICS_CSV = "topic,audience\nbees,children\ntides,sailors\nrust,engineers\n"

const ROUTES = [
  "/api/v1/prompts",
  "/api/v1/prompts/{id}",
  "/api/v1/prompts/{id}/versions",
  "/api/v1/prompts/{id}/versions/{versionId}",
  "/api/v1/prompts/{id}/diff",
  "/api/v1/datasets",
  "/api/v1/datasets/{id}",
  "/api/v1/datasets/{id}/preview",
  "/api/v1/models",
  "/api/v1/models/defaults",
  "/api/v1/models/{id}",
  "/api/v1/api-keys",
  "/api/v1/api-keys/{provider}",
  "/api/v1/runs",
  "/api/v1/runs/{id}",
  "/api/v1/runs/{id}/cancel",
  "/api/v1/runs/{id}/rerun-failed",
  "/api/v1/runs/{id}/cells/{cellId}/rerun",
  "/api/v1/runs/{id}/cells",
  "/api/v1/runs/{id}/cells/{cellId}",
  "/api/v1/runs/{id}/events",
  "/api/v1/runs/{id}/cells/{cellId}/grade",
  "/api/v1/runs/{id}/cells/{cellId}/grades",
  "/api/v1/runs/{id}/metrics",
  "/api/v1/runs/{id}/active-metric"
]

for (const db of testDatabases) {
  layer(testApp(db.layer, { ASSAY_MAX_UPLOAD_BYTES: "4096", ASSAY_MAX_DATASET_ROWS: "50" }), {
    excludeTestServices: true,
    timeout: 60_000
  })(`REST and RPC in local mode on ${db.kind}`, (it) => {
    it.effect("walks the loop: create a prompt, upload a CSV, create a run with two models", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const http = api(base)
        const prompt = yield* promise(() =>
          http.post("/api/v1/prompts", {
            name: "Explain",
            type: "generator",
            systemText: "You explain things to {{ audience }}.",
            userTemplate: "Explain {{topic}} in one paragraph."
          })
        )
        expect(prompt.status).toBe(201)
        expect(prompt.body.placeholders).toEqual(["audience", "topic"])

        const dataset = yield* promise(() => http.post("/api/v1/datasets", csvForm(TOPICS_CSV, "topics.csv")))
        expect(dataset.status).toBe(201)
        expect(dataset.body).toMatchObject({ name: "topics", headers: ["topic", "audience"], rowCount: 3 })

        const models = yield* promise(() => http.post("/api/v1/models/defaults"))
        expect(models.status).toBe(200)
        const mock = models.body.find((m: { provider: string }) => m.provider === "mock")
        const second = yield* promise(() =>
          http.post("/api/v1/models", { provider: "mock", model: "mock-2", label: "Mock two" })
        )
        expect(second.status).toBe(201)

        const run = yield* promise(() =>
          http.post("/api/v1/runs", {
            promptId: prompt.body.id,
            datasetId: dataset.body.id,
            modelIds: [mock.id, second.body.id]
          })
        )
        expect(run.status).toBe(201)
        expect(run.body.counts).toEqual({
          total: 6,
          queued: 6,
          running: 0,
          succeeded: 0,
          failed: 0,
          canceled: 0
        })
        expect(
          run.body.models.map((m: { label: string; counts: { total: number } }) => [m.label, m.counts.total])
        ).toEqual([
          [mock.label, 3],
          ["Mock two", 3]
        ])

        // the engine runs the cells with the mock: wait for the run to complete
        let fetched = yield* promise(() => http.get(`/api/v1/runs/${run.body.id}`))
        for (let i = 0; i < 100 && fetched.body.status !== "completed"; i++) {
          yield* Effect.sleep("50 millis")
          fetched = yield* promise(() => http.get(`/api/v1/runs/${run.body.id}`))
        }
        expect(fetched.body.status).toBe("completed")
        expect(fetched.body.counts).toEqual({
          total: 6,
          queued: 0,
          running: 0,
          succeeded: 6,
          failed: 0,
          canceled: 0
        })
        const cells = yield* promise(() => http.get(`/api/v1/runs/${run.body.id}/cells`))
        const outputs = cells.body.items.map((c: { outputRaw: string }) => c.outputRaw).sort()
        expect(outputs).toContain("[mock-1] Explain bees in one paragraph.")
        expect(outputs).toContain("[mock-2] Explain rust in one paragraph.")

        const metrics = yield* promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
        const succeeded = /assay_provider_calls_total\{provider="mock",outcome="succeeded"\} (\d+)/.exec(
          metrics
        )
        expect(Number(succeeded?.[1])).toBeGreaterThanOrEqual(6)
        expect(metrics).toContain('assay_queue_cells{status="queued"}')
        expect(metrics).toMatch(
          /assay_gate_concurrency_limit\{provider="mock",base_url="",model="mock-2"\} \d+/
        )
        expect(metrics).not.toContain("00000000-0000-4000-8000-000000000001")
        const listed = yield* promise(() => http.get(`/api/v1/runs?promptId=${prompt.body.id}`))
        expect(listed.body.items.map((r: { id: string }) => r.id)).toEqual([run.body.id])

        // the run froze the prompt's text as version 1
        const versions = yield* promise(() => http.get(`/api/v1/prompts/${prompt.body.id}/versions`))
        expect(versions.body).toHaveLength(1)
        expect(versions.body[0]).toMatchObject({ versionNumber: 1, id: run.body.promptVersionId })
        const preview = yield* promise(() =>
          http.get(`/api/v1/datasets/${dataset.body.id}/preview?offset=1&limit=1`)
        )
        expect(preview.body).toEqual({
          headers: ["topic", "audience"],
          total: 3,
          offset: 1,
          limit: 1,
          rows: [{ index: 1, values: { topic: "tides", audience: "sailors" } }]
        })
      })
    )

    it.effect("run validation names what is wrong", () =>
      Effect.gen(function* () {
        const http = api(yield* BaseUrl)
        const prompt = (yield* promise(() =>
          http.post("/api/v1/prompts", {
            name: "Needs topic",
            type: "generator",
            userTemplate: "About {{topic}} and {{tone}}"
          })
        )).body
        const grader = (yield* promise(() =>
          http.post("/api/v1/prompts", {
            name: "Judge",
            type: "grader",
            userTemplate: "Is {{output}} good? {{nope}}"
          })
        )).body
        const form = csvForm("topic,other\na,b\n", "t.csv")
        const dataset = (yield* promise(() => http.post("/api/v1/datasets", form))).body
        const models = (yield* promise(() => http.post("/api/v1/models/defaults"))).body as Array<{
          id: string
        }>
        const mock = models[0]!.id

        const missing = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: prompt.id, datasetId: dataset.id, modelIds: [mock] })
        )
        expect(missing.status).toBe(422)
        expect(missing.body.error.code).toBe("missing_columns")
        expect(missing.body.error.details.missing_columns).toEqual(["tone"])

        const noDataset = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: prompt.id, modelIds: [mock] })
        )
        expect(noDataset.status).toBe(422)
        expect(noDataset.body.error.code).toBe("dataset_required")

        const noModels = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: prompt.id, modelIds: [] })
        )
        expect(noModels.body.error.code).toBe("no_models")
        const five = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: prompt.id, modelIds: models.slice(0, 5).map((m) => m.id) })
        )
        expect(five.status).toBe(422)
        expect(five.body.error.code).toBe("too_many_models")

        const graderAsPrompt = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: grader.id, modelIds: [mock] })
        )
        expect(graderAsPrompt.body.error.code).toBe("not_a_generator")

        const plain = (yield* promise(() =>
          http.post("/api/v1/prompts", { name: "Plain", type: "generator", userTemplate: "Say hi" })
        )).body
        const generatorAsGrader = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: plain.id, modelIds: [mock], graderPromptId: prompt.id })
        )
        expect(generatorAsGrader.body.error.code).toBe("not_a_grader")
        const graderMissing = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: plain.id, modelIds: [mock], graderPromptId: grader.id })
        )
        expect(graderMissing.status).toBe(422)
        expect(graderMissing.body.error.details).toEqual({ missing_columns: ["nope"], prompt: "grader" })

        const unknownModel = yield* promise(() =>
          http.post("/api/v1/runs", { promptId: plain.id, modelIds: [crypto.randomUUID()] })
        )
        expect(unknownModel.status).toBe(404)
        expect(unknownModel.body.error.code).toBe("model_not_found")

        // nothing was created by the failed attempts
        const runs = yield* promise(() => http.get(`/api/v1/runs?promptId=${prompt.id}`))
        expect(runs.body.items).toEqual([])
      })
    )

    it.effect("malformed requests get 400 envelopes, never a crash", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const badJson = yield* promise(() =>
          fetch(`${base}/api/v1/prompts`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{not json"
          }).then(async (r) => ({ status: r.status, body: await r.json() }))
        )
        expect(badJson.status).toBe(400)
        expect(badJson.body.error.code).toBe("invalid_request")

        const http = api(base)
        const unknownField = yield* promise(() =>
          http.post("/api/v1/prompts", { name: "x", type: "generator", colour: "blue" })
        )
        expect(unknownField.status).toBe(400)
        expect(unknownField.body.error.code).toBe("invalid_request")
        const badType = yield* promise(() => http.post("/api/v1/prompts", { name: "x", type: "judge" }))
        expect(badType.status).toBe(400)
        const badId = yield* promise(() => http.get("/api/v1/prompts/not-a-uuid"))
        expect(badId.status).toBe(400)
        expect(badId.body.error.code).toBe("invalid_request")
        const badCursor = yield* promise(() => http.get("/api/v1/prompts?cursor=garbage"))
        expect(badCursor.status).toBe(400)
        expect(badCursor.body.error.code).toBe("invalid_cursor")
        const badTemplate = yield* promise(() =>
          http.post("/api/v1/prompts", { name: "x", type: "generator", userTemplate: "Hi {{ 1bad }}" })
        )
        expect(badTemplate.status).toBe(422)
        expect(badTemplate.body.error.code).toBe("invalid_template")
      })
    )

    it.effect("upload errors are 4xx with codes and leave nothing behind", () =>
      Effect.gen(function* () {
        const http = api(yield* BaseUrl)
        const before = (yield* promise(() => http.get("/api/v1/datasets?limit=200"))).body.items.length
        const cases: Array<[FormData, number, string]> = [
          [csvForm("", "empty.csv"), 400, "empty_file"],
          [csvForm("a,b\n1,2\n3\n", "short.csv"), 400, "field_count_mismatch"],
          [csvForm("a,a\n1,2\n", "dup.csv"), 400, "duplicate_header"],
          [csvForm("[1, 2]", "arr.json"), 400, "not_array_of_objects"],
          [csvForm('{"a": 1}\n{"a": ', "bad.jsonl"), 400, "malformed_json"],
          [csvForm("x\n" + "1\n".repeat(60), "rows.csv"), 413, "too_many_rows"],
          [csvForm("x\n" + "abcdefghij\n".repeat(500), "big.csv"), 413, "file_too_large"]
        ]
        for (const [form, status, code] of cases) {
          const response = yield* promise(() => http.post("/api/v1/datasets", form))
          expect([response.status, response.body.error.code]).toEqual([status, code])
        }
        const short = yield* promise(() =>
          http.post("/api/v1/datasets", csvForm("a,b\n1,2\n3\n", "short.csv"))
        )
        expect(short.body.error.details).toMatchObject({ row: 2 })
        const noFile = new FormData()
        noFile.append("name", "nothing")
        const missing = yield* promise(() => http.post("/api/v1/datasets", noFile))
        expect([missing.status, missing.body.error.code]).toEqual([400, "missing_file"])

        const after = (yield* promise(() => http.get("/api/v1/datasets?limit=200"))).body.items.length
        expect(after).toBe(before)
      })
    )

    it.effect("the OpenAPI document lists every route, and /docs renders it", () =>
      Effect.gen(function* () {
        const base = yield* BaseUrl
        const spec = yield* promise(() => fetch(`${base}/api/v1/openapi.json`).then((r) => r.json()))
        expect(Object.keys(spec.paths).sort()).toEqual([...ROUTES].sort())
        expect(spec.paths["/api/v1/runs"].post.responses["422"]).toBeDefined()
        const docs = yield* promise(() => fetch(`${base}/docs`))
        expect(docs.status).toBe(200)
        expect(docs.headers.get("content-type")).toContain("text/html")
      })
    )

    it.effect("RPC offers the same operations with the same errors", () =>
      Effect.gen(function* () {
        const client = yield* rpcClient(yield* BaseUrl, undefined)
        const prompt = yield* client.prompts.create({
          name: "Over RPC",
          type: "generator",
          systemText: "",
          userTemplate: "Hello {{name}}",
          defaultParams: {}
        })
        expect(prompt.placeholders).toEqual(["name"])
        const page = yield* client.prompts.list({ limit: 200 })
        expect(page.items.map((p) => p.id)).toContain(prompt.id)
        const models = yield* client.models.seedDefaults({})
        const failed = yield* Effect.either(
          client.runs.create({
            promptId: prompt.id,
            datasetId: null,
            modelIds: [models[0]!.id],
            graderPromptId: null,
            graderModelId: null
          })
        )
        expect(Either.isLeft(failed) && failed.left._tag === "Unprocessable" && failed.left.code).toBe(
          "dataset_required"
        )
        const missing = yield* Effect.either(client.prompts.get({ id: crypto.randomUUID() as PromptId }))
        expect(Either.isLeft(missing) && missing.left._tag).toBe("NotFound")
        const key = yield* client.apiKeys.put({
          provider: "openai",
          key: Redacted.make("sk-rpc-secret-1234")
        })
        expect(key.masked).toBe("…1234")
        expect(JSON.stringify(yield* client.apiKeys.list({}))).not.toContain("sk-rpc-secret")
      }).pipe(Effect.scoped)
    )
  })

  layer(testApp(db.layer, supabaseEnv), { excludeTestServices: true, timeout: 60_000 })(
    `auth and tenancy in supabase mode on ${db.kind}`,
    (it) => {
      it.effect("rejects missing, expired, forged, misaddressed and unsigned tokens over REST and RPC", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const sub = crypto.randomUUID()
          const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")
          const claims = Buffer.from(
            JSON.stringify({
              sub,
              role: "authenticated",
              aud: "authenticated",
              exp: Math.floor(Date.now() / 1000) + 600
            })
          ).toString("base64url")
          const cases: Array<[string | undefined, number, string]> = [
            [undefined, 401, "missing_token"],
            [
              yield* promise(() => signToken({ sub, expiresIn: Math.floor(Date.now() / 1000) - 600 })),
              401,
              "token_expired"
            ],
            [
              yield* promise(() => signToken({ sub, secret: "another-secret-of-sufficient-length!!" })),
              401,
              "invalid_signature"
            ],
            [yield* promise(() => signToken({ sub, aud: "someone-else" })), 401, "invalid_audience"],
            [`${header}.${claims}.`, 401, "unsupported_algorithm"],
            ["not.a.token", 401, "malformed_token"],
            [yield* promise(() => signToken({ role: "service_role" })), 403, "service_role_not_allowed"]
          ]
          for (const [token, status, code] of cases) {
            const rest = yield* promise(() => api(base, token).get("/api/v1/prompts"))
            expect([rest.status, rest.body.error.code]).toEqual([status, code])
            const client = yield* rpcClient(base, token)
            const rpc = yield* Effect.either(client.prompts.list({}))
            expect(Either.isLeft(rpc) && [rpc.left._tag, (rpc.left as { code: string }).code]).toEqual([
              status === 401 ? "Unauthorized" : "Forbidden",
              code
            ])
          }
          const ok = yield* promise(() => api(base, undefined).get("/healthz"))
          expect(ok.status).toBe(200)
        }).pipe(Effect.scoped)
      )

      it.effect("two users cannot see or touch each other's prompts, datasets, models, keys and runs", () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const alice = api(base, yield* promise(() => signToken({ sub: crypto.randomUUID() })))
          const bobToken = yield* promise(() => signToken({ sub: crypto.randomUUID() }))
          const bob = api(base, bobToken)

          const prompt = (yield* promise(() =>
            alice.post("/api/v1/prompts", { name: "Alice's", type: "generator", userTemplate: "{{topic}}" })
          )).body
          const dataset = (yield* promise(() => alice.post("/api/v1/datasets", csvForm(TOPICS_CSV)))).body
          const model = (yield* promise(() =>
            alice.post("/api/v1/models", { provider: "mock", model: "mock-a" })
          )).body
          expect(
            (yield* promise(() => alice.put("/api/v1/api-keys/openai", { key: "sk-alice-secret-0001" })))
              .status
          ).toBe(200)
          const run = (yield* promise(() =>
            alice.post("/api/v1/runs", { promptId: prompt.id, datasetId: dataset.id, modelIds: [model.id] })
          )).body
          expect(run.counts.total).toBe(3)

          const denied = [
            () => bob.get(`/api/v1/prompts/${prompt.id}`),
            () => bob.patch(`/api/v1/prompts/${prompt.id}`, { name: "Bob's now" }),
            () => bob.del(`/api/v1/prompts/${prompt.id}`),
            () => bob.get(`/api/v1/prompts/${prompt.id}/versions`),
            () => bob.post(`/api/v1/prompts/${prompt.id}/versions`),
            () => bob.get(`/api/v1/datasets/${dataset.id}`),
            () => bob.get(`/api/v1/datasets/${dataset.id}/preview`),
            () => bob.patch(`/api/v1/datasets/${dataset.id}`, { name: "mine" }),
            () => bob.del(`/api/v1/datasets/${dataset.id}`),
            () => bob.get(`/api/v1/models/${model.id}`),
            () => bob.patch(`/api/v1/models/${model.id}`, { label: "mine" }),
            () => bob.del(`/api/v1/models/${model.id}`),
            () => bob.del("/api/v1/api-keys/openai"),
            () => bob.get(`/api/v1/runs/${run.id}`),
            () => bob.post("/api/v1/runs", { promptId: prompt.id, modelIds: [model.id] })
          ]
          for (const attempt of denied) {
            const response = yield* promise(attempt)
            expect(response.status).toBe(404)
          }
          // Bob's own run may not borrow Alice's model or dataset either
          const own = (yield* promise(() =>
            bob.post("/api/v1/prompts", { name: "Bob's", type: "generator", userTemplate: "{{topic}}" })
          )).body
          const borrow = yield* promise(() =>
            bob.post("/api/v1/runs", { promptId: own.id, datasetId: dataset.id, modelIds: [model.id] })
          )
          expect(borrow.status).toBe(404)

          for (const route of ["/api/v1/prompts", "/api/v1/datasets", "/api/v1/runs"]) {
            const listed = yield* promise(() => bob.get(route))
            const ids = listed.body.items.map((i: { id: string }) => i.id)
            expect(ids).not.toContain(prompt.id)
            expect(ids).not.toContain(dataset.id)
            expect(ids).not.toContain(run.id)
          }
          expect(
            (yield* promise(() => bob.get("/api/v1/models"))).body.map((m: { id: string }) => m.id)
          ).not.toContain(model.id)
          expect((yield* promise(() => bob.get("/api/v1/api-keys"))).body).toEqual([])

          // the same over RPC
          const rpc = yield* rpcClient(base, bobToken)
          const rpcDenied = [
            rpc.prompts.get({ id: prompt.id }),
            rpc.prompts.update({ id: prompt.id, changes: { name: "x" } }),
            rpc.prompts.delete({ id: prompt.id }),
            rpc.datasets.get({ id: dataset.id }),
            rpc.datasets.preview({ id: dataset.id }),
            rpc.datasets.delete({ id: dataset.id }),
            rpc.models.get({ id: model.id }),
            rpc.models.delete({ id: model.id }),
            rpc.apiKeys.delete({ provider: "openai" }),
            rpc.runs.get({ id: run.id })
          ]
          for (const attempt of rpcDenied) {
            const result = yield* Effect.either(attempt)
            expect(Either.isLeft(result) && result.left._tag).toBe("NotFound")
          }
          expect((yield* rpc.runs.list({})).items).toEqual([])

          // and Alice still has everything, untouched
          expect((yield* promise(() => alice.get(`/api/v1/prompts/${prompt.id}`))).body.name).toBe("Alice's")
          expect((yield* promise(() => alice.get(`/api/v1/runs/${run.id}`))).status).toBe(200)
          expect((yield* promise(() => alice.get("/api/v1/api-keys"))).body).toHaveLength(1)
        }).pipe(Effect.scoped)
      )
    }
  )
}

const METRICS_TOKEN = "metrics-token-for-tests"
const getMetrics = (base: string, authorization?: string) =>
  promise(async () => {
    const response = await fetch(`${base}/metrics`, {
      headers: authorization === undefined ? {} : { authorization }
    })
    return { status: response.status, text: await response.text() }
  })

layer(testApp(pgliteLayer, supabaseEnv), { excludeTestServices: true, timeout: 60_000 })(
  "metrics in supabase mode without ASSAY_METRICS_TOKEN",
  (it) => {
    it.effect(
      "are closed to everyone, a signed-in user included, with a message saying how to open them",
      () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const userToken = yield* promise(() => signToken({ sub: crypto.randomUUID() }))
          for (const authorization of [undefined, `Bearer ${userToken}`]) {
            const refused = yield* getMetrics(base, authorization)
            expect(refused.status).toBe(403)
            expect(JSON.parse(refused.text).error.code).toBe("metrics_closed")
            expect(refused.text).toContain("ASSAY_METRICS_TOKEN")
          }
        })
    )
  }
)

layer(testApp(pgliteLayer, { ...supabaseEnv, ASSAY_METRICS_TOKEN: METRICS_TOKEN }), {
  excludeTestServices: true,
  timeout: 60_000
})("metrics with ASSAY_METRICS_TOKEN", (it) => {
  it.effect("take the token as a bearer token and refuse anything else", () =>
    Effect.gen(function* () {
      const base = yield* BaseUrl
      for (const authorization of [
        undefined,
        "Bearer wrong",
        `Basic ${METRICS_TOKEN}`,
        `Bearer ${METRICS_TOKEN}x`
      ]) {
        const refused = yield* getMetrics(base, authorization)
        expect(refused.status).toBe(401)
        expect(JSON.parse(refused.text).error.code).toBe("unauthorized")
        expect(refused.text).not.toContain(METRICS_TOKEN)
      }
      const allowed = yield* getMetrics(base, `Bearer ${METRICS_TOKEN}`)
      expect(allowed.status).toBe(200)
      expect(allowed.text).toContain('assay_queue_cells{status="queued"}')
    })
  )
})
