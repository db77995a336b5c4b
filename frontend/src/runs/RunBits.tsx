// Small pieces both runs screens use.
import { DateTime } from "effect"
import type { Metrics } from "../../../src/domain/Grade.ts"
import type { ActiveMetric, Run } from "../../../src/domain/Run.ts"
import { formatCost, formatMs, formatPercent, formatTokens } from "./format.ts"

export const isActive = (run: Run) => run.status === "queued" || run.status === "running"

/** The compare screen for two runs, the older one as A (the baseline). */
export const compareHref = (x: Run, y: Run) => {
  const [a, b] = DateTime.lessThanOrEqualTo(x.createdAt, y.createdAt) ? [x, y] : [y, x]
  return `/runs/compare?a=${a.id}&b=${b.id}`
}

export const RunStatusBadge = ({ run }: { readonly run: Run }) => (
  <span className={`badge ${run.status}`} title={run.error ?? undefined}>
    {run.status}
  </span>
)

interface PassRate {
  readonly kind: string
  readonly rate: number | null
  readonly passed: number
  readonly graded: number
}

const passRateOf = (metric: ActiveMetric, m: Metrics): PassRate | null => {
  switch (metric) {
    case "combined_pass_rate":
      return {
        kind: "combined",
        rate: m.combinedPassRate,
        passed: m.combinedPassed,
        graded: m.combinedGraded
      }
    case "auto_pass_rate":
      return { kind: "automatic", rate: m.autoPassRate, passed: m.autoPassed, graded: m.autoGraded }
    case "manual_pass_rate":
      return { kind: "manual", rate: m.manualPassRate, passed: m.manualPassed, graded: m.manualGraded }
    default:
      return null
  }
}

/**
 * A run's figure for its active metric (the one its page leads with, chosen there): a pass rate with what it
 * stands on, mean and p95 latency, tokens in and out, or cost.
 */
export const LeadMetric = ({
  metric,
  metrics
}: {
  readonly metric: ActiveMetric
  readonly metrics: Metrics
}) => {
  const pass = passRateOf(metric, metrics)
  if (pass !== null) {
    return pass.graded === 0 || pass.rate === null ? (
      <span className="muted" title={`No cell has a ${pass.kind} grade`}>
        — <span className="small">{pass.kind}</span>
      </span>
    ) : (
      <div className="lead-metric">
        <span>{formatPercent(pass.rate)}</span>
        <span className="muted small">
          {pass.passed}/{pass.graded} passed, {pass.kind}
        </span>
      </div>
    )
  }
  switch (metric) {
    case "latency":
      return (
        <div className="lead-metric">
          <span>{formatMs(metrics.meanLatencyMs)}</span>
          <span className="muted small">mean, p95 {formatMs(metrics.p95LatencyMs)}</span>
        </div>
      )
    case "tokens":
      return (
        <div className="lead-metric">
          <span>{formatTokens(metrics.tokensIn + metrics.tokensOut)}</span>
          <span className="muted small">
            tokens, {formatTokens(metrics.tokensIn)} in / {formatTokens(metrics.tokensOut)} out
          </span>
        </div>
      )
    case "cost":
      return (
        <div className="lead-metric">
          <span>{formatCost(metrics.costUsd)}</span>
          <span className="muted small">cost</span>
        </div>
      )
    default:
      return null
  }
}
