// Every prompt, newest edit first, filtered by type; and the form that creates one.
import { useState } from "react"
import type { Prompt, PromptType } from "../../../src/domain/Prompt.ts"
import { formatAgo, formatDateTime } from "../lib/format.ts"
import { Link, navigate, setSearch, useLocation } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { useAction } from "../lib/useAction.ts"
import { useQuery } from "../lib/useQuery.ts"
import { versionLabel } from "./promptDraft.ts"
import "./prompts.css"

const FILTERS: ReadonlyArray<{ readonly type: PromptType | null; readonly label: string }> = [
  { type: null, label: "All" },
  { type: "generator", label: "Generators" },
  { type: "grader", label: "Graders" }
]

/** Placeholders shown in a row before the rest collapse into "+N". */
const SHOWN_PLACEHOLDERS = 4

export const PromptsPage = () => {
  const api = useApi()
  const { search } = useLocation()
  const param = search.get("type")
  const type: PromptType | null = param === "generator" || param === "grader" ? param : null
  // pages after the first, loaded by "Load more"; reset when the filter changes
  const [more, setMore] = useState<{
    type: PromptType | null
    items: ReadonlyArray<Prompt>
    cursor: string | null
  }>()
  const first = useQuery(`prompts:${type ?? "all"}`, () =>
    api.call((client) => client.prompts.list(type === null ? {} : { type }))
  )
  const { busy, run } = useAction()
  const extra = more?.type === type ? more : undefined
  const items = first.data ? [...first.data.items, ...(extra?.items ?? [])] : undefined
  const cursor = extra ? extra.cursor : (first.data?.nextCursor ?? null)

  const loadMore = async () => {
    if (cursor === null) return
    const page = await run(() =>
      api.call((client) => client.prompts.list(type === null ? { cursor } : { cursor, type }))
    )
    if (page) setMore({ type, items: [...(extra?.items ?? []), ...page.items], cursor: page.nextCursor })
  }

  return (
    <div className="page">
      <div className="toolbar pr-list-head">
        <h1 className="prompts-title">Prompts</h1>
        <div className="pr-spacer" />
        <div className="pr-segmented" role="group" aria-label="Show">
          {FILTERS.map((filter) => (
            <button
              key={filter.label}
              type="button"
              aria-pressed={filter.type === type}
              onClick={() => setSearch({ type: filter.type })}
            >
              {filter.label}
            </button>
          ))}
        </div>
      </div>

      <CreatePrompt />

      {items === undefined ? (
        <p className="muted">{first.loading ? "Loading prompts…" : "Prompts could not be loaded."}</p>
      ) : items.length === 0 ? (
        <div className="empty card">
          {type === null
            ? "No prompts yet. Create one above: a generator writes outputs, a grader judges them."
            : `No ${type} prompts yet.`}
        </div>
      ) : (
        <table className="list prompt-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Placeholders</th>
              <th>Latest version</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {items.map((prompt) => (
              <tr key={prompt.id}>
                <td>
                  <Link to={`/prompts/${prompt.id}`} className="pr-row-link">
                    {prompt.name}
                  </Link>
                </td>
                <td>
                  <span className={`badge pr-type-${prompt.type}`}>{prompt.type}</span>
                </td>
                <td>
                  {prompt.placeholders.length === 0 ? (
                    <span className="muted">—</span>
                  ) : (
                    <span className="pr-chips">
                      {prompt.placeholders.slice(0, SHOWN_PLACEHOLDERS).map((name) => (
                        <code key={name} className="pr-ph-chip">
                          {name}
                        </code>
                      ))}
                      {prompt.placeholders.length > SHOWN_PLACEHOLDERS && (
                        <span
                          className="muted"
                          title={prompt.placeholders.slice(SHOWN_PLACEHOLDERS).join(", ")}
                        >
                          +{prompt.placeholders.length - SHOWN_PLACEHOLDERS}
                        </span>
                      )}
                    </span>
                  )}
                </td>
                <td>
                  {prompt.latestVersion ? (
                    versionLabel(prompt.latestVersion)
                  ) : (
                    <span className="muted">draft only</span>
                  )}
                </td>
                <td title={formatDateTime(prompt.updatedAt)} className="pr-nowrap">
                  {formatAgo(prompt.updatedAt)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor !== null && items !== undefined && (
        <div className="pr-load-more">
          <button type="button" disabled={busy} onClick={() => void loadMore()}>
            Load more
          </button>
        </div>
      )}
    </div>
  )
}

const CreatePrompt = () => {
  const api = useApi()
  const { busy, run } = useAction()
  const [name, setName] = useState("")
  const [type, setType] = useState<PromptType>("generator")
  const create = async () => {
    const prompt = await run(() => api.call((client) => client.prompts.create({ name: name.trim(), type })))
    if (prompt) navigate(`/prompts/${prompt.id}`)
  }
  return (
    <form
      className="card pr-create-form"
      aria-label="New prompt"
      onSubmit={(event) => {
        event.preventDefault()
        void create()
      }}
    >
      <label className="pr-grow">
        Name
        <input
          id="new-prompt-name"
          value={name}
          maxLength={200}
          placeholder="e.g. Support reply, Answer grader"
          onChange={(event) => setName(event.target.value)}
        />
      </label>
      <div className="pr-field">
        <label htmlFor="new-prompt-type">Type</label>
        <select
          id="new-prompt-type"
          value={type}
          onChange={(event) => setType(event.target.value as PromptType)}
        >
          <option value="generator">Generator</option>
          <option value="grader">Grader</option>
        </select>
      </div>
      <button type="submit" className="primary" disabled={busy || name.trim() === ""}>
        Create prompt
      </button>
    </form>
  )
}
