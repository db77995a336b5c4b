import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Redacted, Scope } from "effect"
import * as Database from "../src/layers/Database.ts"
import {
  allCells,
  byId,
  call,
  cellAt,
  cellDetail,
  createModel,
  eventTypes,
  freshUser,
  getRun,
  type Http,
  isFinished,
  msBetween,
  putApiKey,
  type RunJson,
  startRun,
  topics,
  waitForRun,
  waitUntil
} from "./support/EngineFixtures.ts"
import { type FakeProvider, type Fault, promptKey, scoped } from "./support/FakeProvider.ts"
import { supabaseEnv, testApp } from "./support/TestApp.ts"
import { adminUrl, postgresLayer, testDatabases } from "./support/TestDatabase.ts"
import { BaseUrl } from "./support/TestServer.ts"

/*
 * The run engine end to end: REST over a real socket, the real engine, the fake provider over HTTP. Small engine
 * settings keep retries and leases quick: 2 s leases, 3 attempts, a 500 ms provider timeout.
 */
const ENGINE_ENV = {
  ...supabaseEnv,
  ASSAY_LEASE_MS: "2000",
  ASSAY_MAX_ATTEMPTS: "3",
  ASSAY_PROVIDER_TIMEOUT_MS: "500"
}
/** Calls that must stay open longer than 500 ms (cancel), and fewer workers than a gate's initial concurrency. */
const SECOND_ENV = { ...supabaseEnv, ASSAY_LEASE_MS: "2000", ASSAY_WORKERS: "16" }
/** Two processes on one database. */
const SHARED_ENV = { ...supabaseEnv, ASSAY_LEASE_MS: "2000" }

const FAKE_MODEL = "fake-gpt"

const fakeModel = (fake: FakeProvider, extra: { maxConcurrency?: number; model?: string } = {}) =>
  ({
    provider: "openai-compatible",
    model: extra.model ?? FAKE_MODEL,
    baseUrl: `${fake.url}/v1`,
    ...(extra.maxConcurrency === undefined ? {} : { maxConcurrency: extra.maxConcurrency })
  }) as const

/** A template unique to the test, so that the fake's matchers and counters see only this test's prompts. */
const templateFor = (tag: string) => `[${tag}] Tell me about {{topic}}`
const userText = (tag: string, topic: string) => `[${tag}] Tell me about ${topic}`
/** The fake's rendered prompt of a generator call for `topic` ("user: ... about <topic>"). */
const about = (topic: string) => (prompt: string) => prompt.endsWith(` about ${topic}`)
const newTag = () => crypto.randomUUID().slice(0, 8)

const successesFor = (fake: FakeProvider, model: string, user: string) =>
  fake.stats.byPrompt.get(promptKey(model, { messages: [{ role: "user", content: user }] })) ?? 0

const statusCount = (fake: FakeProvider, status: number) => fake.stats.byStatus.get(status) ?? 0

const user = Effect.flatMap(BaseUrl, freshUser)

const cancelRun = (http: Http, runId: string) =>
  call<RunJson>(http, "post", `/api/v1/runs/${runId}/cancel`, 200)

for (const db of testDatabases) {
  layer(testApp(db.layer, ENGINE_ENV), { excludeTestServices: true, timeout: 60_000 })(
    `run engine on ${db.kind}`,
    (it) => {
      it.scoped("retries a 500 twice, then succeeds on the third attempt with its history in order", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const rows = topics(3)
          fake.failWhen(about(rows[1]!), { kind: "status", status: 500 }, 2)
          const model = yield* createModel(http, fakeModel(fake))
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [model.id]
          })

          const finished = yield* waitForRun(http, run.id, isFinished, 15_000)
          expect(finished.status).toBe("completed")
          expect(finished.counts).toMatchObject({ total: 3, succeeded: 3, failed: 0 })
          const cells = yield* allCells(http, run.id)
          const flaky = yield* cellDetail(http, run.id, cellAt(cells, 1).id)
          expect(flaky.status).toBe("succeeded")
          expect(flaky.attempt).toBe(3)
          expect(flaky.errorCode).toBeNull()
          expect(flaky.outputRaw).toMatch(new RegExp(`^echo:[0-9a-f]{8} \\[${tag}\\] Tell me about`))
          expect(eventTypes(flaky)).toEqual([
            "queued",
            "started",
            "retrying",
            "started",
            "retrying",
            "started",
            "succeeded"
          ])
          const [, first, retry1, second, retry2, third] = byId(flaky.events)
          expect([first!.payload.attempt, second!.payload.attempt, third!.payload.attempt]).toEqual([1, 2, 3])
          expect(retry1!.payload).toMatchObject({ code: "server_error", attempt: 1, status: 500 })
          expect(retry2!.payload).toMatchObject({ code: "server_error", attempt: 2, status: 500 })
          // the next attempt waits for the backoff it announced (about 1 s, then about 2 s)
          for (const [retrying, next] of [
            [retry1!, second!],
            [retry2!, third!]
          ] as const) {
            const delay = retrying.payload.delayMs as number
            expect(delay).toBeGreaterThanOrEqual(500)
            expect(msBetween(retrying.createdAt, next.createdAt)).toBeGreaterThanOrEqual(delay - 1)
          }
          expect(successesFor(fake, FAKE_MODEL, userText(tag, rows[1]!))).toBe(1)
          expect(statusCount(fake, 500)).toBe(2)
          for (const index of [0, 2]) expect(cellAt(cells, index).attempt).toBe(1)
          // the cell's detail lists its events in the order they happened (id order), past event 9 too
          expect(flaky.events.map((e) => e.id)).toEqual(byId(flaky.events).map((e) => e.id))
        })
      )

      it.scoped("gives up after ASSAY_MAX_ATTEMPTS on a retryable fault; the other cells succeed", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const rows = topics(3)
          fake.failWhen(about(rows[0]!), { kind: "status", status: 503 })
          const model = yield* createModel(http, fakeModel(fake))
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [model.id]
          })

          const finished = yield* waitForRun(http, run.id, isFinished, 15_000)
          expect(finished.status).toBe("completed")
          expect(finished.counts).toMatchObject({ total: 3, succeeded: 2, failed: 1, queued: 0, running: 0 })
          const cells = yield* allCells(http, run.id)
          const doomed = yield* cellDetail(http, run.id, cellAt(cells, 0).id)
          expect(doomed.status).toBe("failed")
          expect(doomed.errorCode).toBe("server_error")
          expect(doomed.errorMessage).toMatch(/HTTP 503/)
          expect(doomed.attempt).toBe(3)
          expect(doomed.maxAttempts).toBe(3)
          expect(eventTypes(doomed)).toEqual([
            "queued",
            "started",
            "retrying",
            "started",
            "retrying",
            "started",
            "failed"
          ])
          expect(byId(doomed.events).at(-1)!.payload).toMatchObject({ code: "server_error", attempt: 3 })
          expect(statusCount(fake, 503)).toBe(3)
          for (const index of [1, 2]) {
            expect(cellAt(cells, index)).toMatchObject({ status: "succeeded", attempt: 1 })
          }
        })
      )

      it.scoped("non-retryable errors fail the cell at once, with a readable message and no key in it", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const openAiKey = `sk-compat-${crypto.randomUUID()}`
          const anthropicKey = `sk-ant-${crypto.randomUUID()}`
          yield* putApiKey(http, "openai-compatible", openAiKey)
          yield* putApiKey(http, "anthropic", anthropicKey)
          const compat = yield* createModel(http, fakeModel(fake))
          const claude = yield* createModel(http, {
            provider: "anthropic",
            model: "fake-claude",
            baseUrl: fake.url
          })
          const cases: ReadonlyArray<{ topic: string; code: string; fault: (key: string) => Fault }> = [
            // the error type comes back quoted in the message: set it to the key to prove it is redacted
            {
              topic: "bad",
              code: "bad_request",
              fault: (key) => ({ kind: "status", status: 400, errorType: key })
            },
            { topic: "auth", code: "auth", fault: () => ({ kind: "status", status: 401 }) },
            { topic: "missing", code: "not_found", fault: () => ({ kind: "status", status: 404 }) },
            { topic: "filtered", code: "content_filtered", fault: () => ({ kind: "content_filter" }) },
            { topic: "garbled", code: "malformed_response", fault: () => ({ kind: "malformed" }) }
          ]
          for (const c of cases) {
            fake.failWhen((p, m) => m === FAKE_MODEL && about(c.topic)(p), c.fault(openAiKey))
            fake.failWhen((p, m) => m === "fake-claude" && about(c.topic)(p), c.fault(anthropicKey))
          }
          const rows = [...cases.map((c) => c.topic), "fine"]
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [compat.id, claude.id]
          })

          const finished = yield* waitForRun(http, run.id, isFinished, 15_000)
          expect(finished.status).toBe("completed")
          expect(finished.counts).toMatchObject({ total: 12, succeeded: 2, failed: 10 })
          const cells = yield* allCells(http, run.id)
          const [compatModel, claudeModel] = finished.models
          for (const [runModel, key, name] of [
            [compatModel!, openAiKey, "The OpenAI-compatible server"],
            [claudeModel!, anthropicKey, "Anthropic"]
          ] as const) {
            for (const [index, c] of cases.entries()) {
              const detail = yield* cellDetail(http, run.id, cellAt(cells, index, runModel.id).id)
              expect({
                label: runModel.label,
                topic: c.topic,
                status: detail.status,
                code: detail.errorCode
              }).toEqual({ label: runModel.label, topic: c.topic, status: "failed", code: c.code })
              expect(detail.attempt).toBe(1)
              expect(eventTypes(detail)).toEqual(["queued", "started", "failed"])
              expect(byId(detail.events)[2]!.payload).toMatchObject({ code: c.code, attempt: 1 })
              const message = detail.errorMessage ?? ""
              expect(message.startsWith(`${name}: `)).toBe(true)
              expect(message.length).toBeLessThan(400)
              expect(message).not.toMatch(/undefined|\[object|\n|\s{2}at /)
              expect(JSON.stringify(detail)).not.toContain(key)
            }
            const bad = yield* cellDetail(http, run.id, cellAt(cells, 0, runModel.id).id)
            expect(bad.errorMessage).toContain("HTTP 400")
            expect(bad.errorMessage).toContain("[redacted]")
            expect(cellAt(cells, cases.length, runModel.id).status).toBe("succeeded")
          }
          for (const status of [400, 401, 404]) expect(statusCount(fake, status)).toBe(2)
          // one request per failing cell and one per succeeding cell: nothing was retried
          expect(fake.stats.requests).toBe(12)
        })
      )

      it.scoped(
        "a 429 with retry-after-ms 300 pauses the model's gate and retries the cell after 300 ms",
        () =>
          Effect.gen(function* () {
            const fake = yield* scoped({ latencyMs: 50 })
            const http = yield* user
            const tag = newTag()
            const rows = topics(20)
            // the provider is over its limit for 300 ms from the third request on: every request then gets a 429
            let seen = 0
            let windowEnd = 0
            let limitedPrompt = ""
            fake.failWhen(
              (prompt) => {
                if (!prompt.includes(`[${tag}]`)) return false
                const now = performance.now()
                if (now < windowEnd) return true
                if (++seen !== 3) return false
                windowEnd = now + 300
                limitedPrompt = prompt
                return true
              },
              { kind: "status", status: 429, retryAfterMs: 300 }
            )
            const model = yield* createModel(http, fakeModel(fake, { maxConcurrency: 2 }))
            const { run } = yield* startRun(http, {
              template: templateFor(tag),
              topics: rows,
              modelIds: [model.id]
            })

            const finished = yield* waitForRun(http, run.id, isFinished, 20_000)
            expect(finished.status).toBe("completed")
            expect(finished.counts).toMatchObject({ total: 20, succeeded: 20 })
            // without the pause, every request sent in those 300 ms would have been refused too
            expect(fake.stats.rateLimited).toBeGreaterThanOrEqual(1)
            expect(fake.stats.rateLimited).toBeLessThanOrEqual(2)
            const cells = yield* allCells(http, run.id)
            const index = rows.findIndex((topic) => about(topic)(limitedPrompt))
            expect(index).toBeGreaterThanOrEqual(0)
            const limited = yield* cellDetail(http, run.id, cellAt(cells, index).id)
            expect(limited.status).toBe("succeeded")
            expect(limited.attempt).toBe(2)
            expect(eventTypes(limited)).toEqual(["queued", "started", "retrying", "started", "succeeded"])
            const retrying = byId(limited.events)[2]!
            expect(retrying.payload).toMatchObject({ code: "rate_limited", status: 429, delayMs: 300 })
            expect(msBetween(retrying.createdAt, byId(limited.events)[3]!.createdAt)).toBeGreaterThanOrEqual(
              299
            )
          })
      )

      it.scoped("a call that hangs past ASSAY_PROVIDER_TIMEOUT_MS times out, is retried and succeeds", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const rows = topics(3)
          fake.failWhen(about(rows[2]!), { kind: "hang" }, 1)
          const model = yield* createModel(http, fakeModel(fake))
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [model.id]
          })

          const finished = yield* waitForRun(http, run.id, isFinished, 15_000)
          expect(finished.counts).toMatchObject({ total: 3, succeeded: 3 })
          const cells = yield* allCells(http, run.id)
          const slow = yield* cellDetail(http, run.id, cellAt(cells, 2).id)
          expect(slow.status).toBe("succeeded")
          expect(slow.attempt).toBe(2)
          expect(eventTypes(slow)).toEqual(["queued", "started", "retrying", "started", "succeeded"])
          expect(byId(slow.events)[2]!.payload).toMatchObject({ code: "timeout", attempt: 1 })
          // the attempt was given up at the timeout, not before
          expect(
            msBetween(byId(slow.events)[1]!.createdAt, byId(slow.events)[2]!.createdAt)
          ).toBeGreaterThanOrEqual(450)
          expect(successesFor(fake, FAKE_MODEL, userText(tag, rows[2]!))).toBe(1)
          // the hung request was aborted, not left open
          yield* waitUntil(
            "the hung request to close",
            Effect.sync(() => fake.stats.inFlight),
            (n) => n === 0,
            1_000
          )
        })
      )

      it.scoped(
        "grades every cell with the grader model; an unreadable grader reply is recorded, never a crash",
        () =>
          Effect.gen(function* () {
            const fake = yield* scoped()
            const http = yield* user
            const tag = newTag()
            const rows = topics(4)
            const generator = yield* createModel(http, fakeModel(fake))
            const mockJudge = yield* createModel(http, { provider: "mock", model: "mock-judge" })
            const grader = { template: "Grade this: {{output}} for {{topic}} <grade>" }

            const graded = yield* startRun(http, {
              template: templateFor(tag),
              topics: rows,
              modelIds: [generator.id],
              grader: { ...grader, modelId: mockJudge.id }
            })
            const gradedRun = yield* waitForRun(http, graded.run.id, isFinished, 15_000)
            expect(gradedRun.status).toBe("completed")
            expect(gradedRun.counts).toMatchObject({ total: 4, succeeded: 4 })
            for (const cell of yield* allCells(http, graded.run.id)) {
              const detail = yield* cellDetail(http, graded.run.id, cell.id)
              expect(detail.status).toBe("succeeded")
              expect(detail.gradeError).toBeNull()
              const verdict = /^\[mock-judge\] mock verdict (\d+)\/100$/.exec(detail.gradeReason ?? "")
              expect(verdict, `grade reason ${detail.gradeReason}`).not.toBeNull()
              expect(detail.grade).toBe(Number(verdict![1]) < 70 ? "pass" : "fail")
              expect(detail.graderOutputRaw).toBe(
                `<grade>${detail.grade}</grade><reason>${detail.gradeReason}</reason>`
              )
              expect(eventTypes(detail)).toEqual(["queued", "started", "succeeded", "grader_succeeded"])
              expect(byId(detail.events)[3]!.payload).toMatchObject({
                grade: detail.grade,
                reason: detail.gradeReason
              })
            }

            // the fake as grader answers "echo:…", which is no grade
            const fakeJudge = yield* createModel(http, fakeModel(fake, { model: "fake-judge" }))
            const unreadable = yield* startRun(http, {
              template: templateFor(tag),
              topics: rows,
              modelIds: [generator.id],
              grader: { ...grader, modelId: fakeJudge.id }
            })
            const unreadableRun = yield* waitForRun(http, unreadable.run.id, isFinished, 15_000)
            expect(unreadableRun.status).toBe("completed")
            expect(unreadableRun.counts).toMatchObject({ total: 4, succeeded: 4, failed: 0 })
            for (const cell of yield* allCells(http, unreadable.run.id)) {
              const detail = yield* cellDetail(http, unreadable.run.id, cell.id)
              expect(detail.status).toBe("succeeded")
              expect(detail.grade).toBeNull()
              expect(detail.gradeError).toMatch(/^Unreadable grade/)
              expect(detail.graderOutputRaw).toMatch(/^echo:[0-9a-f]{8} Grade this: /)
              expect(eventTypes(detail)).toEqual(["queued", "started", "succeeded", "grader_failed"])
              // the grader saw the generator's output and the row's topic
              const topic = rows[cell.rowIndex]!
              const graderText = `Grade this: ${detail.outputRaw} for ${topic} <grade>`
              expect(successesFor(fake, "fake-judge", graderText)).toBe(1)
            }
          })
      )

      it.scoped("re-runs one cell, keeping its history; rerun-failed re-runs only the failed cells", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const rows = topics(6)
          // rows 0 and 1 are refused once each (not retryable), then answered
          fake.failWhen(about(rows[0]!), { kind: "status", status: 400 }, 1)
          fake.failWhen(about(rows[1]!), { kind: "status", status: 400 }, 1)
          const model = yield* createModel(http, fakeModel(fake))
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [model.id]
          })
          const first = yield* waitForRun(http, run.id, isFinished, 15_000)
          expect(first.status).toBe("completed")
          expect(first.counts).toMatchObject({ succeeded: 4, failed: 2 })
          const cells = yield* allCells(http, run.id)

          const target = cellAt(cells, 2)
          yield* call<RunJson>(http, "post", `/api/v1/runs/${run.id}/cells/${target.id}/rerun`, 200)
          const rerun = yield* waitUntil(
            "the re-run cell to succeed again",
            cellDetail(http, run.id, target.id),
            (d) => d.events.filter((e) => e.type === "succeeded").length === 2 && d.status === "succeeded",
            10_000
          )
          expect(eventTypes(rerun)).toEqual([
            "queued",
            "started",
            "succeeded",
            "queued",
            "started",
            "succeeded"
          ])
          expect(byId(rerun.events)[3]!.payload).toEqual({ rerun: true })
          expect(rerun.attempt).toBe(1)
          expect(successesFor(fake, FAKE_MODEL, userText(tag, rows[2]!))).toBe(2)
          const afterOne = yield* waitForRun(http, run.id, isFinished, 10_000)
          expect(afterOne.status).toBe("completed")
          expect(afterOne.counts).toMatchObject({ succeeded: 4, failed: 2 })

          yield* call<RunJson>(http, "post", `/api/v1/runs/${run.id}/rerun-failed`, 200)
          const second = yield* waitForRun(
            http,
            run.id,
            (r) => isFinished(r) && r.counts.succeeded === 6,
            10_000
          )
          expect(second.status).toBe("completed")
          expect(second.counts).toMatchObject({ total: 6, succeeded: 6, failed: 0 })
          for (const index of [0, 1]) {
            const detail = yield* cellDetail(http, run.id, cellAt(cells, index).id)
            expect(eventTypes(detail)).toEqual([
              "queued",
              "started",
              "failed",
              "queued",
              "started",
              "succeeded"
            ])
            expect(detail.errorCode).toBeNull()
            expect(successesFor(fake, FAKE_MODEL, userText(tag, rows[index]!))).toBe(1)
          }
          for (const index of [3, 4, 5]) {
            const detail = yield* cellDetail(http, run.id, cellAt(cells, index).id)
            expect(eventTypes(detail)).toEqual(["queued", "started", "succeeded"])
            expect(successesFor(fake, FAKE_MODEL, userText(tag, rows[index]!))).toBe(1)
          }
        })
      )

      it.scoped("a small run started behind a big one on the same model completes long before it", () =>
        Effect.gen(function* () {
          const http = yield* user
          const tag = newTag()
          const mock = yield* createModel(http, {
            provider: "mock",
            model: "mock?latency=100",
            maxConcurrency: 10
          })
          const big = yield* startRun(http, {
            template: templateFor(tag),
            topics: topics(300, "big"),
            modelIds: [mock.id]
          })
          yield* waitForRun(http, big.run.id, (r) => r.counts.succeeded >= 20, 10_000)
          const small = yield* startRun(http, {
            template: templateFor(tag),
            topics: topics(5, "small"),
            modelIds: [mock.id]
          })
          const smallDone = yield* waitForRun(http, small.run.id, isFinished, 20_000)
          const bigWhenSmallDone = yield* getRun(http, big.run.id)
          const bigDone = yield* waitForRun(http, big.run.id, isFinished, 30_000)
          expect(smallDone.status).toBe("completed")
          expect(bigDone.status).toBe("completed")
          expect(bigDone.counts.succeeded).toBe(300)
          const smallTook = msBetween(smallDone.createdAt, smallDone.completedAt!)
          const bigTook = msBetween(bigDone.createdAt, bigDone.completedAt!)
          expect(smallTook, `small run ${smallTook} ms, big run ${bigTook} ms`).toBeLessThan(bigTook * 0.25)
          expect(bigWhenSmallDone.status).toBe("running")
        })
      )

      it.scoped("a throttled provider does not hold back another model of the same run", () =>
        Effect.gen(function* () {
          const fake = yield* scoped({ requestsPerMinute: 30 })
          const http = yield* user
          const tag = newTag()
          const throttled = yield* createModel(http, fakeModel(fake))
          const mock = yield* createModel(http, { provider: "mock", model: "mock-quick" })
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: topics(40),
            // the throttled model first: its gate is offered the workers first on every round
            modelIds: [throttled.id, mock.id]
          })
          const mockModelId = run.models[1]!.id
          const throttledModelId = run.models[0]!.id
          const mockDone = yield* waitForRun(
            http,
            run.id,
            (r) => r.models.find((m) => m.id === mockModelId)!.counts.succeeded === 40,
            5_000
          )
          const mockCells = (yield* allCells(http, run.id)).filter((c) => c.runModelId === mockModelId)
          const lastMockFinish = Math.max(...mockCells.map((c) => Date.parse(c.finishedAt!)))
          expect(lastMockFinish - Date.parse(run.createdAt)).toBeLessThan(2_000)
          const throttledCounts = mockDone.models.find((m) => m.id === throttledModelId)!.counts
          expect(throttledCounts.queued + throttledCounts.running).toBeGreaterThanOrEqual(5)
          expect(mockDone.status).toBe("running")
          const canceled = yield* cancelRun(http, run.id)
          expect(canceled.status).toBe("canceled")
        })
      )

      it.scoped("claims no more cells than the model's gate admits", () =>
        Effect.gen(function* () {
          const fake = yield* scoped({ latencyMs: 300 })
          const http = yield* user
          const model = yield* createModel(http, fakeModel(fake, { maxConcurrency: 3 }))
          const { run } = yield* startRun(http, {
            template: templateFor(newTag()),
            topics: topics(12),
            modelIds: [model.id]
          })
          // a claimed cell holds a lease and a worker; past the gate's 3 it would only wait at the gate
          let mostRunning = 0
          const finished = yield* waitForRun(
            http,
            run.id,
            (r) => {
              mostRunning = Math.max(mostRunning, r.counts.running)
              return isFinished(r)
            },
            15_000
          )
          expect(finished.counts.succeeded).toBe(12)
          expect(fake.stats.maxInFlight).toBeLessThanOrEqual(3)
          expect(mostRunning).toBeGreaterThanOrEqual(2)
          // 3 at the gate, plus at most 3 finished cells whose result batch has not committed yet; claiming the
          // whole queue at once (12) fails this
          expect(mostRunning).toBeLessThanOrEqual(6)
        })
      )
    }
  )

  layer(testApp(db.layer, SECOND_ENV), { excludeTestServices: true, timeout: 60_000 })(
    `run engine with 16 workers on ${db.kind}`,
    (it) => {
      it.scoped("cancel stops queued and running cells and aborts the calls in flight", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const tag = newTag()
          const rows = topics(20)
          // rows 0–4 answer at once; the others stay open until the client goes away
          const answered = new Set(rows.slice(0, 5))
          fake.failWhen(
            (prompt) => prompt.includes(`[${tag}]`) && !rows.some((t) => answered.has(t) && about(t)(prompt)),
            {
              kind: "hang"
            }
          )
          const model = yield* createModel(http, fakeModel(fake, { maxConcurrency: 10 }))
          const { run } = yield* startRun(http, {
            template: templateFor(tag),
            topics: rows,
            modelIds: [model.id]
          })
          yield* waitForRun(http, run.id, (r) => r.counts.succeeded === 5, 10_000)
          yield* waitUntil(
            "10 calls in flight",
            Effect.sync(() => fake.stats.inFlight),
            (n) => n === 10,
            10_000
          )
          const beforeCancel = yield* getRun(http, run.id)
          expect(beforeCancel.counts.succeeded).toBe(5)
          expect(beforeCancel.counts.running).toBeGreaterThanOrEqual(10)

          const canceled = yield* cancelRun(http, run.id)
          expect(canceled.status).toBe("canceled")
          expect(canceled.counts).toMatchObject({
            total: 20,
            succeeded: 5,
            canceled: 15,
            queued: 0,
            running: 0
          })
          const abortedAt = Date.now()
          yield* waitUntil(
            "the calls in flight to be aborted",
            Effect.sync(() => fake.stats.inFlight),
            (n) => n === 0,
            1_000
          )
          expect(Date.now() - abortedAt).toBeLessThan(1_000)

          // a heartbeat and more later: nothing was resumed, retried or overwritten
          yield* Effect.sleep("1500 millis")
          const later = yield* getRun(http, run.id)
          expect(later.status).toBe("canceled")
          expect(later.counts).toMatchObject({ succeeded: 5, canceled: 15, queued: 0, running: 0, failed: 0 })
          expect(fake.stats.requests).toBe(15)
          for (const cell of yield* allCells(http, run.id)) {
            const types = eventTypes(yield* cellDetail(http, run.id, cell.id))
            if (cell.rowIndex < 5) expect(types).toEqual(["queued", "started", "succeeded"])
            else
              expect(types).toEqual(
                types.includes("started") ? ["queued", "started", "canceled"] : ["queued", "canceled"]
              )
          }
        })
      )

      it.scoped("with fewer workers than a gate admits, every model of a run still gets its cells run", () =>
        Effect.gen(function* () {
          const fake = yield* scoped()
          const http = yield* user
          const compat = yield* createModel(http, fakeModel(fake))
          const mock = yield* createModel(http, { provider: "mock", model: "mock-second" })
          const { run } = yield* startRun(http, {
            template: templateFor(newTag()),
            topics: topics(6),
            modelIds: [compat.id, mock.id]
          })
          const finished = yield* waitForRun(http, run.id, isFinished, 10_000)
          expect(finished.status).toBe("completed")
          expect(finished.models.map((m) => m.counts.succeeded)).toEqual([6, 6])
        })
      )
    }
  )

  describe(`two engines on one database (${db.kind})`, () => {
    it.scopedLive.skipIf(db.kind !== "postgres")(
      "share a run, survive one stopping and a dead worker's lease, and finish every cell exactly once",
      () =>
        Effect.gen(function* () {
          const fake = yield* scoped({ latencyMs: 100 })
          const database = yield* Layer.build(postgresLayer(adminUrl!))
          const sql = Context.get(database, SqlClient.SqlClient)
          const [{ name }] = (yield* sql<{ name: string }>`select current_database() as name`) as [
            { name: string }
          ]
          const url = new URL(adminUrl!)
          url.pathname = `/${name}`
          const appOn = () => testApp(Database.pgLayer(Redacted.make(url.toString())), SHARED_ENV)
          const a = yield* Layer.build(appOn())
          const scopeB = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(scopeB, Exit.void))
          yield* Layer.buildWithScope(appOn(), scopeB)

          const http = yield* freshUser(Context.get(a, BaseUrl))
          // 5 calls at a time per process; both engines holding leases (sampled below) shows both working
          const model = yield* createModel(http, fakeModel(fake, { maxConcurrency: 5 }))
          const { run } = yield* startRun(http, {
            template: templateFor(newTag()),
            topics: topics(200),
            modelIds: [model.id]
          })

          // the workers holding leases on the run's cells, sampled until the fiber is interrupted
          const sampleOwners = (into: Set<string>) =>
            Effect.fork(
              Effect.forever(
                sql<{ lease_owner: string }>`
                  select distinct lease_owner from assay.run_cell
                  where run_id = ${run.id} and lease_owner is not null and lease_owner <> 'dead'`.pipe(
                  Effect.tap((rows) => rows.forEach((r) => into.add(r.lease_owner))),
                  Effect.zipRight(Effect.sleep("20 millis"))
                )
              )
            )
          const ownersBefore = new Set<string>()
          const samplerBefore = yield* sampleOwners(ownersBefore)
          yield* waitUntil(
            "both engines to hold leases",
            Effect.sync(() => ownersBefore.size),
            (n) => n >= 2,
            10_000
          )
          yield* Fiber.interrupt(samplerBefore)
          const midRun = yield* getRun(http, run.id)
          expect(midRun.counts.succeeded).toBeLessThan(150)

          // B stops mid-run: its shutdown hands the cells it held back to the queue at once
          yield* Scope.close(scopeB, Exit.void)
          const leasedAfterStop = yield* sql<{ lease_owner: string }>`
            select distinct lease_owner from assay.run_cell where run_id = ${run.id} and status = 'running'`
          // soft: when B leaves a lease behind, the rest still checks that A's sweeper recovers it exactly once
          expect
            .soft(leasedAfterStop.length, "engines holding leases right after B stopped")
            .toBeLessThanOrEqual(1)
          const ownersAfter = new Set<string>()
          const samplerAfter = yield* sampleOwners(ownersAfter)
          // a worker that died without a word: a cell leased to it, lease already expired
          const [dead] = yield* sql<{ id: string }>`
            update assay.run_cell set status = 'running', lease_owner = 'dead', attempt = attempt + 1,
              lease_expires_at = now() - interval '1 second'
            where id = (select id from assay.run_cell where run_id = ${run.id} and status = 'queued'
                        order by row_index desc limit 1 for update skip locked)
            returning id`
          expect(dead).toBeDefined()

          const finished = yield* waitForRun(http, run.id, isFinished, 40_000)
          yield* Fiber.interrupt(samplerAfter)
          expect(ownersBefore.size).toBe(2)
          // only A worked after B stopped
          expect.soft(ownersAfter.size, "engines holding leases after B stopped").toBe(1)
          expect([...ownersAfter].every((owner) => ownersBefore.has(owner))).toBe(true)
          expect(finished.status).toBe("completed")
          expect(finished.counts).toMatchObject({ total: 200, succeeded: 200, failed: 0, canceled: 0 })
          const perCell = yield* sql<{ succeeded: number }>`
            select count(*) filter (where e.event_type = 'succeeded')::int as succeeded
            from assay.run_cell c left join assay.run_cell_event e on e.run_cell_id = c.id
            where c.run_id = ${run.id} group by c.id`
          expect(perCell).toHaveLength(200)
          expect(perCell.filter((c) => c.succeeded !== 1)).toEqual([])
          const swept = yield* cellDetail(http, run.id, dead!.id)
          expect(swept.status).toBe("succeeded")
          const sweptEvents = eventTypes(swept)
          const retryAt = sweptEvents.indexOf("retrying")
          expect(retryAt).toBeGreaterThan(0)
          expect(byId(swept.events)[retryAt]!.payload).toMatchObject({ reason: "lease_expired" })
          expect(sweptEvents.slice(retryAt)).toEqual(["retrying", "started", "succeeded"])
        }),
      90_000
    )
  })
}
