// Splits a template into what the editor paints: plain text, placeholders and malformed `{{`. The rules are the
// server's own (src/domain/Template.ts `parseTemplate`), so the editor marks exactly what a save would accept.
import { Either } from "effect"
import { parseTemplate, type TemplateIssue } from "../../../src/domain/Template.ts"

export type TemplateToken =
  | { readonly kind: "text"; readonly text: string; readonly start: number; readonly end: number }
  | {
      readonly kind: "placeholder"
      readonly name: string
      readonly text: string
      readonly start: number
      readonly end: number
    }
  | {
      readonly kind: "issue"
      readonly issue: TemplateIssue
      readonly text: string
      readonly start: number
      readonly end: number
    }

export interface TemplateAnalysis {
  readonly tokens: ReadonlyArray<TemplateToken>
  /** Well-formed placeholder names, each once, in first-seen order. */
  readonly placeholders: ReadonlyArray<string>
  readonly issues: ReadonlyArray<TemplateIssue>
}

type Span = Exclude<TemplateToken, { kind: "text" }>

/** The placeholders `parseTemplate` finds in `text.slice(from, to)`, at their offsets in `text`. */
const placeholderSpans = (text: string, from: number, to: number): Array<Span> => {
  const parsed = parseTemplate(text.slice(from, to))
  // a stretch between two issues parses cleanly: the server's scan found nothing wrong in it
  if (Either.isLeft(parsed)) return []
  return parsed.right.flatMap((part) =>
    part._tag === "Placeholder"
      ? [
          {
            kind: "placeholder" as const,
            name: part.name,
            text: text.slice(from + part.start, from + part.end),
            start: from + part.start,
            end: from + part.end
          }
        ]
      : []
  )
}

/**
 * Where the scan resumes after a bad `{{` at `offset`: right after it when it has no `}}` before the next `{{`
 * (unclosed), else after that `}}` (an empty or invalid name) — the same choice `parseTemplate` makes.
 */
const issueEnd = (text: string, offset: number) => {
  const close = text.indexOf("}}", offset + 2)
  const nextOpen = text.indexOf("{{", offset + 2)
  const unclosed = close === -1 || (nextOpen !== -1 && nextOpen < close)
  return unclosed ? offset + 2 : close + 2
}

export const analyzeTemplate = (text: string): TemplateAnalysis => {
  const parsed = parseTemplate(text)
  const issues = Either.isLeft(parsed) ? parsed.left : []
  const spans: Array<Span> = []
  let from = 0
  for (const issue of issues) {
    spans.push(...placeholderSpans(text, from, issue.offset))
    const end = issueEnd(text, issue.offset)
    spans.push({ kind: "issue", issue, text: text.slice(issue.offset, end), start: issue.offset, end })
    from = end
  }
  spans.push(...placeholderSpans(text, from, text.length))

  const tokens: Array<TemplateToken> = []
  let at = 0
  for (const span of spans) {
    if (span.start > at)
      tokens.push({ kind: "text", text: text.slice(at, span.start), start: at, end: span.start })
    tokens.push(span)
    at = span.end
  }
  if (at < text.length) tokens.push({ kind: "text", text: text.slice(at), start: at, end: text.length })

  const names = new Set<string>()
  for (const span of spans) if (span.kind === "placeholder") names.add(span.name)
  return { tokens, placeholders: Array.from(names), issues }
}
