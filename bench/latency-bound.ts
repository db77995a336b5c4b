// Benchmark 3, latency-bound provider: the fake at 3,000 requests/min with 2 s latency, 120 rows, on real Postgres.
// "default": nobody tunes concurrency (the model config has no limits). Target: within 1.3 × ideal.
// "fixed-4": the same with `maxConcurrency: 4` on the model config, the common default of other tools, measured in
// the same process for the ratio of the two.
// The fake's bucket starts full (3,000 = one minute), so all 120 requests fit in the burst:
// ideal = L + max(0, N − B) / (R / 60) = L. `idealNoBurst` (L + N / (R / 60)) is given too, for comparison only.
import { freshDatabase, services, writeResult } from "./support.ts"
import { fakeModel, ideal, measureRun, prepare } from "./fakeRun.ts"
import { startFakeProvider } from "../test/support/FakeProvider.ts"

const REQUESTS_PER_MINUTE = 3_000
const LATENCY_MS = 2_000
const ROWS = Number(process.env.BENCH_ROWS ?? 120)
const FIXED_CONCURRENCY = 4
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? "default,fixed-4").split(",")
const TARGET_RATIO = 1.3

const db = await freshDatabase("latency")
const runtime = services(db.url)
try {
  const best = ideal({
    requests: ROWS,
    requestsPerMinute: REQUESTS_PER_MINUTE,
    latencyMs: LATENCY_MS,
    burst: REQUESTS_PER_MINUTE
  })
  const noBurstMs = LATENCY_MS + (ROWS / (REQUESTS_PER_MINUTE / 60)) * 1000
  const { promptId, datasetId } = await prepare(runtime, ROWS, "latency")
  const results: Record<string, Record<string, unknown>> = {}
  const seconds: Record<string, number> = {}
  for (const scenario of SCENARIOS) {
    if (scenario !== "default" && scenario !== "fixed-4") throw new Error(`unknown scenario ${scenario}`)
    // a fresh fake per scenario: its own full bucket and counters
    const fake = await startFakeProvider({ requestsPerMinute: REQUESTS_PER_MINUTE, latencyMs: LATENCY_MS })
    try {
      const model = `fake-${scenario}`
      const modelId = await fakeModel(runtime, fake, model, scenario === "fixed-4" ? FIXED_CONCURRENCY : null)
      const measured = await measureRun(runtime, fake, {
        promptId,
        datasetId,
        modelId,
        model,
        cells: ROWS,
        timeoutMs: 5 * 60_000
      })
      const ratio = measured.totalMs / best.ms
      const complete =
        measured.succeeded === ROWS && measured.successes === ROWS && measured.duplicatePrompts === 0
      seconds[scenario] = measured.totalMs / 1000
      results[scenario] = {
        maxConcurrency: scenario === "fixed-4" ? FIXED_CONCURRENCY : null,
        actualSeconds: Math.round(measured.totalMs) / 1000,
        ratio: Math.round(ratio * 1000) / 1000,
        ratioNoBurst: Math.round((measured.totalMs / noBurstMs) * 1000) / 1000,
        succeeded: measured.succeeded,
        failed: measured.failed,
        calls: measured.calls,
        rateLimited: measured.rateLimited,
        duplicatePrompts: measured.duplicatePrompts,
        fakeMaxInFlight: measured.maxInFlight,
        byStatus: measured.byStatus,
        gateAtEnd: measured.gate,
        answeredBySecond: measured.timeline,
        ...(scenario === "default" ? { pass: complete && ratio <= TARGET_RATIO } : { complete })
      }
      console.log(
        `${scenario}: ${ROWS} rows in ${(measured.totalMs / 1000).toFixed(2)} s, ideal ${best.seconds} s, ` +
          `ratio ${ratio.toFixed(3)}, max in flight ${measured.maxInFlight}, 429s ${measured.rateLimited}`
      )
    } finally {
      await fake.close()
    }
  }
  const { ms: _ms, ...idealJson } = best
  const fixedOverDefault =
    seconds["default"] && seconds["fixed-4"]
      ? Math.round((seconds["fixed-4"] / seconds["default"]) * 100) / 100
      : null
  writeResult("latency-bound", {
    provider: { requestsPerMinute: REQUESTS_PER_MINUTE, latencyMs: LATENCY_MS, bucket: "starts full" },
    rows: ROWS,
    ideal: idealJson,
    idealNoBurst: {
      formula: "L + N / (R / 60) seconds (ignores the full bucket; for comparison only)",
      seconds: noBurstMs / 1000
    },
    targets: { defaultRatio: TARGET_RATIO },
    scenarios: results,
    fixed4OverDefault: fixedOverDefault,
    pass: results["default"]?.["pass"] === true
  })
} finally {
  await runtime.dispose()
  await db.drop()
}
