// Benchmark 2, rate-limited provider: the fake at 600 requests/min with 200 ms latency, default model settings
// (no limits configured: the gate learns them from the headers), on real Postgres.
// Targets: total time within 1.05 × the limit-bound ideal, 429s at most 1 % of calls, no prompt answered twice.
//
// The fake's bucket starts full (600 = one minute), so 300 rows would all fit in the burst and the run would be
// latency-bound. Two ways to make it limit-bound, both measured:
// - "drained" (the 300 rows): the bucket is emptied with direct requests first, so B ≈ what refills
//   between the drain and the run's start;
// - "overflow": 900 rows on a full bucket, B = 600, so the last 300 are paced by the refill.
// Either way, ideal = L + max(0, N − B) / (R / 60).
import { freshDatabase, services, writeResult } from "./support.ts"
import { drain, fakeModel, ideal, measureRun, prepare } from "./fakeRun.ts"
import { startFakeProvider } from "../test/support/FakeProvider.ts"

const REQUESTS_PER_MINUTE = 600
const LATENCY_MS = 200
const ROWS = Number(process.env.BENCH_ROWS ?? 300)
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? "drained,overflow").split(",")
const TARGETS = { ratio: 1.05, rateLimitedShare: 0.01, duplicatePrompts: 0 }

const db = await freshDatabase("ratelimited")
const runtime = services(db.url)
try {
  const results: Record<string, unknown> = {}
  for (const scenario of SCENARIOS) {
    if (scenario !== "drained" && scenario !== "overflow") throw new Error(`unknown scenario ${scenario}`)
    const rows = scenario === "drained" ? ROWS : ROWS + REQUESTS_PER_MINUTE
    const fake = await startFakeProvider({ requestsPerMinute: REQUESTS_PER_MINUTE, latencyMs: LATENCY_MS })
    try {
      const model = `fake-${scenario}`
      const { promptId, datasetId } = await prepare(runtime, rows, scenario)
      const modelId = await fakeModel(runtime, fake, model)
      const drained = scenario === "drained" ? await drain(fake, REQUESTS_PER_MINUTE) : undefined
      const measured = await measureRun(runtime, fake, {
        promptId,
        datasetId,
        modelId,
        model,
        cells: rows,
        timeoutMs: 5 * 60_000
      })
      // drained: under one request was left at the last 429, plus the refill until the run started
      const burst =
        drained === undefined
          ? REQUESTS_PER_MINUTE
          : Math.min(
              REQUESTS_PER_MINUTE,
              1 + ((measured.startedAt - drained.last429) * REQUESTS_PER_MINUTE) / 60_000
            )
      const best = ideal({
        requests: rows,
        requestsPerMinute: REQUESTS_PER_MINUTE,
        latencyMs: LATENCY_MS,
        burst
      })
      const ratio = measured.totalMs / best.ms
      const rateLimitedShare = measured.calls === 0 ? 0 : measured.rateLimited / measured.calls
      const pass =
        measured.succeeded === rows &&
        measured.successes === rows &&
        ratio <= TARGETS.ratio &&
        rateLimitedShare <= TARGETS.rateLimitedShare &&
        measured.duplicatePrompts === 0
      const { ms: _ms, ...idealJson } = best
      results[scenario] = {
        rows,
        burst: drained === undefined ? "full bucket (B = R)" : "drained before the run",
        drain: drained && { sent: drained.sent, answered429: drained.rateLimited },
        ideal: idealJson,
        actualSeconds: Math.round(measured.totalMs) / 1000,
        ratio: Math.round(ratio * 1000) / 1000,
        succeeded: measured.succeeded,
        failed: measured.failed,
        calls: measured.calls,
        rateLimited: measured.rateLimited,
        rateLimitedPercent: Math.round(rateLimitedShare * 10_000) / 100,
        // cold start (the gate has learned nothing yet) vs steady pacing
        rateLimitedInFirstSecond: measured.rateLimitedAtMs.filter((ms) => ms < 1000).length,
        duplicatePrompts: measured.duplicatePrompts,
        duplicateAnswers: measured.duplicateAnswers,
        fakeMaxInFlight: measured.maxInFlight,
        byStatus: measured.byStatus,
        gateAtEnd: measured.gate,
        answeredBySecond: measured.timeline,
        rateLimitedAtMs: measured.rateLimitedAtMs,
        pass
      }
      console.log(
        `${scenario}: ${rows} rows in ${(measured.totalMs / 1000).toFixed(2)} s, ideal ${best.seconds} s, ` +
          `ratio ${ratio.toFixed(3)}, 429s ${measured.rateLimited}/${measured.calls}, ` +
          `duplicates ${measured.duplicatePrompts}, ${pass ? "PASS" : "FAIL"}`
      )
    } finally {
      await fake.close()
    }
  }
  writeResult("rate-limited", {
    provider: { requestsPerMinute: REQUESTS_PER_MINUTE, latencyMs: LATENCY_MS, bucket: "starts full" },
    settings: "defaults (no requestsPerMinute / tokensPerMinute / maxConcurrency on the model)",
    targets: {
      ratio: TARGETS.ratio,
      rateLimitedPercent: TARGETS.rateLimitedShare * 100,
      duplicatePrompts: TARGETS.duplicatePrompts
    },
    scenarios: results,
    pass: Object.values(results).every((r) => (r as { pass: boolean }).pass)
  })
} finally {
  await runtime.dispose()
  await db.drop()
}
