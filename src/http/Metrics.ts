import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Option, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { AppConfig } from "../layers/Config.ts"
import { EngineStats, LATENCY_BUCKETS } from "../execution/EngineStats.ts"
import { ProviderGates } from "../execution/ProviderGate.ts"
import { orDieSql } from "../services/SqlFailure.ts"

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

/** Gate keys hold the owner id; metrics show provider and model only. */
const gateLabels = (key: string) => {
  const [provider = "", baseUrl = "", , model = ""] = key.split("|")
  return `provider="${escapeLabel(provider)}",base_url="${escapeLabel(baseUrl)}",model="${escapeLabel(model)}"`
}

const refuse = (status: 401 | 403, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Who may read the metrics. They count every owner's work, so with `ASSAY_METRICS_TOKEN` set they take that
 * token as a bearer token; without it they are open in local mode (one user) and closed in supabase mode.
 */
const metricsAccess = Effect.gen(function* () {
  const config = yield* AppConfig
  return Effect.gen(function* () {
    if (Option.isNone(config.metricsToken)) {
      return config.authMode === "local"
        ? undefined
        : refuse(
            403,
            "metrics_closed",
            "Metrics are closed in supabase mode: set ASSAY_METRICS_TOKEN and send it as a bearer token."
          )
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    const header = request.headers["authorization"] ?? ""
    const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : ""
    return sameSecret(token, Redacted.value(config.metricsToken.value))
      ? undefined
      : refuse(401, "unauthorized", "Send ASSAY_METRICS_TOKEN as a bearer token to read the metrics.")
  })
})

/** `GET /metrics` in the Prometheus text format: queue depth, provider calls, gates. */
export const MetricsRoute = Layer.unwrapEffect(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const stats = yield* EngineStats
    const gates = yield* ProviderGates
    const access = yield* metricsAccess
    return HttpLayerRouter.add(
      "GET",
      "/metrics",
      Effect.gen(function* () {
        const refused = yield* access
        if (refused !== undefined) return refused
        const depth = yield* sql<{ status: string; n: number }>`
          select status, count(*)::int as n from assay.run_cell
          where status in ('queued', 'running') group by status`.pipe(orDieSql)
        const lines: Array<string> = []
        const metric = (name: string, type: string, help: string) =>
          lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)

        metric("assay_queue_cells", "gauge", "Cells waiting or running, across all runs.")
        for (const status of ["queued", "running"]) {
          lines.push(
            `assay_queue_cells{status="${status}"} ${depth.find((d) => d.status === status)?.n ?? 0}`
          )
        }

        const providers = [...stats.snapshot()]
        metric("assay_provider_calls_total", "counter", "Provider calls made by this process, by outcome.")
        for (const [provider, c] of providers) {
          lines.push(`assay_provider_calls_total{provider="${provider}",outcome="succeeded"} ${c.succeeded}`)
          lines.push(`assay_provider_calls_total{provider="${provider}",outcome="failed"} ${c.failed}`)
        }
        metric("assay_provider_rate_limited_total", "counter", "429 answers received.")
        for (const [provider, c] of providers)
          lines.push(`assay_provider_rate_limited_total{provider="${provider}"} ${c.rateLimited}`)
        metric("assay_cell_retries_total", "counter", "Cell attempts re-queued after a retryable error.")
        for (const [provider, c] of providers)
          lines.push(`assay_cell_retries_total{provider="${provider}"} ${c.retries}`)
        metric("assay_provider_latency_seconds", "histogram", "Latency of successful provider calls.")
        for (const [provider, c] of providers) {
          LATENCY_BUCKETS.forEach((bound, i) =>
            lines.push(
              `assay_provider_latency_seconds_bucket{provider="${provider}",le="${bound}"} ${c.latencyBuckets[i]}`
            )
          )
          lines.push(`assay_provider_latency_seconds_bucket{provider="${provider}",le="+Inf"} ${c.succeeded}`)
          lines.push(`assay_provider_latency_seconds_sum{provider="${provider}"} ${c.latencySum}`)
          lines.push(`assay_provider_latency_seconds_count{provider="${provider}"} ${c.succeeded}`)
        }

        const snapshots = yield* gates.all
        metric("assay_gate_concurrency_limit", "gauge", "Adaptive concurrency limit of each provider gate.")
        for (const g of snapshots)
          lines.push(`assay_gate_concurrency_limit{${gateLabels(g.key)}} ${g.concurrencyLimit}`)
        metric("assay_gate_in_flight", "gauge", "Calls in flight through each gate.")
        for (const g of snapshots) lines.push(`assay_gate_in_flight{${gateLabels(g.key)}} ${g.inFlight}`)
        metric(
          "assay_gate_tokens_available",
          "gauge",
          "Tokens left in each gate's bucket (absent while unknown)."
        )
        for (const g of snapshots) {
          if (g.tokensAvailable !== null)
            lines.push(`assay_gate_tokens_available{${gateLabels(g.key)}} ${g.tokensAvailable}`)
        }
        metric(
          "assay_gate_requests_available",
          "gauge",
          "Requests left in each gate's bucket (absent while unknown)."
        )
        for (const g of snapshots) {
          if (g.requestsAvailable !== null)
            lines.push(`assay_gate_requests_available{${gateLabels(g.key)}} ${g.requestsAvailable}`)
        }
        metric("assay_gate_paused", "gauge", "1 while a gate waits out a provider's retry-after.")
        const now = Date.now()
        for (const g of snapshots) {
          lines.push(
            `assay_gate_paused{${gateLabels(g.key)}} ${g.pausedUntilMs !== null && g.pausedUntilMs > now ? 1 : 0}`
          )
        }
        return HttpServerResponse.text(lines.join("\n") + "\n", {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
      })
    )
  })
)
