// Small pieces both runs screens use.
import { DateTime } from "effect"
import type { Run } from "../../../src/domain/Run.ts"

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
