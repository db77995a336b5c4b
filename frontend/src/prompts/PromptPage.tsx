// One prompt: edit its system text, template and default parameters (saved to the working draft), freeze
// versions, compare any two, rename, delete, and start a run with it.
import { Schema } from "effect"
import { useEffect, useMemo, useRef, useState } from "react"
import { PromptId, type PromptVersionId } from "../../../src/domain/Ids.ts"
import type { Prompt, PromptVersion } from "../../../src/domain/Prompt.ts"
import { GRADER_VARIABLES, type TemplateIssue } from "../../../src/domain/Template.ts"
import { ConfirmButton } from "../lib/ConfirmButton.tsx"
import { EditableName } from "../lib/EditableName.tsx"
import { formatAgo, formatDateTime } from "../lib/format.ts"
import { Link, navigate, useLeaveGuard } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { showToast } from "../lib/toast.tsx"
import { useAction } from "../lib/useAction.ts"
import { useQuery } from "../lib/useQuery.ts"
import { DiffView } from "./DiffView.tsx"
import { ParamsForm } from "./ParamsForm.tsx"
import {
  changesOf,
  draftOf,
  isDirty,
  templateIssuesOf,
  versionLabel,
  type Draft,
  type TemplatePart
} from "./promptDraft.ts"
import { TemplateEditor } from "./TemplateEditor.tsx"
import { analyzeTemplate } from "./templateTokens.ts"
import "./prompts.css"

const isPromptId = Schema.is(PromptId)

export const PromptPage = ({ id }: { readonly id: string }) =>
  isPromptId(id) ? (
    <PromptEditor id={id} />
  ) : (
    <div className="page">
      <h1>Prompt not found</h1>
      <p>
        <code>{id}</code> is not a prompt id. <Link to="/prompts">Back to prompts</Link>
      </p>
    </div>
  )

const PromptEditor = ({ id }: { readonly id: PromptId }) => {
  const api = useApi()
  const prompt = useQuery(`prompt:${id}`, () => api.call((client) => client.prompts.get({ id })))
  if (prompt.data === undefined)
    return (
      <div className="page">
        <p className="muted">{prompt.loading ? "Loading prompt…" : (prompt.error?.message ?? "")}</p>
        {!prompt.loading && <Link to="/prompts">Back to prompts</Link>}
      </div>
    )
  return <LoadedPrompt prompt={prompt.data} onSaved={(saved) => prompt.setData(() => saved)} />
}

const NO_ISSUES: Record<TemplatePart, ReadonlyArray<TemplateIssue>> = { system: [], template: [] }

const LoadedPrompt = ({
  prompt,
  onSaved
}: {
  readonly prompt: Prompt
  readonly onSaved: (prompt: Prompt) => void
}) => {
  const api = useApi()
  const { busy, run } = useAction()
  const [draft, setDraft] = useState<Draft>(() => draftOf(prompt))
  // the server's verdict on the last save, per part, until that part is edited again
  const [serverIssues, setServerIssues] = useState(NO_ISSUES)
  const versions = useQuery(`versions:${prompt.id}`, () =>
    api.call((client) => client.prompts.versions({ id: prompt.id }))
  )
  const pair = useVersionPair(versions.data)

  const { changes, paramErrors } = changesOf(prompt, draft)
  const dirty = isDirty(prompt, draft)
  const hasParamErrors = Object.keys(paramErrors).length > 0
  const system = useMemo(() => analyzeTemplate(draft.systemText), [draft.systemText])
  const template = useMemo(() => analyzeTemplate(draft.userTemplate), [draft.userTemplate])
  const placeholders = Array.from(new Set([...system.placeholders, ...template.placeholders]))

  const save = async (): Promise<boolean> => {
    if (hasParamErrors) {
      showToast("error", "Fix the highlighted parameters before saving.")
      return false
    }
    if (Object.keys(changes).length === 0) return true
    const saved = await run(
      () => api.call((client) => client.prompts.update({ id: prompt.id, changes })),
      (error) => setServerIssues(templateIssuesOf(error))
    )
    if (saved === undefined) return false
    setServerIssues(NO_ISSUES)
    onSaved(saved)
    return true
  }

  // Ctrl/Cmd+S saves from anywhere on the page; the listener always calls the latest `save`
  const saveRef = useRef(save)
  saveRef.current = save
  const busyRef = useRef(busy)
  busyRef.current = busy
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "s") {
        event.preventDefault()
        if (!busyRef.current) void saveRef.current()
      }
    }
    window.addEventListener("keydown", onKey)
    return () => window.removeEventListener("keydown", onKey)
  }, [])

  // leaving the page with unsaved edits asks first: in the app (a link, back), and reload or closing the tab
  useLeaveGuard(dirty, "This prompt has unsaved changes. Leave without saving them?")
  useEffect(() => {
    if (!dirty) return
    const onBeforeUnload = (event: BeforeUnloadEvent) => event.preventDefault()
    window.addEventListener("beforeunload", onBeforeUnload)
    return () => window.removeEventListener("beforeunload", onBeforeUnload)
  }, [dirty])

  const freeze = async () => {
    if (dirty && !(await save())) return
    const known = new Set((versions.data ?? []).map((version) => version.id))
    const version = await run(() => api.call((client) => client.prompts.freeze({ id: prompt.id })))
    if (version === undefined) return
    showToast(
      "success",
      known.has(version.id)
        ? `Nothing changed since ${versionLabel(version)}: no new version.`
        : `Frozen as ${versionLabel(version)}.`
    )
    await versions.reload()
    const fresh = await run(() => api.call((client) => client.prompts.get({ id: prompt.id })))
    if (fresh) onSaved(fresh)
  }

  const rename = async (name: string) => {
    const renamed = await run(() =>
      api.call((client) => client.prompts.update({ id: prompt.id, changes: { name } }))
    )
    if (renamed === undefined) return false
    onSaved(renamed)
    return true
  }

  const remove = async () => {
    const done = await run(async () => {
      await api.call((client) => client.prompts.delete({ id: prompt.id }))
      return true
    })
    if (!done) return
    showToast("success", `Deleted “${prompt.name}”.`)
    // its unsaved edits went with it
    navigate("/prompts", { force: true })
  }

  const edit = (part: TemplatePart, changes: Partial<Draft>) => {
    setDraft((previous) => ({ ...previous, ...changes }))
    setServerIssues((previous) => (previous[part].length === 0 ? previous : { ...previous, [part]: [] }))
  }

  const issuesOf = (part: TemplatePart, live: ReadonlyArray<TemplateIssue>) =>
    serverIssues[part].length > 0
      ? { issues: serverIssues[part], issuesSource: "server" as const }
      : { issues: live, issuesSource: "live" as const }

  return (
    <div className="page prompt-page">
      <nav className="pr-crumbs" aria-label="Breadcrumb">
        <Link to="/prompts">Prompts</Link> <span className="muted">/</span>
      </nav>
      <header className="prompt-head">
        <EditableName name={prompt.name} noun="prompt" disabled={busy} onRename={rename} />
        <span className={`badge pr-type-${prompt.type}`}>{prompt.type}</span>
        <span className={dirty ? "pr-save-state pr-unsaved" : "pr-save-state"} role="status">
          {dirty
            ? "Unsaved changes"
            : prompt.latestVersion
              ? `Saved · latest ${versionLabel(prompt.latestVersion)}`
              : "Saved"}
        </span>
        <div className="pr-spacer" />
        <Link className="button" to={`/runs?promptId=${prompt.id}`}>
          Run history
        </Link>
        <Link className="button" to={`/runs/new?promptId=${prompt.id}`}>
          Run this prompt
        </Link>
        <button type="button" disabled={busy || hasParamErrors} onClick={() => void freeze()}>
          Freeze version
        </button>
        <button
          type="button"
          className="primary"
          disabled={busy || !dirty || hasParamErrors}
          title="Save (Ctrl+S / ⌘S)"
          onClick={() => void save()}
        >
          Save
        </button>
        <ConfirmButton
          label="Delete"
          question={
            <>
              Delete <strong>{prompt.name}</strong> and all its versions? This cannot be undone.
            </>
          }
          disabled={busy}
          onConfirm={() => void remove()}
        />
      </header>

      <div className="prompt-grid">
        <div className="stack prompt-main">
          <TemplateEditor
            id="prompt-system"
            label="System prompt"
            value={draft.systemText}
            placeholder="Optional instructions for the model."
            minRows={4}
            onChange={(systemText) => edit("system", { systemText })}
            {...issuesOf("system", system.issues)}
          />
          <TemplateEditor
            id="prompt-template"
            label="Template"
            value={draft.userTemplate}
            placeholder={
              prompt.type === "grader"
                ? "Grade this answer: {{output}}"
                : "The user message, with {{column}} placeholders filled from each dataset row."
            }
            minRows={8}
            onChange={(userTemplate) => edit("template", { userTemplate })}
            {...issuesOf("template", template.issues)}
          />
          <p className="muted pr-hint">
            Write <code>{"{{ name }}"}</code> for a value from each dataset row, <code>{"\\{{"}</code> for a
            literal <code>{"{{"}</code>. Ctrl+S / ⌘S saves.
          </p>
          {pair.from !== null && pair.to !== null && (
            <DiffSection promptId={prompt.id} from={pair.from} to={pair.to} />
          )}
        </div>

        <aside className="stack prompt-side">
          <section className="card" aria-labelledby="placeholders-title">
            <h2 id="placeholders-title">Placeholders</h2>
            <PlaceholderList type={prompt.type} names={placeholders} />
          </section>
          <section className="card" aria-labelledby="params-title">
            <h2 id="params-title">Default parameters</h2>
            <ParamsForm
              value={draft.params}
              errors={paramErrors}
              onChange={(params) => setDraft((previous) => ({ ...previous, params }))}
            />
          </section>
          <VersionsCard
            versions={versions.data}
            loading={versions.loading}
            from={pair.from}
            to={pair.to}
            onPick={pair.pick}
          />
        </aside>
      </div>
    </div>
  )
}

const PlaceholderList = ({
  type,
  names
}: {
  readonly type: Prompt["type"]
  readonly names: ReadonlyArray<string>
}) => {
  const graderVariables: ReadonlyArray<string> = GRADER_VARIABLES
  return (
    <>
      {names.length === 0 ? (
        <p className="muted">None yet. Add one with {"{{ column }}"}.</p>
      ) : (
        <ul className="pr-placeholder-list" aria-label="Placeholders">
          {names.map((name) => (
            <li key={name}>
              <code className="pr-ph-chip">{name}</code>
              <span className="muted">
                {type === "grader" && graderVariables.includes(name) ? "grader variable" : "dataset column"}
              </span>
            </li>
          ))}
        </ul>
      )}
      {type === "grader" && (
        <p className="muted pr-hint">
          Graders can also use <code>{"{{output}}"}</code>, <code>{"{{raw_output}}"}</code> and{" "}
          <code>{"{{input}}"}</code>.
        </p>
      )}
    </>
  )
}

/** The two versions being compared: the user's picks, else the latest against the one before it. */
const useVersionPair = (versions: ReadonlyArray<PromptVersion> | undefined) => {
  const [picked, setPicked] = useState<{ from?: PromptVersionId; to?: PromptVersionId }>({})
  const from = picked.from ?? versions?.[1]?.id ?? null
  const to = picked.to ?? versions?.[0]?.id ?? null
  return {
    from,
    to,
    pick: (changes: { from?: PromptVersionId; to?: PromptVersionId }) =>
      setPicked((p) => ({ ...p, ...changes }))
  }
}

const VersionsCard = ({
  versions,
  loading,
  from,
  to,
  onPick
}: {
  readonly versions: ReadonlyArray<PromptVersion> | undefined
  readonly loading: boolean
  readonly from: PromptVersionId | null
  readonly to: PromptVersionId | null
  readonly onPick: (changes: { from?: PromptVersionId; to?: PromptVersionId }) => void
}) => {
  const label = (version: PromptVersion) =>
    `${versionLabel(version)} · ${version.name} · ${formatDateTime(version.createdAt)}`
  const picker = (which: "from" | "to", value: PromptVersionId | null) => (
    <label>
      {which === "from" ? "Compare" : "with"}
      <select
        aria-label={which === "from" ? "Diff from version" : "Diff to version"}
        value={value ?? ""}
        onChange={(event) => onPick({ [which]: event.target.value as PromptVersionId })}
      >
        {(versions ?? []).map((version) => (
          <option key={version.id} value={version.id}>
            {label(version)}
          </option>
        ))}
      </select>
    </label>
  )
  return (
    <section className="card" aria-labelledby="versions-title">
      <h2 id="versions-title">Versions</h2>
      {versions === undefined ? (
        <p className="muted">{loading ? "Loading…" : "Versions could not be loaded."}</p>
      ) : versions.length === 0 ? (
        <p className="muted">
          No versions yet. Freeze one, or start a run (a run freezes the draft it uses).
        </p>
      ) : (
        <ol className="pr-version-list" aria-label="Version history">
          {versions.map((version) => (
            <li
              key={version.id}
              className={version.id === from || version.id === to ? "pr-in-diff" : undefined}
            >
              <strong>{versionLabel(version)}</strong>
              <span className="pr-version-name" title={version.name}>
                {version.name}
              </span>
              {version.runId && (
                <Link to={`/runs/${version.runId}`} className="badge" title="Frozen when this run started">
                  run
                </Link>
              )}
              <span className="muted" title={formatDateTime(version.createdAt)}>
                {formatAgo(version.createdAt)}
              </span>
            </li>
          ))}
        </ol>
      )}
      {versions !== undefined && versions.length >= 2 && (
        <div className="pr-diff-pick">
          {picker("from", from)}
          {picker("to", to)}
        </div>
      )}
    </section>
  )
}

const DiffSection = ({
  promptId,
  from,
  to
}: {
  readonly promptId: PromptId
  readonly from: PromptVersionId
  readonly to: PromptVersionId
}) => {
  const api = useApi()
  const diff = useQuery(from !== to ? `diff:${promptId}:${from}:${to}` : null, () =>
    api.call((client) => client.prompts.diff({ id: promptId, from, to }))
  )
  return (
    <section className="card pr-diff-card" aria-labelledby="diff-title">
      <h2 id="diff-title">
        Diff{" "}
        {diff.data && (
          <span className="muted">
            v{diff.data.from.versionNumber} → v{diff.data.to.versionNumber}
          </span>
        )}
      </h2>
      {from === to ? (
        <p className="muted">Pick two different versions to compare.</p>
      ) : diff.data ? (
        <DiffView diff={diff.data} />
      ) : (
        <p className="muted">{diff.loading ? "Comparing…" : "The diff could not be loaded."}</p>
      )}
    </section>
  )
}
