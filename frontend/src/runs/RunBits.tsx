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

/** A pass rate with what it stands on; a dash when no cell has that kind of grade. */
const PassRate = ({
  kind,
  rate,
  passed,
  graded
}: {
  readonly kind: string
  readonly rate: number | null
  readonly passed: number
  readonly graded: number
}) =>
  graded === 0 || rate === null ? (
    <span className="muted" title={`No cell has a ${kind} grade`}>
      — <span className="small">{kind}</span>
    </span>
  ) : (
    <Figure value={formatPercent(rate)} detail={`${passed}/${graded} passed, ${kind}`} />
  )

const Figure = ({ value, detail }: { readonly value: string; readonly detail: string }) => (
  <div className="lead-metric">
    <span>{value}</span>
    <span className="muted small">{detail}</span>
  </div>
)

/**
 * A run's figure for its active metric (the one its page leads with, chosen there): a pass rate with what it
 * stands on, mean and p95 latency, tokens in and out, or cost.
 */
export const LeadMetric = ({
  metric,
  metrics: m
}: {
  readonly metric: ActiveMetric
  readonly metrics: Metrics
}) => {
  switch (metric) {
    case "combined_pass_rate":
      return (
        <PassRate
          kind="combined"
          rate={m.combinedPassRate}
          passed={m.combinedPassed}
          graded={m.combinedGraded}
        />
      )
    case "auto_pass_rate":
      return <PassRate kind="automatic" rate={m.autoPassRate} passed={m.autoPassed} graded={m.autoGraded} />
    case "manual_pass_rate":
      return (
        <PassRate kind="manual" rate={m.manualPassRate} passed={m.manualPassed} graded={m.manualGraded} />
      )
    case "latency":
      return <Figure value={formatMs(m.meanLatencyMs)} detail={`mean, p95 ${formatMs(m.p95LatencyMs)}`} />
    case "tokens":
      return (
        <Figure
          value={formatTokens(m.tokensIn + m.tokensOut)}
          detail={`tokens, ${formatTokens(m.tokensIn)} in / ${formatTokens(m.tokensOut)} out`}
        />
      )
    case "cost":
      return <Figure value={formatCost(m.costUsd)} detail="cost" />
  }
}
