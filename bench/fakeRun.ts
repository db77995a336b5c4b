// Shared by the provider benchmarks (2 and 3): one run of one `openai-compatible` model against the fake provider,
// timed from run creation to the last cell succeeded, with the fake's counters for that run.
import { SqlClient } from "@effect/sql"
import { Effect, Stream } from "effect"
import { LOCAL_USER_ID, type DatasetId, type ModelConfigId, type PromptId } from "../src/domain/Ids.ts"
import { ProviderGates } from "../src/execution/ProviderGate.ts"
import { Datasets } from "../src/services/Datasets.ts"
import { Models } from "../src/services/Models.ts"
import { Prompts } from "../src/services/Prompts.ts"
import { Runs } from "../src/services/Runs.ts"
import type { FakeProvider } from "../test/support/FakeProvider.ts"
import { csv, type services } from "./support.ts"

type Runtime = ReturnType<typeof services>

/** The ideal time of N requests at R/min with latency L and an initial burst B, and how it was computed. */
export const ideal = (input: {
  readonly requests: number
  readonly requestsPerMinute: number
  readonly latencyMs: number
  readonly burst: number
}) => {
  const perSecond = input.requestsPerMinute / 60
  const overBurst = Math.max(0, input.requests - input.burst)
  const ms = input.latencyMs + (overBurst / perSecond) * 1000
  return {
    formula: "ideal = L + max(0, N − B) / (R / 60) seconds",
    N: input.requests,
    R: input.requestsPerMinute,
    L: input.latencyMs / 1000,
    B: Math.round(input.burst * 100) / 100,
    seconds: Math.round(ms) / 1000,
    ms
  }
}

/** A prompt with a `{{text}}` placeholder and a one-column CSV of `rows` distinct texts. */
export const prepare = (runtime: Runtime, rows: number, label: string) =>
  runtime.runPromise(
    Effect.gen(function* () {
      const prompts = yield* Prompts
      const datasets = yield* Datasets
      const prompt = yield* prompts.create(LOCAL_USER_ID, {
        name: `Summarise (${label})`,
        type: "generator",
        systemText: "You summarise.",
        userTemplate: "Summarise {{text}} in one line.",
        defaultParams: {}
      })
      const content = new TextEncoder().encode(
        csv(rows, (i) => ({ text: `${label} document ${i} about topic ${i % 97}` }))
      )
      const dataset = yield* datasets.upload(LOCAL_USER_ID, {
        filename: `${label}.csv`,
        contentType: "text/csv",
        name: undefined,
        content: Stream.make(content)
      })
      return { promptId: prompt.id, datasetId: dataset.id }
    })
  )

/** An `openai-compatible` model on the fake; everything else default unless `maxConcurrency` is given. */
export const fakeModel = (
  runtime: Runtime,
  fake: FakeProvider,
  model: string,
  maxConcurrency: number | null = null
) =>
  runtime.runPromise(
    Effect.gen(function* () {
      const models = yield* Models
      const created = yield* models.create(LOCAL_USER_ID, {
        provider: "openai-compatible",
        model,
        baseUrl: `${fake.url}/v1`,
        params: {},
        inputPricePerMTok: 0,
        outputPricePerMTok: 0,
        requestsPerMinute: null,
        tokensPerMinute: null,
        maxConcurrency,
        isDefault: false
      })
      return created.id
    })
  )

/**
 * Drains the fake's request bucket: `capacity` requests at once plus a few more, so that the last ones are
 * answered 429 (the bucket holds less than one request then). Returns when every drain request has its answer,
 * with the time of the last 429: from there the bucket refills at R/60 per second.
 */
export const drain = async (fake: FakeProvider, capacity: number) => {
  let last429 = 0
  const one = async (i: number) => {
    const response = await fetch(`${fake.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer drain", "content-type": "application/json" },
      body: JSON.stringify({ model: "drain", messages: [{ role: "user", content: `drain ${i}` }] })
    })
    await response.arrayBuffer()
    if (response.status === 429) last429 = Math.max(last429, performance.now())
    return response.status
  }
  const statuses = await Promise.all(Array.from({ length: capacity + 20 }, (_, i) => one(i)))
  if (last429 === 0) throw new Error("the drain got no 429: the bucket was not emptied")
  return { sent: statuses.length, rateLimited: statuses.filter((s) => s === 429).length, last429 }
}

export interface Measured {
  readonly cells: number
  readonly succeeded: number
  readonly failed: number
  /** From just before Runs.create to the poll that saw every cell succeeded. */
  readonly totalMs: number
  readonly startedAt: number
  /** Completions of this run answered by the end of each second since the start, cumulative. */
  readonly timeline: ReadonlyArray<number>
  /** When the 429s of this run were seen (ms since the start, to the 20 ms poll), one entry per 429. */
  readonly rateLimitedAtMs: ReadonlyArray<number>
  /** Fake counters for this run only (what was there before the run is subtracted). */
  readonly calls: number
  readonly rateLimited: number
  readonly successes: number
  readonly maxInFlight: number
  /** Prompts of this model answered more than once, and the surplus answers. */
  readonly duplicatePrompts: number
  readonly duplicateAnswers: number
  readonly byStatus: Record<string, number>
  readonly gate: unknown
}

/** Starts the run and polls until every cell is finished (or `timeoutMs` passes). */
export const measureRun = (
  runtime: Runtime,
  fake: FakeProvider,
  input: {
    readonly promptId: PromptId
    readonly datasetId: DatasetId
    readonly modelId: ModelConfigId
    readonly model: string
    readonly cells: number
    readonly timeoutMs: number
  }
): Promise<Measured> => {
  const before = {
    requests: fake.stats.requests,
    rateLimited: fake.stats.rateLimited,
    successes: fake.stats.successes,
    byStatus: new Map(fake.stats.byStatus)
  }
  fake.stats.maxInFlight = fake.stats.inFlight
  return runtime.runPromise(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const runs = yield* Runs
      const gates = yield* ProviderGates
      const timeline: Array<number> = []
      const rateLimitedAtMs: Array<number> = []
      const startedAt = performance.now()
      const run = yield* runs.create(LOCAL_USER_ID, {
        promptId: input.promptId,
        datasetId: input.datasetId,
        modelIds: [input.modelId],
        graderPromptId: null,
        graderModelId: null
      })
      let succeeded = 0
      let failed = 0
      for (;;) {
        const [row] = yield* sql<{ succeeded: number; failed: number }>`
          select count(*) filter (where status = 'succeeded')::int as succeeded,
                 count(*) filter (where status in ('failed', 'canceled'))::int as failed
          from assay.run_cell where run_id = ${run.id}`
        succeeded = row!.succeeded
        failed = row!.failed
        const elapsed = performance.now() - startedAt
        while (timeline.length < Math.floor(elapsed / 1000))
          timeline.push(fake.stats.successes - before.successes)
        while (before.rateLimited + rateLimitedAtMs.length < fake.stats.rateLimited)
          rateLimitedAtMs.push(Math.round(elapsed))
        if (succeeded + failed >= input.cells || elapsed > input.timeoutMs) break
        yield* Effect.sleep("20 millis")
      }
      const totalMs = performance.now() - startedAt
      const prefix = `${input.model}\n`
      let duplicatePrompts = 0
      let duplicateAnswers = 0
      let successes = 0
      for (const [key, count] of fake.stats.byPrompt) {
        if (!key.startsWith(prefix)) continue
        successes += count
        if (count > 1) {
          duplicatePrompts++
          duplicateAnswers += count - 1
        }
      }
      const byStatus: Record<string, number> = {}
      for (const [status, count] of fake.stats.byStatus) {
        const delta = count - (before.byStatus.get(status) ?? 0)
        if (delta > 0) byStatus[String(status)] = delta
      }
      const gate = (yield* gates.all).find(
        (g) => g.key.includes(`|${input.model}`) && g.key.includes(fake.url)
      )
      return {
        cells: input.cells,
        succeeded,
        failed,
        totalMs,
        startedAt,
        timeline,
        rateLimitedAtMs,
        calls: fake.stats.requests - before.requests,
        rateLimited: fake.stats.rateLimited - before.rateLimited,
        successes,
        maxInFlight: fake.stats.maxInFlight,
        duplicatePrompts,
        duplicateAnswers,
        byStatus,
        gate
      }
    })
  )
}
