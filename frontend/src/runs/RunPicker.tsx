import { DateTime } from "effect"
import type { PromptId, RunId } from "../../../src/domain/Ids.ts"
import type { Run } from "../../../src/domain/Run.ts"
import { datasetLabel, versionLabel, type RunLabels } from "./data.ts"
import { formatTime } from "./format.ts"

interface Props {
  readonly side: "A" | "B"
  readonly value: RunId | null
  /** The run picked on the other side: it cannot be picked here too. */
  readonly other: RunId | null
  /** Runs of this prompt (the other side's) are listed first. */
  readonly preferPromptId: PromptId | null
  readonly runs: ReadonlyArray<Run>
  readonly labels: RunLabels
  readonly onChange: (id: RunId) => void
}

const optionText = (labels: RunLabels, run: Run) => {
  const models = run.models.length === 1 ? run.models[0]!.label : `${run.models.length} models`
  const status = run.status === "completed" ? "" : ` · ${run.status}`
  return `${versionLabel(labels, run)} · ${datasetLabel(labels, run)} · ${models} · ${formatTime(run.createdAt)}${status}`
}

const newestFirst = (runs: ReadonlyArray<Run>) =>
  [...runs].sort((x, y) => DateTime.toEpochMillis(y.createdAt) - DateTime.toEpochMillis(x.createdAt))

export const RunPicker = ({ side, value, other, preferPromptId, runs, labels, onChange }: Props) => {
  const sorted = newestFirst(runs)
  const preferred = preferPromptId === null ? [] : sorted.filter((run) => run.promptId === preferPromptId)
  const rest = preferPromptId === null ? sorted : sorted.filter((run) => run.promptId !== preferPromptId)
  const preferredName = preferred[0] ? labels.versions.get(preferred[0].promptVersionId)?.name : undefined
  const option = (run: Run) => (
    <option key={run.id} value={run.id} disabled={run.id === other}>
      {optionText(labels, run)}
    </option>
  )
  return (
    <label className="run-picker">
      <span>
        <span className={`side-pill side-${side.toLowerCase()}`} aria-hidden="true">
          {side}
        </span>
        {side === "A" ? "Run A (baseline)" : "Run B"}
      </span>
      <select value={value ?? ""} onChange={(event) => onChange(event.target.value as RunId)}>
        {value === null && <option value="">Pick a run…</option>}
        {preferred.length > 0 && (
          <optgroup label={`Same prompt${preferredName ? `: ${preferredName}` : ""}`}>
            {preferred.map(option)}
          </optgroup>
        )}
        {preferred.length > 0 ? (
          <optgroup label="Other prompts">{rest.map(option)}</optgroup>
        ) : (
          rest.map(option)
        )}
      </select>
    </label>
  )
}
