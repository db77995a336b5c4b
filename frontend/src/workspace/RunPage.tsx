// The run workspace: a live grid of dataset rows × models with a summary per model, a cell drawer, manual
// grading by mouse and keyboard, re-runs and cancel.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react"
import type { ManualGradeValue } from "../../../src/domain/Grade.ts"
import type { PromptVersionId, RunId } from "../../../src/domain/Ids.ts"
import type { ActiveMetric, Run } from "../../../src/domain/Run.ts"
import { Link } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { useSettings } from "../lib/settings.ts"
import { showToast, toastError } from "../lib/toast.tsx"
import { useQuery } from "../lib/useQuery.ts"
import { CellDrawer } from "./CellDrawer.tsx"
import { CellStore, type CellView } from "./cellStore.ts"
import { DatasetRows } from "./datasetRows.ts"
import { countOf } from "./format.ts"
import { setManualGrade } from "./grading.ts"
import { cellAt, gridRowCount, modelColumns } from "./gridModel.ts"
import {
  commandFor,
  focusReducer,
  initialFocus,
  type GridBounds,
  type GridCommand,
  type GridFocus
} from "./keyboard.ts"
import { LiveSync, type SyncState } from "./liveSync.ts"
import { RunGrid, ROW_HEIGHT, type GridActions } from "./RunGrid.tsx"
import { METRIC_LABELS, RunSummary } from "./RunSummary.tsx"
import { throttle } from "./throttle.ts"
import "./workspace.css"

/** Run and metrics are refetched at most this often while cells finish. */
const REFRESH_MS = 1_000

const SYNC_LABELS: Record<SyncState, string> = {
  loading: "Loading cells…",
  streaming: "Live",
  polling: "Live (polling)",
  idle: "Up to date"
}

const isActive = (run: Run) => run.status === "queued" || run.status === "running"

export const RunPage = ({ id }: { readonly id: string }) => {
  const runId = id as RunId
  const api = useApi()
  const { liveUpdates } = useSettings()
  const [store] = useState(() => new CellStore())
  const [syncState, setSyncState] = useState<SyncState>("loading")
  const [focus, setFocus] = useState(initialFocus)
  // the focus as the key handler sees it: two quick keys (j then p) must not act on a stale render's focus
  const focusRef = useRef(initialFocus)
  const moveFocus = useCallback((update: (focus: GridFocus) => GridFocus) => {
    const next = update(focusRef.current)
    focusRef.current = next
    setFocus(next)
  }, [])
  const [busy, setBusy] = useState<"cancel" | "rerun" | null>(null)
  const syncRef = useRef<LiveSync | null>(null)

  const run = useQuery(`run:${runId}`, () => api.call((c) => c.runs.get({ id: runId })))
  const metrics = useQuery(`metrics:${runId}`, () => api.call((c) => c.runs.metrics({ id: runId })))
  const promptId = run.data?.promptId
  const versionId: PromptVersionId | undefined = run.data?.promptVersionId
  const datasetId = run.data?.datasetId ?? null
  const version = useQuery(promptId && versionId ? `version:${versionId}` : null, () =>
    api.call((c) => c.prompts.version({ id: promptId!, versionId: versionId! }))
  )
  const dataset = useQuery(datasetId ? `dataset:${datasetId}` : null, () =>
    api.call((c) => c.datasets.get({ id: datasetId! }))
  )
  const rows = useMemo(
    () => (datasetId ? new DatasetRows(api, datasetId, toastError) : null),
    [api, datasetId]
  )

  // run + metrics, refetched (throttled) as cells change; the sync also asks for the run to know when to stop
  const setRun = run.setData
  const loadRun = useCallback(async () => {
    const next = await api.call((c) => c.runs.get({ id: runId }))
    setRun(() => next)
    return next
  }, [api, runId, setRun])
  const reloadMetrics = metrics.reload
  const refresher = useMemo(
    () =>
      throttle(() => {
        loadRun().catch(toastError)
        void reloadMetrics()
      }, REFRESH_MS),
    [loadRun, reloadMetrics]
  )
  useEffect(() => () => refresher.cancel(), [refresher])

  useEffect(() => {
    const sync = new LiveSync({
      api,
      runId,
      store,
      mode: liveUpdates,
      loadRun,
      onError: toastError,
      onCellsChanged: refresher.call,
      onState: (state) => {
        setSyncState(state)
        // the last numbers, once everything is in
        if (state === "idle") refresher.call()
      }
    })
    syncRef.current = sync
    void sync.start()
    return () => {
      sync.dispose()
      syncRef.current = null
    }
  }, [api, runId, store, liveUpdates, loadRun, refresher])

  const current = run.data
  const columns = useMemo(() => (current ? modelColumns(current) : []), [current])
  const rowCount = current ? gridRowCount(current) : 0
  const bounds: GridBounds = useMemo(
    () => ({ rows: rowCount, cols: columns.length, pageRows: Math.max(1, Math.floor(600 / ROW_HEIGHT)) }),
    [rowCount, columns.length]
  )

  const afterRunChange = useCallback(
    (next: Run) => {
      setRun(() => next)
      syncRef.current?.resume()
      refresher.call()
    },
    [setRun, refresher]
  )

  const grade = useCallback(
    (cell: CellView, value: ManualGradeValue) => {
      void setManualGrade(api, store, runId, cell.id, value, toastError).then((done) => {
        if (done) refresher.call()
      })
    },
    [api, store, runId, refresher]
  )

  const rerunCell = useCallback(
    (cell: CellView) => {
      api.call((c) => c.runs.rerunCell({ id: runId, cellId: cell.id })).then(afterRunChange, toastError)
    },
    [api, runId, afterRunChange]
  )

  const select = useCallback(
    (row: number, col: number, open: boolean) =>
      moveFocus((f) => ({ row, col, drawerOpen: open || f.drawerOpen })),
    [moveFocus]
  )
  const actions: GridActions = useMemo(
    () => ({ select, grade, rerun: rerunCell }),
    [select, grade, rerunCell]
  )

  // keys anywhere on the page (not while typing in a field) drive the grid
  const handle = useRef<(command: GridCommand) => void>(() => {})
  handle.current = (command) => {
    if (command.type === "grade") {
      const cell = cellAt(store, columns, focusRef.current.row, focusRef.current.col)
      if (cell) grade(cell, command.value)
      return
    }
    moveFocus((f) => focusReducer(f, command, bounds))
  }
  const boundsRef = useRef(bounds)
  boundsRef.current = bounds
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const command = commandFor(
        {
          key: event.key,
          ctrlKey: event.ctrlKey,
          metaKey: event.metaKey,
          altKey: event.altKey,
          target: event.target
        },
        boundsRef.current
      )
      if (command === null) return
      event.preventDefault()
      handle.current(command)
    }
    document.addEventListener("keydown", onKey)
    return () => document.removeEventListener("keydown", onKey)
  }, [])

  useSyncExternalStore(store.subscribe, store.getRevision)
  const focused = cellAt(store, columns, focus.row, focus.col)

  const cancel = () => {
    setBusy("cancel")
    api
      .call((c) => c.runs.cancel({ id: runId }))
      .then((next) => {
        afterRunChange(next)
        showToast("info", "Run canceled.")
      }, toastError)
      .finally(() => setBusy(null))
  }
  const rerunFailed = () => {
    setBusy("rerun")
    api
      .call((c) => c.runs.rerunFailed({ id: runId }))
      .then(afterRunChange, toastError)
      .finally(() => setBusy(null))
  }
  const setMetric = (activeMetric: ActiveMetric) => {
    api
      .call((c) => c.runs.setActiveMetric({ id: runId, activeMetric }))
      .then((report) => metrics.setData(() => report), toastError)
  }

  if (current === undefined) {
    return (
      <div className="page">
        <h1>Run</h1>
        <p className="muted">{run.error ? run.error.message : "Loading…"}</p>
      </div>
    )
  }

  const failed = store.size > 0 ? store.counts().failed : current.counts.failed
  const promptName = version.data?.name ?? "Run"
  return (
    <div className="workspace">
      <header className="ws-header">
        <div className="ws-title">
          <h1>
            {promptName}
            {version.data && <span className="muted version"> v{version.data.versionNumber}</span>}{" "}
            <span className={`badge ${current.status}`} aria-label={`Run status: ${current.status}`}>
              {current.status}
            </span>
          </h1>
          <div className="muted ws-meta">
            <span>
              Dataset:{" "}
              {datasetId === null ? (
                "none"
              ) : dataset.data ? (
                <Link to={`/datasets/${datasetId}`}>{dataset.data.name}</Link>
              ) : (
                "…"
              )}
            </span>
            <span>{countOf(rowCount, "row")}</span>
            <span>{current.graderPromptVersionId ? "graded" : "not graded"}</span>
            <span className={`sync ${syncState}`} role="status">
              {SYNC_LABELS[syncState]}
            </span>
            <label className="inline">
              Lead with
              <select
                value={metrics.data?.activeMetric ?? current.activeMetric}
                onChange={(event) => setMetric(event.target.value as ActiveMetric)}
              >
                {(Object.keys(METRIC_LABELS) as Array<ActiveMetric>).map((metric) => (
                  <option key={metric} value={metric}>
                    {METRIC_LABELS[metric]}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {current.error && <div className="cell-error">{current.error}</div>}
        </div>
        <div className="toolbar ws-actions">
          <Link to={`/prompts/${current.promptId}`}>Edit prompt</Link>
          <Link to={`/runs/compare?a=${current.id}`}>Compare with…</Link>
          <button type="button" onClick={rerunFailed} disabled={failed === 0 || busy !== null}>
            {busy === "rerun" ? "Re-running…" : `Re-run failed${failed > 0 ? ` (${failed})` : ""}`}
          </button>
          <button
            type="button"
            className="danger"
            onClick={cancel}
            disabled={!isActive(current) || busy !== null}
          >
            {busy === "cancel" ? "Canceling…" : "Cancel run"}
          </button>
        </div>
      </header>

      <RunSummary run={current} report={metrics.data} store={store} />

      <div className="grid-help muted">
        <kbd>↑</kbd>
        <kbd>↓</kbd>/<kbd>j</kbd>
        <kbd>k</kbd> row · <kbd>←</kbd>
        <kbd>→</kbd>/<kbd>h</kbd>
        <kbd>l</kbd> model · <kbd>p</kbd> pass · <kbd>f</kbd> fail · <kbd>u</kbd> unset · <kbd>Enter</kbd>{" "}
        details · <kbd>Esc</kbd> close
      </div>

      <div className={`ws-main${focus.drawerOpen && focused ? " with-drawer" : ""}`}>
        <RunGrid
          store={store}
          columns={columns}
          rowCount={rowCount}
          rows={rows}
          focus={focus}
          actions={actions}
        />
        {focus.drawerOpen && focused && (
          <CellDrawer
            runId={runId}
            cell={focused}
            title={`Row ${focused.rowIndex + 1} · ${columns[focus.col]?.label ?? ""}`}
            onClose={() => moveFocus((f) => ({ ...f, drawerOpen: false }))}
            onGrade={grade}
            onRerun={rerunCell}
          />
        )}
      </div>
    </div>
  )
}
