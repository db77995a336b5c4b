// What a run needs before it can start, checked in the browser the way the server checks it (Runs.create), so
// the Run button says why it is blocked instead of failing.
import { MAX_MODELS_PER_RUN } from "../../../src/domain/Run.ts"
import { GRADER_VARIABLES } from "../../../src/domain/Template.ts"

export interface PlaceholderCoverage {
  readonly name: string
  /** Where the value comes from, or null when nothing provides it. */
  readonly source: "column" | "grader variable" | null
}

/** Each placeholder of a prompt against the dataset's columns (and, for a grader, the grader variables). */
export const coverageOf = (
  placeholders: ReadonlyArray<string>,
  headers: ReadonlyArray<string>,
  kind: "generator" | "grader"
): ReadonlyArray<PlaceholderCoverage> => {
  const columns = new Set(headers)
  const variables = new Set<string>(kind === "grader" ? GRADER_VARIABLES : [])
  return placeholders.map((name) => ({
    name,
    source: columns.has(name) ? "column" : variables.has(name) ? "grader variable" : null
  }))
}

export interface RunDraft {
  readonly prompt: { readonly name: string; readonly placeholders: ReadonlyArray<string> } | undefined
  /** undefined: none picked; null: the run has no dataset. */
  readonly dataset: { readonly headers: ReadonlyArray<string>; readonly rowCount: number } | null | undefined
  readonly modelCount: number
  readonly grader: { readonly placeholders: ReadonlyArray<string> } | null
}

/** Why the run cannot start yet, one sentence per reason; empty when it can. */
export const blockersOf = (draft: RunDraft): ReadonlyArray<string> => {
  const reasons: Array<string> = []
  if (draft.prompt === undefined) reasons.push("Pick a prompt.")
  if (draft.dataset === undefined) reasons.push("Pick a dataset.")
  if (draft.modelCount === 0) reasons.push("Pick at least one model.")
  if (draft.modelCount > MAX_MODELS_PER_RUN) {
    reasons.push(`Pick at most ${MAX_MODELS_PER_RUN} models (${draft.modelCount} are picked).`)
  }
  const headers = draft.dataset?.headers ?? []
  if (draft.dataset?.rowCount === 0) reasons.push("The dataset has no rows.")
  if (draft.prompt !== undefined && draft.dataset !== undefined) {
    const missing = coverageOf(draft.prompt.placeholders, headers, "generator").filter(
      (c) => c.source === null
    )
    if (missing.length > 0) {
      reasons.push(
        draft.dataset === null
          ? `The prompt has placeholders (${missing.map((c) => c.name).join(", ")}): pick a dataset with those columns.`
          : `The dataset has no column for ${missing.map((c) => c.name).join(", ")}: pick another dataset or edit the prompt.`
      )
    }
  }
  if (draft.grader !== null && draft.dataset !== undefined) {
    const missing = coverageOf(draft.grader.placeholders, headers, "grader").filter((c) => c.source === null)
    if (missing.length > 0) {
      reasons.push(
        `The grader uses ${missing.map((c) => c.name).join(", ")}, which is neither a dataset column nor a grader variable.`
      )
    }
  }
  return reasons
}
