import { Schema } from "effect"
import { useMemo, useState } from "react"
import { RunId } from "../../../src/domain/Ids.ts"
import type { Run } from "../../../src/domain/Run.ts"
import { Link, setSearch, useLocation } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { useQuery } from "../lib/useQuery.ts"
import { compareRuns, filterPairs, type PairFilter, type RunComparison } from "./compare.ts"
import { CompareMetrics } from "./CompareMetrics.tsx"
import { DifferencesTable } from "./DifferencesTable.tsx"
import { datasetLabel, loadComparison, versionLabel, type RunLabels } from "./data.ts"
import { formatTime } from "./format.ts"
import { useRunLabels } from "./hooks.ts"
import { isActive, RunStatusBadge } from "./RunBits.tsx"
import { RunPicker } from "./RunPicker.tsx"
import "./runs.css"

const isRunId = Schema.is(RunId)
const PICKER_RUNS = 100

export const ComparePage = () => {
  const api = useApi()
  const { search } = useLocation()
  const rawA = search.get("a")
  const rawB = search.get("b")
  const a = rawA !== null && isRunId(rawA) ? rawA : null
  const b = rawB !== null && isRunId(rawB) ? rawB : null

  const runA = useQuery(a && `run:${a}`, () => api.call((client) => client.runs.get({ id: a! })))
  const runB = useQuery(b && `run:${b}`, () => api.call((client) => client.runs.get({ id: b! })))
  const recent = useQuery("runs:recent", () => api.call((client) => client.runs.list({ limit: PICKER_RUNS })))
  // runs of the prompts already picked come first in the pickers, so fetch them even when they are not recent
  const promptA = runA.data?.promptId
  const promptB = runB.data?.promptId
  const ofPromptA = useQuery(promptA ? `runs:${promptA}` : null, () =>
    api.call((client) => client.runs.list({ limit: PICKER_RUNS, promptId: promptA! }))
  )
  const ofPromptB = useQuery(promptB && promptB !== promptA ? `runs:${promptB}` : null, () =>
    api.call((client) => client.runs.list({ limit: PICKER_RUNS, promptId: promptB! }))
  )
  const candidates = useMemo(() => {
    const byId = new Map<string, Run>()
    for (const list of [ofPromptA.data?.items, ofPromptB.data?.items, recent.data?.items])
      for (const run of list ?? []) byId.set(run.id, run)
    for (const run of [runA.data, runB.data]) if (run) byId.set(run.id, run)
    return [...byId.values()]
  }, [ofPromptA.data, ofPromptB.data, recent.data, runA.data, runB.data])
  const labels = useRunLabels(candidates)

  const [loadedCells, setLoadedCells] = useState(0)
  const data = useQuery(a && b && a !== b ? `compare:${a}:${b}` : null, () => {
    setLoadedCells(0)
    return loadComparison(api, a!, b!, setLoadedCells)
  })
  const expectedCells = (runA.data?.counts.total ?? 0) + (runB.data?.counts.total ?? 0)
  const comparison = useMemo(() => data.data && compareRuns(data.data.a, data.data.b), [data.data])

  const invalid = (rawA !== null && a === null) || (rawB !== null && b === null)

  return (
    <div className="page page-wide runs-screen compare-page">
      <div className="toolbar">
        <h1>Compare runs</h1>
        <div className="spacer" />
        <Link to="/runs">All runs</Link>
      </div>
      <div className="pickers card">
        <RunPicker
          side="A"
          value={a}
          other={b}
          preferPromptId={promptB ?? null}
          runs={candidates}
          labels={labels}
          onChange={(id) => setSearch({ a: id })}
        />
        <button
          type="button"
          className="swap"
          aria-label="Swap A and B"
          title="Swap A and B"
          disabled={a === null && b === null}
          onClick={() => setSearch({ a: b, b: a })}
        >
          ⇄
        </button>
        <RunPicker
          side="B"
          value={b}
          other={a}
          preferPromptId={promptA ?? null}
          runs={candidates}
          labels={labels}
          onChange={(id) => setSearch({ b: id })}
        />
      </div>
      {invalid && (
        <p className="notice warn">The link names a run id that is not valid; pick the runs again.</p>
      )}
      {a !== null && a === b && <p className="notice warn">Pick two different runs.</p>}
      {(a === null || b === null) && !invalid && (
        <div className="card empty">Pick run A (the baseline) and run B to compare them cell by cell.</div>
      )}
      {data.loading && !data.data && (
        <p className="muted" role="status">
          Loading both runs&apos; cells… {loadedCells.toLocaleString("en-US")}
          {expectedCells > 0 && ` of ${expectedCells.toLocaleString("en-US")}`}
        </p>
      )}
      {data.data && comparison && (
        <Comparison
          runA={data.data.a.run}
          runB={data.data.b.run}
          comparison={comparison}
          labels={labels}
          reloading={data.loading}
          onReload={() => void data.reload()}
        />
      )}
    </div>
  )
}

interface ComparisonProps {
  readonly runA: Run
  readonly runB: Run
  readonly comparison: RunComparison
  readonly labels: RunLabels
  readonly reloading: boolean
  readonly onReload: () => void
}

const Comparison = ({ runA, runB, comparison, labels, reloading, onReload }: ComparisonProps) => {
  const [filter, setFilter] = useState<PairFilter>("all")
  const { totals } = comparison
  const live = isActive(runA) || isActive(runB)
  const changedShare = totals.compared === 0 ? null : totals.changedOutputs / totals.compared
  const counts: Record<PairFilter, number> = {
    all: filterPairs(comparison.pairs, "all").length,
    changed: totals.changedOutputs,
    to_fail: totals.toFail,
    to_pass: totals.toPass
  }
  return (
    <>
      <div className="sides">
        <RunCard side="A" run={runA} labels={labels} />
        <RunCard side="B" run={runB} labels={labels} />
      </div>
      <Notices runA={runA} runB={runB} comparison={comparison} labels={labels} />
      {live && (
        <p className="notice">
          {isActive(runA) && isActive(runB) ? "Both runs are" : `Run ${isActive(runA) ? "A" : "B"} is`} still
          running: {totals.pending} cell pairs are not compared yet.{" "}
          <button type="button" className="link" onClick={onReload} disabled={reloading}>
            {reloading ? "Refreshing…" : "Refresh"}
          </button>
        </p>
      )}
      <div className="tiles" role="group" aria-label="Summary">
        <Tile
          label="Cells compared"
          value={totals.compared}
          hint={`${comparison.models.length} model${comparison.models.length === 1 ? "" : "s"} in common`}
          pressed={filter === "all"}
          onClick={() => setFilter("all")}
        />
        <Tile
          label="Changed outputs"
          value={totals.changedOutputs}
          hint={changedShare === null ? "" : `${(changedShare * 100).toFixed(1)}% of compared`}
          pressed={filter === "changed"}
          onClick={() => setFilter("changed")}
        />
        <Tile
          label="Pass → fail"
          value={totals.toFail}
          tone="fail"
          hint="regressions"
          pressed={filter === "to_fail"}
          onClick={() => setFilter("to_fail")}
        />
        <Tile
          label="Fail → pass"
          value={totals.toPass}
          tone="pass"
          hint="fixes"
          pressed={filter === "to_pass"}
          onClick={() => setFilter("to_pass")}
        />
      </div>
      <CompareMetrics comparison={comparison} />
      <DifferencesTable comparison={comparison} filter={filter} counts={counts} onFilter={setFilter} />
    </>
  )
}

const RunCard = ({
  side,
  run,
  labels
}: {
  readonly side: "A" | "B"
  readonly run: Run
  readonly labels: RunLabels
}) => (
  <div className="card run-card">
    <div className="run-card-head">
      <span className={`side-pill side-${side.toLowerCase()}`}>{side}</span>
      <Link to={`/runs/${run.id}`} className="run-link">
        {versionLabel(labels, run)}
      </Link>
      <RunStatusBadge run={run} />
    </div>
    <dl>
      <dt>Dataset</dt>
      <dd>{datasetLabel(labels, run)}</dd>
      <dt>Models</dt>
      <dd>{run.models.map((model) => model.label).join(", ")}</dd>
      <dt>Created</dt>
      <dd>{formatTime(run.createdAt)}</dd>
    </dl>
  </div>
)

const Notices = ({ runA, runB, comparison, labels }: Omit<ComparisonProps, "reloading" | "onReload">) => {
  const notes: Array<{ readonly text: string; readonly warn: boolean }> = []
  if (!comparison.samePrompt)
    notes.push({
      text: `The runs are of different prompts (${versionLabel(labels, runA)} and ${versionLabel(labels, runB)}).`,
      warn: true
    })
  else if (comparison.samePromptVersion)
    notes.push({
      text: "Both runs used the same prompt version: differences come from the models or the dataset.",
      warn: false
    })
  if (!comparison.sameDataset) {
    const extra =
      comparison.totals.onlyInA + comparison.totals.onlyInB > 0
        ? ` ${comparison.totals.onlyInA} cell pairs are only in A and ${comparison.totals.onlyInB} only in B.`
        : ""
    notes.push({
      text: `The runs use different datasets (${datasetLabel(labels, runA)} and ${datasetLabel(labels, runB)}): rows are matched by their index only.${extra}`,
      warn: true
    })
  }
  const only = [
    ...comparison.modelsOnlyInA.map((model) => `${model.label} (only in A)`),
    ...comparison.modelsOnlyInB.map((model) => `${model.label} (only in B)`)
  ]
  if (comparison.models.length === 0)
    notes.push({ text: "The runs have no model in common: there is nothing to compare.", warn: true })
  else if (only.length > 0)
    notes.push({
      text: `Only the models both runs used are compared; left out: ${only.join(", ")}.`,
      warn: true
    })
  return (
    <>
      {notes.map((note) => (
        <p key={note.text} className={note.warn ? "notice warn" : "notice"}>
          {note.text}
        </p>
      ))}
    </>
  )
}

interface TileProps {
  readonly label: string
  readonly value: number
  readonly hint: string
  readonly tone?: "pass" | "fail"
  readonly pressed: boolean
  readonly onClick: () => void
}

const Tile = ({ label, value, hint, tone, pressed, onClick }: TileProps) => (
  <button
    type="button"
    className={`tile${tone && value > 0 ? ` tile-${tone}` : ""}`}
    aria-pressed={pressed}
    aria-label={`${label}: ${value}`}
    onClick={onClick}
  >
    <span className="tile-label">{label}</span>
    <span className="tile-value num">{value.toLocaleString("en-US")}</span>
    <span className="tile-hint">{hint}</span>
  </button>
)
