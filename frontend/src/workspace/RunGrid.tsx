// The run grid: dataset rows down, models across, virtualized so only the rows in view are in the DOM.
import { useVirtualizer } from "@tanstack/react-virtual"
import { memo, useEffect, useRef, useSyncExternalStore, type CSSProperties } from "react"
import type { ManualGradeValue } from "../../../src/domain/Grade.ts"
import type { RunModel } from "../../../src/domain/Run.ts"
import type { CellStore, CellView } from "./cellStore.ts"
import type { DatasetRows } from "./datasetRows.ts"
import { formatCost, formatMs, formatTokens, formatValue, outputText } from "./format.ts"
import { cellAt } from "./gridModel.ts"
import type { GridFocus } from "./keyboard.ts"

export const ROW_HEIGHT = 96
const HEADER_HEIGHT = 32

export interface GridActions {
  readonly select: (row: number, col: number, open: boolean) => void
  readonly grade: (cell: CellView, value: ManualGradeValue) => void
  readonly rerun: (cell: CellView) => void
}

const noRows = { subscribe: () => () => {}, getRevision: () => 0 }

/** The automatic grade (its reason on hover), or that grading failed (why, on hover). */
export const AutoGrade = ({
  cell
}: {
  readonly cell: Pick<CellView, "grade" | "gradeReason" | "gradeError">
}) =>
  cell.grade !== null ? (
    <span className={`auto-grade ${cell.grade}`} title={cell.gradeReason ?? "Automatic grade"}>
      auto {cell.grade}
    </span>
  ) : cell.gradeError !== null ? (
    <span className="auto-grade error" title={cell.gradeError}>
      grading failed
    </span>
  ) : null

const GradeToggles = ({
  cell,
  label,
  grade,
  select
}: {
  readonly cell: CellView
  readonly label: string
  readonly grade: GridActions["grade"]
  readonly select: () => void
}) => {
  const gradable = cell.status === "succeeded"
  return (
    <span className={`grade-toggles${cell.gradePending ? " pending" : ""}`}>
      {(["pass", "fail"] as const).map((value) => {
        const on = cell.manualGrade === value
        return (
          <button
            key={value}
            type="button"
            className={`toggle ${value}${on ? " on" : ""}`}
            aria-pressed={on}
            aria-label={`${value === "pass" ? "Pass" : "Fail"}: ${label}`}
            title={`${value === "pass" ? "Pass (p)" : "Fail (f)"}${on ? ", click again to unset (u)" : ""}`}
            disabled={!gradable && !on}
            onClick={(event) => {
              // grading a cell focuses it, without opening the drawer
              event.stopPropagation()
              select()
              grade(cell, on ? "unset" : value)
            }}
          >
            {value === "pass" ? "✓" : "✗"}
          </button>
        )
      })}
    </span>
  )
}

const CellBody = ({ cell }: { readonly cell: CellView }) => {
  if (cell.status === "failed" || (cell.status === "queued" && cell.errorCode !== null)) {
    return (
      <div className="cell-error">
        <code>{cell.errorCode ?? "error"}</code> {cell.errorMessage}
      </div>
    )
  }
  const text = outputText(cell)
  if (text !== null) return <div className="cell-output">{text}</div>
  return (
    <div className="cell-output muted">
      {cell.status === "running" ? "Running…" : cell.status === "canceled" ? "Canceled" : "Queued"}
    </div>
  )
}

interface GridCellProps {
  readonly cell: CellView | undefined
  readonly row: number
  readonly col: number
  readonly label: string
  readonly focused: boolean
  readonly actions: GridActions
}

const GridCell = memo(function GridCell({ cell, row, col, label, focused, actions }: GridCellProps) {
  const name = `row ${row + 1}, ${label}`
  const ref = useRef<HTMLDivElement>(null)
  // the virtualizer brings the row into view; this brings the model column in (the drawer narrows the grid)
  useEffect(() => {
    if (focused) ref.current?.scrollIntoView?.({ block: "nearest", inline: "nearest" })
  }, [focused])
  return (
    <div
      ref={ref}
      role="gridcell"
      aria-selected={focused}
      aria-label={cell ? `${name}: ${cell.status}` : name}
      className={`grid-cell${focused ? " focused" : ""}${cell ? ` ${cell.status}` : ""}`}
      onClick={() => actions.select(row, col, true)}
    >
      {cell === undefined ? (
        <div className="cell-output muted">…</div>
      ) : (
        <>
          <CellBody cell={cell} />
          <div className="cell-foot">
            {cell.status !== "succeeded" && <span className={`badge ${cell.status}`}>{cell.status}</span>}
            <AutoGrade cell={cell} />
            <GradeToggles
              cell={cell}
              label={name}
              grade={actions.grade}
              select={() => actions.select(row, col, false)}
            />
            <span className="cell-stats muted">
              {cell.latencyMs !== null && <span>{formatMs(cell.latencyMs)}</span>}
              {cell.tokensIn !== null && (
                <span title="tokens in / out">
                  {formatTokens(cell.tokensIn)}/{formatTokens(cell.tokensOut)} tok
                </span>
              )}
              {cell.costUsd !== null && <span>{formatCost(cell.costUsd)}</span>}
            </span>
            <button
              type="button"
              className="icon"
              aria-label={`Re-run ${name}`}
              title="Re-run this cell"
              disabled={cell.status === "queued" || cell.status === "running"}
              onClick={(event) => {
                event.stopPropagation()
                actions.select(row, col, false)
                actions.rerun(cell)
              }}
            >
              ↻
            </button>
          </div>
        </>
      )}
    </div>
  )
})

const InputCell = memo(function InputCell({
  values,
  headers,
  hasDataset
}: {
  readonly values: Record<string, unknown> | undefined
  readonly headers: ReadonlyArray<string>
  readonly hasDataset: boolean
}) {
  if (!hasDataset) return <div className="input-cell muted">No dataset</div>
  if (values === undefined) return <div className="input-cell muted">…</div>
  return (
    <div className="input-cell">
      {headers.map((header) => (
        <div key={header} className="input-field">
          <span className="input-key">{header}</span> <span>{formatValue(values[header])}</span>
        </div>
      ))}
    </div>
  )
})

interface RunGridProps {
  readonly store: CellStore
  readonly columns: ReadonlyArray<RunModel>
  readonly rowCount: number
  readonly rows: DatasetRows | null
  readonly focus: GridFocus
  readonly actions: GridActions
}

export const RunGrid = ({ store, columns, rowCount, rows, focus, actions }: RunGridProps) => {
  useSyncExternalStore(store.subscribe, store.getRevision)
  useSyncExternalStore((rows ?? noRows).subscribe, (rows ?? noRows).getRevision)
  const scrollRef = useRef<HTMLDivElement>(null)
  const virtualizer = useVirtualizer({
    count: rowCount,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 6,
    // rows scrolled to stay clear of the sticky header
    scrollPaddingStart: HEADER_HEIGHT
  })
  const items = virtualizer.getVirtualItems()
  const first = items[0]?.index ?? 0
  const last = items[items.length - 1]?.index ?? -1

  useEffect(() => {
    if (rows !== null && last >= first) void rows.ensure(first, last)
  }, [rows, first, last])

  useEffect(() => {
    if (focus.row < rowCount) virtualizer.scrollToIndex(focus.row, { align: "auto" })
  }, [virtualizer, focus.row, rowCount])

  // a fixed minimum width: `fit-content` would make the browser measure every cell's text on each scroll
  const template: CSSProperties = {
    gridTemplateColumns: `56px minmax(200px, 0.9fr) repeat(${columns.length}, minmax(260px, 1fr))`,
    minWidth: 56 + 200 + 260 * columns.length
  }
  const headers = rows?.headers ?? []

  return (
    <div
      className="run-grid"
      ref={scrollRef}
      role="grid"
      aria-label="Run results"
      aria-rowcount={rowCount + 1}
      aria-colcount={columns.length + 2}
    >
      <div className="grid-header" role="row" style={template}>
        <div role="columnheader">#</div>
        <div role="columnheader">Input</div>
        {columns.map((column) => (
          <div role="columnheader" key={column.id} title={`${column.provider} / ${column.model}`}>
            <span className="column-label">{column.label}</span>{" "}
            <span className="muted">
              {column.provider}/{column.model}
            </span>
          </div>
        ))}
      </div>
      <div className="grid-body" style={{ height: virtualizer.getTotalSize() }}>
        {items.map((item) => {
          const row = item.index
          return (
            <div
              key={row}
              role="row"
              aria-rowindex={row + 2}
              className={`grid-row${focus.row === row ? " focused-row" : ""}`}
              style={{ ...template, height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
            >
              <div className="row-number" role="rowheader">
                {row + 1}
              </div>
              <InputCell values={rows?.row(row)} headers={headers} hasDataset={rows !== null} />
              {columns.map((column, col) => (
                <GridCell
                  key={column.id}
                  cell={cellAt(store, columns, row, col)}
                  row={row}
                  col={col}
                  label={column.label}
                  focused={focus.row === row && focus.col === col}
                  actions={actions}
                />
              ))}
            </div>
          )
        })}
      </div>
    </div>
  )
}
