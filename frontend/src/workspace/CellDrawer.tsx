// The cell drawer: everything about one cell — the prompt as sent, raw and parsed output, the grader's side,
// manual grade history and the cell's events. It follows the focused cell and reloads when that cell changes.
import { DateTime } from "effect"
import { useRef, useState } from "react"
import type { CellDetail } from "../../../src/domain/Cell.ts"
import type { ManualGradeValue } from "../../../src/domain/Grade.ts"
import type { RunId } from "../../../src/domain/Ids.ts"
import { useApi } from "../lib/session.tsx"
import { useQuery } from "../lib/useQuery.ts"
import type { CellView } from "./cellStore.ts"
import { formatCost, formatMs, formatTokens, outputKind, outputText } from "./format.ts"

const time = (value: DateTime.DateTime | null) =>
  value === null ? "—" : DateTime.toDateUtc(value).toLocaleTimeString(undefined, { hour12: false })

const PART_ORDER = ["system", "user"]

/** The prompt as sent (`{ system, user }`), system first. */
const renderedParts = (rendered: unknown): ReadonlyArray<[string, string]> => {
  if (typeof rendered !== "object" || rendered === null) return []
  const rank = (part: string) => (PART_ORDER.includes(part) ? PART_ORDER.indexOf(part) : PART_ORDER.length)
  return Object.entries(rendered as Record<string, unknown>)
    .filter((entry): entry is [string, string] => typeof entry[1] === "string" && entry[1] !== "")
    .sort(([a], [b]) => rank(a) - rank(b))
}

interface Props {
  readonly runId: RunId
  readonly cell: CellView
  /** "Row 3 · GPT-4.1" */
  readonly title: string
  readonly onClose: () => void
  readonly onGrade: (cell: CellView, value: ManualGradeValue) => void
  readonly onRerun: (cell: CellView) => void
}

export const CellDrawer = ({ runId, cell, title, onClose, onGrade, onRerun }: Props) => {
  const api = useApi()
  const [showRaw, setShowRaw] = useState(false)
  // keyed by the cell's version, so the drawer refetches when the live sync brings a change
  const version = `${cell.id}:${cell.updatedAt.epochMillis}`
  const detail = useQuery(`cell:${version}`, () => api.call((c) => c.cells.get({ runId, cellId: cell.id })))
  const history = useQuery(`grades:${version}`, () =>
    api.call((c) => c.grades.history({ runId, cellId: cell.id }))
  )
  // the previous answer stays up while the next version loads, so a live cell does not flicker
  const lastDetail = useRef<CellDetail | undefined>(undefined)
  if (detail.data !== undefined) lastDetail.current = detail.data
  const d = lastDetail.current?.id === cell.id ? lastDetail.current : undefined
  const parsed = outputText(cell, true)
  const kind = outputKind(cell)
  const prompt = renderedParts(d?.renderedPrompt)

  return (
    <aside className="cell-drawer" role="dialog" aria-label={`Cell details: ${title}`}>
      <header className="drawer-head">
        <div>
          <h2>{title}</h2>
          <div className="row">
            <span className={`badge ${cell.status}`}>{cell.status}</span>
            <span className="muted">
              attempt {cell.attempt}
              {d ? ` of ${d.maxAttempts}` : ""} · stage {cell.stage}
            </span>
          </div>
        </div>
        <button
          type="button"
          className="icon"
          aria-label="Close details"
          title="Close (Esc)"
          onClick={onClose}
        >
          ×
        </button>
      </header>

      <div className="drawer-actions">
        <span className="muted">Manual grade</span>
        {(["pass", "fail", "unset"] as const).map((value) => {
          const on = value === "unset" ? cell.manualGrade === null : cell.manualGrade === value
          return (
            <button
              key={value}
              type="button"
              className={`toggle ${value}${on ? " on" : ""}`}
              aria-pressed={on}
              disabled={value !== "unset" && cell.status !== "succeeded"}
              onClick={() => onGrade(cell, value)}
            >
              {value === "pass" ? "Pass (p)" : value === "fail" ? "Fail (f)" : "Unset (u)"}
            </button>
          )
        })}
        <span className="spacer" />
        <button
          type="button"
          onClick={() => onRerun(cell)}
          disabled={cell.status === "queued" || cell.status === "running"}
        >
          Re-run cell
        </button>
      </div>

      <div className="drawer-body">
        {cell.errorCode !== null && (
          <section>
            <h3>Error</h3>
            <div className="cell-error">
              <code>{cell.errorCode}</code> {cell.errorMessage}
            </div>
          </section>
        )}

        <section>
          <div className="section-head">
            <h3>Output {kind && <span className="badge">{kind}</span>}</h3>
            {cell.outputRaw !== null && (
              <button type="button" className="link" onClick={() => setShowRaw((v) => !v)}>
                {showRaw ? "Show parsed" : "Show raw"}
              </button>
            )}
          </div>
          {cell.outputRaw === null ? (
            <p className="muted">No output yet.</p>
          ) : (
            <pre className="block">{showRaw ? cell.outputRaw : parsed}</pre>
          )}
        </section>

        <section>
          <h3>Grade</h3>
          <dl className="facts">
            <dt>Automatic</dt>
            <dd>
              {cell.grade === null ? (
                <span className="muted">{d?.gradeError ? "grading failed" : "none"}</span>
              ) : (
                <span className={`badge ${cell.grade}`}>{cell.grade}</span>
              )}
              {cell.gradeScore !== null && <span className="muted"> score {cell.gradeScore.toFixed(2)}</span>}
            </dd>
            <dt>Manual</dt>
            <dd>
              {cell.manualGrade === null ? (
                <span className="muted">unset</span>
              ) : (
                <span className={`badge ${cell.manualGrade}`}>{cell.manualGrade}</span>
              )}
            </dd>
          </dl>
          {cell.gradeReason && <p className="reason">{cell.gradeReason}</p>}
          {d?.gradeError && (
            <div className="cell-error">
              <code>grading</code> {d.gradeError}
            </div>
          )}
          {d?.graderOutputRaw && (
            <details>
              <summary>Grader output</summary>
              <pre className="block">{d.graderOutputRaw}</pre>
            </details>
          )}
          {history.data && history.data.length > 0 && <div className="part-label">Manual grade history</div>}
          {history.data && history.data.length > 0 && (
            <table className="list compact" aria-label="Manual grade history">
              <tbody>
                {history.data.map((entry) => (
                  <tr key={entry.id}>
                    <td>{time(entry.createdAt)}</td>
                    <td>
                      <span className={`badge ${entry.value}`}>{entry.value}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>

        <section>
          <h3>Usage</h3>
          <dl className="facts">
            <dt>Latency</dt>
            <dd>{formatMs(cell.latencyMs)}</dd>
            <dt>Tokens</dt>
            <dd>
              {formatTokens(cell.tokensIn)} in · {formatTokens(cell.tokensOut)} out
            </dd>
            {d && d.graderTokensIn !== null && (
              <>
                <dt>Grader tokens</dt>
                <dd>
                  {formatTokens(d.graderTokensIn)} in · {formatTokens(d.graderTokensOut)} out
                </dd>
              </>
            )}
            <dt>Cost</dt>
            <dd>{formatCost(cell.costUsd)}</dd>
            <dt>Started</dt>
            <dd>{time(cell.startedAt)}</dd>
            <dt>Finished</dt>
            <dd>{time(cell.finishedAt)}</dd>
          </dl>
        </section>

        <section>
          <h3>Rendered prompt</h3>
          {d === undefined ? (
            <p className="muted">{detail.loading ? "Loading…" : "—"}</p>
          ) : prompt.length === 0 ? (
            <p className="muted">Recorded when an attempt ends.</p>
          ) : (
            prompt.map(([part, text]) => (
              <div key={part}>
                <div className="part-label">{part}</div>
                <pre className="block">{text}</pre>
              </div>
            ))
          )}
        </section>

        <section>
          <h3>Events</h3>
          {d === undefined ? (
            <p className="muted">{detail.loading ? "Loading…" : "—"}</p>
          ) : (
            <table className="list compact" aria-label="Cell events">
              <tbody>
                {d.events.map((event) => (
                  <tr key={event.id}>
                    <td className="nowrap">{time(event.createdAt)}</td>
                    <td>
                      <code>{event.type}</code>
                    </td>
                    <td className="payload">
                      {event.payload !== null &&
                      typeof event.payload === "object" &&
                      Object.keys(event.payload).length > 0
                        ? JSON.stringify(event.payload)
                        : ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
    </aside>
  )
}
