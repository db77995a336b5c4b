// A plain textarea over a backdrop that paints the same text with its placeholders and malformed `{{` marked.
// The textarea keeps native editing (undo, IME, selection); the backdrop only colours behind the glyphs.
import { useLayoutEffect, useMemo, useRef } from "react"
import type { TemplateIssue } from "../../../src/domain/Template.ts"
import { analyzeTemplate } from "./templateTokens.ts"
import "./TemplateEditor.css"

interface Props {
  readonly id: string
  readonly label: string
  readonly value: string
  readonly onChange: (value: string) => void
  readonly placeholder?: string
  /** Rows shown before the editor grows. */
  readonly minRows?: number
  /** Issues to list under the editor (the server's after a rejected save, else the live ones). */
  readonly issues: ReadonlyArray<TemplateIssue>
  readonly issuesSource: "server" | "live"
  readonly disabled?: boolean
}

export const TemplateEditor = ({
  id,
  label,
  value,
  onChange,
  placeholder,
  minRows = 4,
  issues,
  issuesSource,
  disabled
}: Props) => {
  const analysis = useMemo(() => analyzeTemplate(value), [value])
  const input = useRef<HTMLTextAreaElement>(null)

  // grow with the text, so the page scrolls instead of the textarea and the backdrop never needs to follow a scroll
  useLayoutEffect(() => {
    const element = input.current
    if (!element) return
    const fit = () => {
      element.style.height = "auto"
      element.style.height = `${element.scrollHeight}px`
    }
    fit()
    // a narrower window wraps more lines
    window.addEventListener("resize", fit)
    return () => window.removeEventListener("resize", fit)
  }, [value])

  const issuesId = `${id}-issues`
  return (
    <div className="tpl">
      <div className="tpl-label">
        <label htmlFor={id}>{label}</label>
        <span className="muted tpl-count">
          {analysis.placeholders.length === 0
            ? "no placeholders"
            : `${analysis.placeholders.length} placeholder${analysis.placeholders.length === 1 ? "" : "s"}`}
        </span>
      </div>
      <div className={`tpl-editor${issues.length > 0 ? " pr-has-issues" : ""}`}>
        <div className="tpl-backdrop" aria-hidden="true">
          {analysis.tokens.map((token) =>
            token.kind === "text" ? (
              <span key={token.start}>{token.text}</span>
            ) : token.kind === "placeholder" ? (
              <mark key={token.start} className="tpl-ph">
                {token.text}
              </mark>
            ) : (
              <mark key={token.start} className="tpl-bad">
                {token.text}
              </mark>
            )
          )}
          {/* a trailing newline needs a glyph after it to take up its line, as it does in the textarea */}
          {"\u200b"}
        </div>
        <textarea
          ref={input}
          id={id}
          className="tpl-input"
          rows={minRows}
          value={value}
          placeholder={placeholder}
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          disabled={disabled}
          aria-invalid={issues.length > 0}
          aria-describedby={issues.length > 0 ? issuesId : undefined}
          onChange={(event) => onChange(event.target.value)}
        />
      </div>
      {issues.length > 0 && (
        <ul className="tpl-issues" id={issuesId}>
          {issues.map((issue) => (
            <li key={`${issue.offset}:${issue.message}`}>
              <span className="tpl-pos">
                Line {issue.line}, column {issue.column}
              </span>{" "}
              {issue.message}
              {issuesSource === "server" && <span className="muted"> (rejected by the server)</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  )
}
