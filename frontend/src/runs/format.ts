// How the runs screens write numbers and times.
import { DateTime } from "effect"
import type { CellCounts } from "../../../src/domain/Run.ts"

export const formatPercent = (rate: number | null) => (rate === null ? "—" : `${(rate * 100).toFixed(1)}%`)

export const formatMs = (ms: number | null) => {
  if (ms === null) return "—"
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`
}

export const formatTokens = (tokens: number | null) => {
  if (tokens === null) return "—"
  if (Math.abs(tokens) >= 1_000_000) return `${(tokens / 1_000_000).toFixed(2)}M`
  if (Math.abs(tokens) >= 10_000) return `${(tokens / 1000).toFixed(1)}k`
  return tokens.toLocaleString("en-US")
}

export const formatCost = (usd: number | null) => {
  if (usd === null) return "—"
  if (usd === 0) return "$0"
  return Math.abs(usd) < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`
}

export const formatTime = (at: DateTime.Utc) =>
  DateTime.toDate(at).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit"
  })

/** Cells that have finished (succeeded, failed or canceled). */
export const settledCount = (counts: CellCounts) => counts.succeeded + counts.failed + counts.canceled
