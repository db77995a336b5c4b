// The prompt editor's state: what the user typed (parameters as the strings in their inputs) against the saved
// prompt, turned into the `prompts.update` changes, checked by the server's own ModelParams schema.
import { Either, ParseResult, Schema } from "effect"
import { ModelParams } from "../../../src/domain/ModelParams.ts"
import type { Prompt, PromptUpdate } from "../../../src/domain/Prompt.ts"
import type { TemplateIssue } from "../../../src/domain/Template.ts"
import type { ApiError } from "../lib/errors.ts"

export type NumberParam =
  "temperature" | "max_tokens" | "top_p" | "top_k" | "presence_penalty" | "frequency_penalty" | "seed"

export interface ParamField {
  readonly key: NumberParam
  readonly label: string
  readonly hint: string
  readonly step: string
}

/** The number parameters in the order the form shows them; `stop` has its own input. */
export const PARAM_FIELDS: ReadonlyArray<ParamField> = [
  { key: "temperature", label: "Temperature", hint: "0–2", step: "0.1" },
  { key: "max_tokens", label: "Max tokens", hint: "1–1,000,000", step: "1" },
  { key: "top_p", label: "Top p", hint: "0–1", step: "0.05" },
  { key: "top_k", label: "Top k", hint: "1–1,000", step: "1" },
  { key: "presence_penalty", label: "Presence penalty", hint: "−2–2", step: "0.1" },
  { key: "frequency_penalty", label: "Frequency penalty", hint: "−2–2", step: "0.1" },
  { key: "seed", label: "Seed", hint: "integer", step: "1" }
]

export type ParamsDraft = Readonly<Record<NumberParam, string>> & {
  /** Stop sequences, one per line. */
  readonly stop: string
}

export interface Draft {
  readonly systemText: string
  readonly userTemplate: string
  readonly params: ParamsDraft
}

export const paramsDraftOf = (params: ModelParams): ParamsDraft => {
  const numbers = Object.fromEntries(
    PARAM_FIELDS.map(({ key }) => [key, params[key] === undefined ? "" : String(params[key])])
  ) as Record<NumberParam, string>
  return { ...numbers, stop: (params.stop ?? []).join("\n") }
}

export const draftOf = (prompt: Prompt): Draft => ({
  systemText: prompt.systemText,
  userTemplate: prompt.userTemplate,
  params: paramsDraftOf(prompt.defaultParams)
})

/** Field → message, for the inputs that do not hold a valid value. */
export type ParamErrors = Partial<Record<NumberParam | "stop", string>>

const decodeParams = Schema.decodeUnknownEither(ModelParams, { errors: "all" })

/** The parameters the inputs hold (blank = not set), or a message per invalid input. */
export const parseParams = (draft: ParamsDraft): Either.Either<ModelParams, ParamErrors> => {
  const raw: Record<string, unknown> = {}
  const errors: Record<string, string> = {}
  for (const { key } of PARAM_FIELDS) {
    const text = draft[key].trim()
    if (text === "") continue
    const value = Number(text)
    if (Number.isNaN(value)) errors[key] = "Not a number"
    else raw[key] = value
  }
  const stop = draft.stop.split("\n").filter((line) => line !== "")
  if (stop.length > 0) raw["stop"] = stop
  const decoded = decodeParams(raw)
  if (Either.isLeft(decoded))
    for (const issue of ParseResult.ArrayFormatter.formatErrorSync(decoded.left)) {
      const key = String(issue.path[0])
      errors[key] ??= key === "stop" ? "At most 4 stop sequences" : issue.message
    }
  return Object.keys(errors).length > 0 ? Either.left(errors) : Either.right(Either.getOrThrow(decoded))
}

/** Same keys, same values (the order of keys does not matter; stop sequences keep theirs). */
const sameParams = (a: ModelParams, b: ModelParams) => {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ModelParams>
  for (const key of keys) if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return false
  return true
}

export interface DraftChanges {
  /** What `prompts.update` needs to make the saved prompt match the draft; empty when nothing changed. */
  readonly changes: PromptUpdate
  readonly paramErrors: ParamErrors
}

export const changesOf = (prompt: Prompt, draft: Draft): DraftChanges => {
  const params = parseParams(draft.params)
  const changes: { -readonly [K in keyof PromptUpdate]: PromptUpdate[K] } = {}
  if (draft.systemText !== prompt.systemText) changes.systemText = draft.systemText
  if (draft.userTemplate !== prompt.userTemplate) changes.userTemplate = draft.userTemplate
  if (Either.isRight(params) && !sameParams(params.right, prompt.defaultParams))
    changes.defaultParams = params.right
  return { changes, paramErrors: Either.isLeft(params) ? params.left : {} }
}

/** Unsaved: a text differs, or a parameter input differs from what the saved value shows. */
export const isDirty = (prompt: Prompt, draft: Draft) => {
  const saved = paramsDraftOf(prompt.defaultParams)
  const params = parseParams(draft.params)
  const paramsChanged = Either.isRight(params)
    ? !sameParams(params.right, prompt.defaultParams)
    : Object.keys(saved).some(
        (key) => saved[key as keyof ParamsDraft] !== draft.params[key as keyof ParamsDraft]
      )
  return draft.systemText !== prompt.systemText || draft.userTemplate !== prompt.userTemplate || paramsChanged
}

/** Versions are numbered within a lineage (a rename starts a new one at 1), so the label is the number. */
export const versionLabel = (version: { readonly versionNumber: number }) => `v${version.versionNumber}`

export type TemplatePart = "system" | "template"

const isIssue = (value: unknown): value is TemplateIssue =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as TemplateIssue).line === "number" &&
  typeof (value as TemplateIssue).column === "number" &&
  typeof (value as TemplateIssue).message === "string"

/** The template issues of an `invalid_template` failure, by the part they are in; empty for any other failure. */
export const templateIssuesOf = (error: ApiError): Record<TemplatePart, ReadonlyArray<TemplateIssue>> => {
  const result: Record<TemplatePart, Array<TemplateIssue>> = { system: [], template: [] }
  if (error.code !== "invalid_template") return result
  const issues = (error.details as { issues?: unknown } | undefined)?.issues
  if (!Array.isArray(issues)) return result
  for (const issue of issues)
    if (isIssue(issue)) result[issue.part === "system" ? "system" : "template"].push(issue)
  return result
}
