import { deltaDirection, type MetricDelta, type MetricKey, type RunComparison } from "./compare.ts"
import { formatCost, formatMs, formatPercent, formatTokens } from "./format.ts"

const COLUMNS: ReadonlyArray<{ readonly key: MetricKey; readonly label: string }> = [
  { key: "passRate", label: "Pass rate" },
  { key: "meanLatencyMs", label: "Mean latency" },
  { key: "p95LatencyMs", label: "p95 latency" },
  { key: "tokens", label: "Tokens" },
  { key: "costUsd", label: "Cost" }
]

const formatValue = (key: MetricKey, value: number | null) => {
  switch (key) {
    case "passRate":
      return formatPercent(value)
    case "meanLatencyMs":
    case "p95LatencyMs":
      return formatMs(value)
    case "tokens":
      return formatTokens(value)
    case "costUsd":
      return formatCost(value)
  }
}

const sign = (value: number) => (value > 0 ? "+" : value < 0 ? "−" : "±")

/** "+4.0 pts", "−120 ms (−18%)": the change from A to B, relative too where a share makes sense. */
export const formatDelta = (delta: MetricDelta): string => {
  if (delta.delta === null) return ""
  if (delta.key === "passRate") return `${sign(delta.delta)}${Math.abs(delta.delta * 100).toFixed(1)} pts`
  const absolute = formatValue(delta.key, Math.abs(delta.delta))
  const relative =
    delta.a !== null && delta.a !== 0 && delta.delta !== 0
      ? ` (${sign(delta.delta)}${Math.abs((delta.delta / delta.a) * 100).toFixed(0)}%)`
      : ""
  return `${sign(delta.delta)}${absolute}${relative}`
}

const MetricCell = ({ delta }: { readonly delta: MetricDelta | undefined }) => {
  if (!delta) return <td className="muted">—</td>
  const direction = deltaDirection(delta)
  return (
    <td className="metric num">
      <span className="metric-values">
        {formatValue(delta.key, delta.a)} → <strong>{formatValue(delta.key, delta.b)}</strong>
      </span>
      {delta.delta !== null && <span className={`delta delta-${direction}`}>{formatDelta(delta)}</span>}
    </td>
  )
}

const byKey = (metrics: ReadonlyArray<MetricDelta>, key: MetricKey) =>
  metrics.find((delta) => delta.key === key)

export const CompareMetrics = ({ comparison }: { readonly comparison: RunComparison }) => {
  if (comparison.models.length === 0) return null
  return (
    <section aria-labelledby="compare-metrics">
      <h2 id="compare-metrics">Metrics by model</h2>
      <div className="table-scroll">
        <table className="list compare-metrics">
          <thead>
            <tr>
              <th>Model</th>
              {COLUMNS.map((column) => (
                <th key={column.key}>{column.label}</th>
              ))}
              <th>Changed</th>
              <th>Pass → fail</th>
              <th>Fail → pass</th>
            </tr>
          </thead>
          <tbody>
            {comparison.perModel.map((entry) => (
              <tr key={entry.model.modelConfigId}>
                <th scope="row">{entry.model.label}</th>
                {COLUMNS.map((column) => (
                  <MetricCell key={column.key} delta={byKey(entry.metrics, column.key)} />
                ))}
                <td className="num">
                  {entry.changedOutputs}
                  <span className="muted"> / {entry.compared}</span>
                </td>
                <td className={`num${entry.toFail > 0 ? " fail-text" : ""}`}>{entry.toFail}</td>
                <td className={`num${entry.toPass > 0 ? " pass-text" : ""}`}>{entry.toPass}</td>
              </tr>
            ))}
            {comparison.overall.length > 0 && comparison.perModel.length > 1 && (
              <tr className="overall">
                <th scope="row">All models</th>
                {COLUMNS.map((column) => (
                  <MetricCell key={column.key} delta={byKey(comparison.overall, column.key)} />
                ))}
                <td className="num">
                  {comparison.totals.changedOutputs}
                  <span className="muted"> / {comparison.totals.compared}</span>
                </td>
                <td className={`num${comparison.totals.toFail > 0 ? " fail-text" : ""}`}>
                  {comparison.totals.toFail}
                </td>
                <td className={`num${comparison.totals.toPass > 0 ? " pass-text" : ""}`}>
                  {comparison.totals.toPass}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <p className="footnote muted">
        Pass rate counts effective grades (a manual grade where set, else the grader&apos;s). Tokens are
        generation tokens in + out; cost includes grading.
      </p>
    </section>
  )
}
