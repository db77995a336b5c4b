import { useMemo, useState } from "react"
import type { Dataset } from "../../../src/domain/Dataset.ts"
import type { ModelConfigId, PromptId } from "../../../src/domain/Ids.ts"
import type { Page } from "../../../src/domain/Page.ts"
import type { Prompt } from "../../../src/domain/Prompt.ts"
import { MAX_MODELS_PER_RUN } from "../../../src/domain/Run.ts"
import { Link, navigate, setSearch, useLocation } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { toastError } from "../lib/toast.tsx"
import { useQuery } from "../lib/useQuery.ts"
import { blockersOf, coverageOf, type PlaceholderCoverage } from "./coverage.ts"
import { countOf } from "./format.ts"
import "./workspace.css"

/** Every page of a listing (pickers show all of a user's prompts and datasets). */
const allPages = async <A,>(load: (cursor: string | undefined) => Promise<Page<A>>) => {
  const items: Array<A> = []
  let cursor: string | undefined
  do {
    const page = await load(cursor)
    items.push(...page.items)
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  return items
}

const NO_DATASET = "none"

const CoverageList = ({ title, items }: { title: string; items: ReadonlyArray<PlaceholderCoverage> }) => (
  <div className="coverage">
    <h3>{title}</h3>
    {items.length === 0 ? (
      <p className="muted">No placeholders.</p>
    ) : (
      <ul aria-label={title}>
        {items.map((item) => (
          <li key={item.name} className={item.source === null ? "missing" : "covered"}>
            <code>{`{{${item.name}}}`}</code>
            <span>
              {item.source === null ? "missing" : item.source === "column" ? "covered" : "grader variable"}
            </span>
          </li>
        ))}
      </ul>
    )}
  </div>
)

export const NewRunPage = () => {
  const api = useApi()
  const { search } = useLocation()
  const promptId = (search.get("promptId") ?? "") as PromptId | ""
  const [datasetChoice, setDatasetChoice] = useState<string>("")
  const [modelIds, setModelIds] = useState<ReadonlyArray<ModelConfigId>>([])
  const [graderId, setGraderId] = useState<string>("")
  const [graderModelId, setGraderModelId] = useState<string>("")
  const [starting, setStarting] = useState(false)

  const generators = useQuery("generators", () =>
    allPages((cursor) =>
      api.call((c) => c.prompts.list({ type: "generator", limit: 200, ...(cursor ? { cursor } : {}) }))
    )
  )
  const graders = useQuery("graders", () =>
    allPages((cursor) =>
      api.call((c) => c.prompts.list({ type: "grader", limit: 200, ...(cursor ? { cursor } : {}) }))
    )
  )
  const datasets = useQuery("datasets", () =>
    allPages((cursor) => api.call((c) => c.datasets.list({ limit: 200, ...(cursor ? { cursor } : {}) })))
  )
  const models = useQuery("models", () => api.call((c) => c.models.list({})))

  const prompt: Prompt | undefined = generators.data?.find((p) => p.id === promptId)
  const grader: Prompt | null = graders.data?.find((p) => p.id === graderId) ?? null
  const dataset: Dataset | null | undefined =
    datasetChoice === NO_DATASET ? null : datasets.data?.find((d) => d.id === datasetChoice)
  const headers = dataset?.headers ?? []

  const blockers = useMemo(
    () => blockersOf({ prompt, dataset, modelCount: modelIds.length, grader }),
    [prompt, dataset, modelIds.length, grader]
  )

  const toggleModel = (id: ModelConfigId) =>
    setModelIds((current) => (current.includes(id) ? current.filter((m) => m !== id) : [...current, id]))

  const start = async () => {
    if (prompt === undefined || dataset === undefined || blockers.length > 0) return
    setStarting(true)
    try {
      const run = await api.call((c) =>
        c.runs.create({
          promptId: prompt.id,
          datasetId: dataset === null ? null : dataset.id,
          modelIds,
          graderPromptId: grader === null ? null : grader.id,
          graderModelId: grader === null || graderModelId === "" ? null : (graderModelId as ModelConfigId)
        })
      )
      navigate(`/runs/${run.id}`)
    } catch (error) {
      toastError(error)
      setStarting(false)
    }
  }

  const loading = generators.loading || graders.loading || datasets.loading || models.loading

  return (
    <div className="page new-run">
      <h1>New run</h1>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault()
          void start()
        }}
      >
        <section className="card stack">
          <div className="new-run-pickers">
            <div className="field">
              <label htmlFor="run-prompt">Prompt</label>
              <select
                id="run-prompt"
                value={promptId}
                onChange={(event) => setSearch({ promptId: event.target.value || null })}
                disabled={generators.loading}
              >
                <option value="">{generators.loading ? "Loading…" : "Choose a prompt"}</option>
                {generators.data?.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="run-dataset">Dataset</label>
              <select
                id="run-dataset"
                value={datasetChoice}
                onChange={(event) => setDatasetChoice(event.target.value)}
                disabled={datasets.loading}
              >
                <option value="">{datasets.loading ? "Loading…" : "Choose a dataset"}</option>
                <option value={NO_DATASET}>No dataset (run the prompt once)</option>
                {datasets.data?.map((d) => (
                  <option key={d.id} value={d.id}>
                    {d.name} ({countOf(d.rowCount, "row")})
                  </option>
                ))}
              </select>
            </div>
          </div>
          {generators.data?.length === 0 && (
            <p className="muted">
              No generator prompt yet. <Link to="/prompts">Create one</Link> first.
            </p>
          )}
          {datasets.data?.length === 0 && (
            <p className="muted">
              No dataset yet. <Link to="/datasets">Upload a CSV, JSON or JSONL file</Link>.
            </p>
          )}
          {prompt !== undefined && dataset !== undefined && (
            <div className="coverage-row">
              <CoverageList
                title="Prompt placeholders"
                items={coverageOf(prompt.placeholders, headers, "generator")}
              />
              {grader !== null && (
                <CoverageList
                  title="Grader placeholders"
                  items={coverageOf(grader.placeholders, headers, "grader")}
                />
              )}
              <div className="coverage">
                <h3>Dataset columns</h3>
                {dataset === null ? (
                  <p className="muted">No dataset: the prompt runs once per model.</p>
                ) : (
                  <p className="columns">
                    {dataset.headers.map((h) => (
                      <code key={h}>{h}</code>
                    ))}
                  </p>
                )}
              </div>
            </div>
          )}
        </section>

        <section className="card">
          <fieldset className="models-picker">
            <legend>
              Models{" "}
              <span className="muted">
                (1–{MAX_MODELS_PER_RUN}; {modelIds.length} picked)
              </span>
            </legend>
            {models.data?.length === 0 && (
              <p className="muted">
                No models. <Link to="/settings">Add one in Settings</Link>.
              </p>
            )}
            <table className="list">
              <thead>
                <tr>
                  <th aria-label="Picked" />
                  <th>Label</th>
                  <th>Provider</th>
                  <th>Model</th>
                </tr>
              </thead>
              <tbody>
                {models.data?.map((m) => {
                  const picked = modelIds.includes(m.id)
                  return (
                    <tr key={m.id} className={picked ? "picked" : undefined}>
                      <td>
                        <input
                          type="checkbox"
                          id={`model-${m.id}`}
                          checked={picked}
                          disabled={!picked && modelIds.length >= MAX_MODELS_PER_RUN}
                          onChange={() => toggleModel(m.id)}
                        />
                      </td>
                      <td>
                        <label htmlFor={`model-${m.id}`} className="inline-label">
                          {m.label}
                        </label>
                      </td>
                      <td>
                        <span className="badge">{m.provider}</span>
                      </td>
                      <td>
                        <code>{m.model}</code>
                      </td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </fieldset>
        </section>

        <section className="card">
          <h2 className="section-title">
            Grading <span className="muted">(optional)</span>
          </h2>
          <div className="new-run-pickers">
            <div className="field">
              <label htmlFor="run-grader">Grader prompt</label>
              <select id="run-grader" value={graderId} onChange={(event) => setGraderId(event.target.value)}>
                <option value="">No grader</option>
                {graders.data?.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="run-grader-model">Grader model</label>
              <select
                id="run-grader-model"
                value={graderModelId}
                onChange={(event) => setGraderModelId(event.target.value)}
                disabled={grader === null}
              >
                <option value="">Each cell graded by its own model</option>
                {models.data?.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.label} ({m.provider}/{m.model})
                  </option>
                ))}
              </select>
            </div>
          </div>
        </section>

        <div className="run-bar">
          <button type="submit" className="primary" disabled={loading || starting || blockers.length > 0}>
            {starting ? "Starting…" : "Run"}
          </button>
          {!loading && blockers.length > 0 && (
            <ul className="blockers" aria-label="Why the run cannot start">
              {blockers.map((reason) => (
                <li key={reason}>{reason}</li>
              ))}
            </ul>
          )}
          {prompt !== undefined && dataset !== undefined && dataset !== null && blockers.length === 0 && (
            <span className="muted">
              {countOf(dataset.rowCount * modelIds.length, "cell")} ({countOf(dataset.rowCount, "row")} ×{" "}
              {countOf(modelIds.length, "model")})
            </span>
          )}
          {prompt !== undefined && <Link to={`/prompts/${prompt.id}`}>Edit prompt</Link>}
        </div>
      </form>
    </div>
  )
}
