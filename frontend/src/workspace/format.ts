// Numbers and outputs as the workspace shows them.

/** "1 row", "10,000 rows". */
export const countOf = (n: number, one: string, many = `${one}s`) =>
  `${n.toLocaleString()} ${n === 1 ? one : many}`

export const formatMs = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return "—"
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

export const formatCost = (usd: number | null | undefined): string => {
  if (usd === null || usd === undefined) return "—"
  if (usd === 0) return "$0"
  if (usd >= 1) return `$${usd.toFixed(2)}`
  if (usd >= 0.01) return `$${usd.toFixed(3)}`
  return `$${usd.toPrecision(2)}`
}

export const formatTokens = (tokens: number | null | undefined): string => {
  if (tokens === null || tokens === undefined) return "—"
  if (tokens < 1000) return String(tokens)
  if (tokens < 1_000_000) return `${(tokens / 1000).toFixed(tokens < 10_000 ? 1 : 0)}k`
  return `${(tokens / 1_000_000).toFixed(1)}M`
}

export const formatRate = (rate: number | null | undefined): string =>
  rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`

export const formatValue = (value: unknown): string =>
  typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value)

/** The parsed output as the engine stores it: `{ kind, value }` (see OutputParser). */
const parsedOf = (parsed: unknown): { kind: string; value: unknown } | undefined =>
  typeof parsed === "object" && parsed !== null && "kind" in parsed && "value" in parsed
    ? (parsed as { kind: string; value: unknown })
    : undefined

/** The output in one string: the parsed form when there is one (JSON compact or pretty), else the raw text. */
export const outputText = (
  cell: { readonly outputParsed: unknown; readonly outputRaw: string | null },
  pretty = false
): string | null => {
  const parsed = parsedOf(cell.outputParsed)
  if (parsed === undefined) return cell.outputRaw
  if (typeof parsed.value === "string") return parsed.value
  return JSON.stringify(parsed.value, null, pretty ? 2 : undefined)
}

/** How the output was read: "response tag", "json", "text" (null before there is one). */
export const outputKind = (cell: { readonly outputParsed: unknown }): string | null => {
  const parsed = parsedOf(cell.outputParsed)
  return parsed === undefined ? null : parsed.kind.replace("_", " ")
}
