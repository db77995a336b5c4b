import { Schema } from "effect"
import { useEffect, useState } from "react"
import { PromptId, type RunId } from "../../../src/domain/Ids.ts"
import type { Page } from "../../../src/domain/Page.ts"
import type { Run } from "../../../src/domain/Run.ts"
import { Link, navigate, setSearch, useLocation } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { toastError } from "../lib/toast.tsx"
import { useQuery } from "../lib/useQuery.ts"
import { datasetLabel, loadAllPrompts, versionLabel } from "./data.ts"
import { formatTime, settledCount } from "./format.ts"
import { useRunLabels, useRunMetrics } from "./hooks.ts"
import { compareHref, isActive, LeadMetric, RunStatusBadge } from "./RunBits.tsx"
import "./runs.css"

const PAGE_SIZE = 50
const REFRESH_MS = 2000
const isPromptId = Schema.is(PromptId)

export const RunsPage = () => {
  const api = useApi()
  const { search } = useLocation()
  const requested = search.get("promptId")
  const promptId = requested !== null && isPromptId(requested) ? requested : null

  const prompts = useQuery("prompts", () => loadAllPrompts(api))
  const runs = useQuery<Page<Run>>(`runs:${promptId ?? "all"}`, () =>
    api.call((client) => client.runs.list({ limit: PAGE_SIZE, ...(promptId ? { promptId } : {}) }))
  )
  const items = runs.data?.items ?? []
  const labels = useRunLabels(items)
  const metrics = useRunMetrics(items)
  const [selected, setSelected] = useState<ReadonlyArray<Run>>([])
  const [loadingMore, setLoadingMore] = useState(false)

  // runs still in progress are re-read every couple of seconds, so status and progress stay current
  const active = items.filter(isActive).map((run) => run.id)
  const activeKey = active.join(",")
  const { setData } = runs
  useEffect(() => {
    if (activeKey === "") return
    const ids = activeKey.split(",") as Array<RunId>
    const timer = setInterval(() => {
      Promise.all(ids.map((id) => api.call((client) => client.runs.get({ id })))).then((fresh) => {
        const byId = new Map(fresh.map((run) => [run.id, run]))
        setData((page) => page && { ...page, items: page.items.map((run) => byId.get(run.id) ?? run) })
      }, toastError)
    }, REFRESH_MS)
    return () => clearInterval(timer)
  }, [api, activeKey, setData])

  const loadMore = async () => {
    const cursor = runs.data?.nextCursor
    if (!cursor) return
    setLoadingMore(true)
    try {
      const page = await api.call((client) =>
        client.runs.list({ limit: PAGE_SIZE, cursor, ...(promptId ? { promptId } : {}) })
      )
      setData(
        (previous) => previous && { items: [...previous.items, ...page.items], nextCursor: page.nextCursor }
      )
    } catch (error) {
      toastError(error)
    } finally {
      setLoadingMore(false)
    }
  }

  const toggle = (run: Run) =>
    setSelected((current) =>
      current.some((other) => other.id === run.id)
        ? current.filter((other) => other.id !== run.id)
        : [...current, run].slice(-2)
    )

  const prompt = prompts.data?.find((candidate) => candidate.id === promptId)
  const [first, second] = selected

  return (
    <div className="page runs-screen">
      <div className="toolbar">
        <h1>{prompt ? `Runs of ${prompt.name}` : "Runs"}</h1>
        <div className="spacer" />
        <label className="inline-label">
          Prompt
          <select
            value={promptId ?? ""}
            onChange={(event) =>
              setSearch({ promptId: event.target.value === "" ? null : event.target.value })
            }
          >
            <option value="">All prompts</option>
            {[...(prompts.data ?? [])]
              .sort((x, y) => x.name.localeCompare(y.name))
              .map((candidate) => (
                <option key={candidate.id} value={candidate.id}>
                  {candidate.name}
                  {candidate.type === "grader" ? " (grader)" : ""}
                </option>
              ))}
          </select>
        </label>
        <button
          type="button"
          className="primary"
          disabled={second === undefined}
          title={second === undefined ? "Tick two runs to compare them" : undefined}
          onClick={() => first && second && navigate(compareHref(first, second))}
        >
          Compare{selected.length > 0 ? ` (${selected.length}/2)` : ""}
        </button>
      </div>
      {requested !== null && promptId === null && (
        <p className="notice warn">
          The link names no valid prompt; showing all runs. <Link to="/runs">Clear the filter</Link>
        </p>
      )}

      {runs.loading && items.length === 0 ? (
        <p className="muted">Loading runs…</p>
      ) : items.length === 0 ? (
        <div className="card empty">
          {promptId ? "This prompt has no runs yet." : "No runs yet."} <Link to="/runs/new">Start a run</Link>
        </div>
      ) : (
        <table className="list runs-table">
          <thead>
            <tr>
              <th className="select-col">
                <span className="visually-hidden">Select</span>
              </th>
              <th>Prompt</th>
              <th>Dataset</th>
              <th>Models</th>
              <th>Status</th>
              <th>Progress</th>
              <th title="Each run's active metric, as its page leads with it">Lead metric</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {items.map((run) => {
              const label = versionLabel(labels, run)
              const report = metrics.get(run.id)
              const checked = selected.some((other) => other.id === run.id)
              return (
                <tr key={run.id} className={checked ? "selected" : undefined}>
                  <td className="select-col">
                    <input
                      type="checkbox"
                      checked={checked}
                      onChange={() => toggle(run)}
                      aria-label={`Select run ${label}, ${formatTime(run.createdAt)}`}
                    />
                  </td>
                  <td>
                    <Link to={`/runs/${run.id}`} className="run-link">
                      {label}
                    </Link>
                    {run.graderPromptVersionId !== null && <span className="tag">graded</span>}
                  </td>
                  <td>{datasetLabel(labels, run)}</td>
                  <td>
                    <div className="chips">
                      {run.models.map((model) => (
                        <span key={model.id} className="chip" title={`${model.provider} · ${model.model}`}>
                          {model.label}
                        </span>
                      ))}
                    </div>
                  </td>
                  <td>
                    <RunStatusBadge run={run} />
                  </td>
                  <td>
                    <Progress run={run} />
                  </td>
                  <td className="num">
                    {report ? (
                      <LeadMetric metric={report.activeMetric} metrics={report.overall} />
                    ) : (
                      <span className="muted">…</span>
                    )}
                  </td>
                  <td className="nowrap muted">{formatTime(run.createdAt)}</td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
      {runs.data?.nextCursor && (
        <div className="load-more">
          <button type="button" onClick={() => void loadMore()} disabled={loadingMore}>
            {loadingMore ? "Loading…" : "Load more runs"}
          </button>
        </div>
      )}
    </div>
  )
}

const Progress = ({ run }: { readonly run: Run }) => {
  const { counts } = run
  const done = settledCount(counts)
  const share = counts.total === 0 ? 0 : done / counts.total
  return (
    <div
      className="progress"
      title={`${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.canceled} canceled, ${counts.queued + counts.running} to go`}
    >
      <span className="num">
        {done}/{counts.total}
      </span>
      {counts.failed > 0 && <span className="failed-count">{counts.failed} failed</span>}
      <div className="bar" aria-hidden="true">
        <div style={{ width: `${(share * 100).toFixed(1)}%` }} />
      </div>
    </div>
  )
}
