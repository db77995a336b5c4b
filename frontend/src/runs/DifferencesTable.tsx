import { useMemo, useRef, useState } from "react"
import type { Cell } from "../../../src/domain/Cell.ts"
import {
  filterPairs,
  type CellPair,
  type GradeValue,
  type PairFilter,
  type RunComparison
} from "./compare.ts"
import { sideBySide, type Segment } from "./outputDiff.ts"

const PAGE_SIZE = 50

const FILTERS: ReadonlyArray<{ readonly value: PairFilter; readonly label: string }> = [
  { value: "all", label: "All differences" },
  { value: "changed", label: "Changed output" },
  { value: "to_fail", label: "Pass → fail" },
  { value: "to_pass", label: "Fail → pass" }
]

interface Props {
  readonly comparison: RunComparison
  readonly filter: PairFilter
  readonly counts: Record<PairFilter, number>
  readonly onFilter: (filter: PairFilter) => void
}

export const DifferencesTable = ({ comparison, filter, counts, onFilter }: Props) => {
  const [model, setModel] = useState<string>("")
  // the page belongs to the filter and model it was chosen under: changing either starts at the first page
  const [paged, setPaged] = useState({ view: "", page: 0 })
  const view = `${filter}:${model}`
  const page = paged.view === view ? paged.page : 0
  const sectionRef = useRef<HTMLElement>(null)
  const setPage = (next: number) => {
    setPaged({ view, page: next })
    // the pager sits under the table: the next page starts at the table's top
    sectionRef.current?.scrollIntoView({ block: "start" })
  }
  const rows = useMemo(() => {
    const filtered = filterPairs(comparison.pairs, filter)
    return model === "" ? filtered : filtered.filter((pair) => pair.model.modelConfigId === model)
  }, [comparison.pairs, filter, model])
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE))
  const current = Math.min(page, pages - 1)
  const shown = rows.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE)

  return (
    <section aria-labelledby="compare-differences" ref={sectionRef}>
      <div className="toolbar differences-toolbar">
        <h2 id="compare-differences">Differing cells</h2>
        <div className="segmented" role="group" aria-label="Show">
          {FILTERS.map((option) => (
            <button
              key={option.value}
              type="button"
              aria-pressed={filter === option.value}
              onClick={() => onFilter(option.value)}
            >
              {option.label} <span className="count">{counts[option.value]}</span>
            </button>
          ))}
        </div>
        <div className="spacer" />
        {comparison.models.length > 1 && (
          <label className="inline-label">
            Model
            <select value={model} onChange={(event) => setModel(event.target.value)}>
              <option value="">All models</option>
              {comparison.models.map((entry) => (
                <option key={entry.modelConfigId} value={entry.modelConfigId}>
                  {entry.label}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      {rows.length === 0 ? (
        <div className="card empty">{emptyText(filter)}</div>
      ) : (
        <>
          <table className="list differences">
            <thead>
              <tr>
                <th className="row-col">Row</th>
                <th className="model-col">Model</th>
                <th>Run A output</th>
                <th>Run B output</th>
                <th className="grade-col">Grade A → B</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((pair) => (
                <PairRow key={pair.key} pair={pair} />
              ))}
            </tbody>
          </table>
          {pages > 1 && (
            <div className="pager">
              <span className="muted num">
                {current * PAGE_SIZE + 1}–{current * PAGE_SIZE + shown.length} of{" "}
                {rows.length.toLocaleString("en-US")}
              </span>
              <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)}>
                Previous
              </button>
              <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>
                Next
              </button>
            </div>
          )}
        </>
      )}
    </section>
  )
}

const emptyText = (filter: PairFilter) => {
  switch (filter) {
    case "all":
      return "No differences: every compared cell has the same output and grade."
    case "changed":
      return "No output changed."
    case "to_fail":
      return "No cell went from pass to fail."
    case "to_pass":
      return "No cell went from fail to pass."
  }
}

const PairRow = ({ pair }: { readonly pair: CellPair }) => {
  const texts = useMemo(() => {
    const a = pair.a?.status === "succeeded" ? (pair.a.outputRaw ?? "") : null
    const b = pair.b?.status === "succeeded" ? (pair.b.outputRaw ?? "") : null
    if (a === null || b === null) return null
    return sideBySide(a, b)
  }, [pair.a, pair.b])
  return (
    <tr className={pair.flip ? `flip-${pair.flip}` : undefined}>
      <td className="num row-col">{pair.rowIndex + 1}</td>
      <td className="model-col">{pair.model.label}</td>
      <td>
        <Output cell={pair.a} segments={texts?.a} side="a" />
      </td>
      <td>
        <Output cell={pair.b} segments={texts?.b} side="b" />
      </td>
      <td className="grade-col">
        <GradeBadge grade={pair.gradeA} manual={pair.a?.manualGrade != null} />
        <span className="arrow" aria-hidden="true">
          →
        </span>
        <GradeBadge grade={pair.gradeB} manual={pair.b?.manualGrade != null} />
      </td>
    </tr>
  )
}

const Output = ({
  cell,
  segments,
  side
}: {
  readonly cell: Cell | null
  readonly segments: ReadonlyArray<Segment> | undefined
  readonly side: "a" | "b"
}) => {
  if (cell === null) return <span className="muted">Not in this run</span>
  if (cell.status === "failed")
    return (
      <div className="output output-error">
        <strong>{cell.errorCode ?? "failed"}</strong>
        {cell.errorMessage ? `: ${cell.errorMessage}` : ""}
      </div>
    )
  if (cell.status !== "succeeded") return <span className={`badge ${cell.status}`}>{cell.status}</span>
  if (!segments) return <pre className="output">{cell.outputRaw}</pre>
  return (
    <pre className="output">
      {segments.map((segment, index) =>
        segment.changed ? (
          <mark key={index} className={side === "a" ? "removed" : "added"}>
            {segment.text}
          </mark>
        ) : (
          <span key={index}>{segment.text}</span>
        )
      )}
    </pre>
  )
}

const GradeBadge = ({ grade, manual }: { readonly grade: GradeValue | null; readonly manual: boolean }) =>
  grade === null ? (
    <span className="badge ungraded">ungraded</span>
  ) : (
    <span className={`badge ${grade}`} title={manual ? "graded by hand" : "graded by the grader"}>
      {grade}
      {manual && <span className="manual-mark"> · manual</span>}
    </span>
  )
