// Per-model summary: live progress from the cell store, the rest from the server's metrics (refreshed as cells
// finish), led by the run's active metric.
import { useSyncExternalStore } from "react"
import type { Metrics, RunMetricsReport } from "../../../src/domain/Grade.ts"
import type { ActiveMetric, CellCounts, Run } from "../../../src/domain/Run.ts"
import type { CellStore } from "./cellStore.ts"
import { formatCost, formatMs, formatRate, formatTokens } from "./format.ts"
import { modelColumns } from "./gridModel.ts"

export const METRIC_LABELS: Record<ActiveMetric, string> = {
  combined_pass_rate: "Pass rate (combined)",
  auto_pass_rate: "Pass rate (automatic)",
  manual_pass_rate: "Pass rate (manual)",
  latency: "Latency",
  cost: "Cost",
  tokens: "Tokens"
}

const SEGMENTS = ["succeeded", "failed", "canceled", "running", "queued"] as const

export const ProgressBar = ({ counts }: { readonly counts: CellCounts }) => {
  const done = counts.succeeded + counts.failed + counts.canceled
  return (
    <div className="progress">
      <div
        className="progress-bar"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={counts.total}
        aria-valuenow={done}
        aria-label={`${done} of ${counts.total} cells done`}
      >
        {SEGMENTS.map((status) =>
          counts[status] > 0 ? (
            <span
              key={status}
              className={`segment ${status}`}
              style={{ width: `${(100 * counts[status]) / Math.max(1, counts.total)}%` }}
            />
          ) : null
        )}
      </div>
      <div className="progress-text">
        <span>
          {done.toLocaleString()}/{counts.total.toLocaleString()}
        </span>
        {counts.running > 0 && <span className="running">{counts.running.toLocaleString()} running</span>}
        {counts.queued > 0 && <span className="muted">{counts.queued.toLocaleString()} queued</span>}
        {counts.failed > 0 && <span className="failed">{counts.failed.toLocaleString()} failed</span>}
        {counts.canceled > 0 && <span className="canceled">{counts.canceled.toLocaleString()} canceled</span>}
      </div>
    </div>
  )
}

const rate = (passed: number, graded: number, value: number | null) =>
  value === null ? (
    <span className="muted">—</span>
  ) : (
    <span title={`${passed} of ${graded} graded cells passed`}>{formatRate(value)}</span>
  )

interface Row {
  readonly key: string
  readonly label: string
  readonly detail?: string
  readonly counts: CellCounts
  readonly metrics: Metrics | undefined
}

interface Props {
  readonly run: Run
  readonly report: RunMetricsReport | undefined
  readonly store: CellStore
}

export const RunSummary = ({ run, report, store }: Props) => {
  useSyncExternalStore(store.subscribe, store.getRevision)
  const live = store.size > 0
  const lead = report?.activeMetric ?? run.activeMetric
  const rows: Array<Row> = modelColumns(run).map((model) => ({
    key: model.id,
    label: model.label,
    detail: `${model.provider}/${model.model}`,
    counts: live ? store.counts(model.id) : model.counts,
    metrics: report?.models.find((m) => m.runModelId === model.id)?.metrics
  }))
  if (rows.length > 1) {
    rows.push({
      key: "all",
      label: "All models",
      counts: live ? store.counts() : run.counts,
      metrics: report?.overall
    })
  }
  const cls = (metric: ActiveMetric | "latency" | "cost" | "tokens") => (metric === lead ? "lead" : undefined)

  return (
    <section className="run-summary" aria-label="Summary per model">
      <table className="list summary-table">
        <thead>
          <tr>
            <th>Model</th>
            <th>Progress</th>
            <th className={cls("combined_pass_rate")}>Pass (combined)</th>
            <th className={cls("auto_pass_rate")}>Auto</th>
            <th className={cls("manual_pass_rate")}>Manual</th>
            <th className={cls("latency")}>Mean / p95 latency</th>
            <th className={cls("tokens")}>Tokens in / out</th>
            <th className={cls("cost")}>Cost</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const m = row.metrics
            return (
              <tr key={row.key} className={row.key === "all" ? "total" : undefined}>
                <td>
                  <div className="model-name">{row.label}</div>
                  {row.detail && (
                    <div className="muted small model-detail" title={row.detail}>
                      {row.detail}
                    </div>
                  )}
                </td>
                <td className="progress-cell">
                  <ProgressBar counts={row.counts} />
                </td>
                <td className={cls("combined_pass_rate")}>
                  {m ? rate(m.combinedPassed, m.combinedGraded, m.combinedPassRate) : "…"}
                </td>
                <td className={cls("auto_pass_rate")}>
                  {m ? rate(m.autoPassed, m.autoGraded, m.autoPassRate) : "…"}
                </td>
                <td className={cls("manual_pass_rate")}>
                  {m ? rate(m.manualPassed, m.manualGraded, m.manualPassRate) : "…"}
                </td>
                <td className={cls("latency")}>
                  {m ? `${formatMs(m.meanLatencyMs)} / ${formatMs(m.p95LatencyMs)}` : "…"}
                </td>
                <td className={cls("tokens")}>
                  {m ? (
                    <span
                      title={`grader: ${formatTokens(m.graderTokensIn)} in / ${formatTokens(m.graderTokensOut)} out`}
                    >
                      {formatTokens(m.tokensIn)} / {formatTokens(m.tokensOut)}
                    </span>
                  ) : (
                    "…"
                  )}
                </td>
                <td className={cls("cost")}>{m ? formatCost(m.costUsd) : "…"}</td>
              </tr>
            )
          })}
        </tbody>
      </table>
    </section>
  )
}
