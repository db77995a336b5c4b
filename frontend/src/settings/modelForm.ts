// The model form's state (every input as the string it holds) and its translation into `models.create` /
// `models.update` payloads, checked by the server's own ModelConfigCreate schema so the two cannot disagree.
import { Either, ParseResult, Schema } from "effect"
import {
  ModelConfigCreate,
  type ModelConfig,
  type ModelConfigUpdate,
  type Provider
} from "../../../src/domain/Model.ts"
import type { ModelParams } from "../../../src/domain/ModelParams.ts"
import { paramsDraftOf, parseParams, type ParamErrors, type ParamsDraft } from "../prompts/promptDraft.ts"

export interface ModelDraft {
  readonly provider: Provider
  readonly model: string
  /** Blank: the model name. */
  readonly label: string
  readonly baseUrl: string
  readonly inputPricePerMTok: string
  readonly outputPricePerMTok: string
  readonly requestsPerMinute: string
  readonly tokensPerMinute: string
  readonly maxConcurrency: string
  readonly isDefault: boolean
  readonly params: ParamsDraft
}

export type DraftField = Exclude<keyof ModelDraft, "params" | "isDefault">

export interface ModelFormErrors {
  readonly fields: Partial<Record<DraftField, string>>
  readonly params: ParamErrors
}

export const PROVIDERS: ReadonlyArray<{ readonly value: Provider; readonly label: string }> = [
  { value: "openai-compatible", label: "OpenAI-compatible endpoint" },
  { value: "openai", label: "OpenAI" },
  { value: "anthropic", label: "Anthropic" },
  { value: "mock", label: "Mock (no network)" }
]

export const blankDraft = (provider: Provider = "openai-compatible"): ModelDraft => ({
  provider,
  model: "",
  label: "",
  baseUrl: "",
  inputPricePerMTok: "",
  outputPricePerMTok: "",
  requestsPerMinute: "",
  tokensPerMinute: "",
  maxConcurrency: "",
  isDefault: false,
  params: paramsDraftOf({})
})

const text = (value: number | null) => (value === null ? "" : String(value))

export const draftOf = (model: ModelConfig): ModelDraft => ({
  provider: model.provider,
  model: model.model,
  label: model.label,
  baseUrl: model.baseUrl ?? "",
  inputPricePerMTok: text(model.inputPricePerMTok),
  outputPricePerMTok: text(model.outputPricePerMTok),
  requestsPerMinute: text(model.requestsPerMinute),
  tokensPerMinute: text(model.tokensPerMinute),
  maxConcurrency: text(model.maxConcurrency),
  isDefault: model.isDefault,
  params: paramsDraftOf(model.params)
})

/** What each field accepts, said the way the form says it (the schema's bounds, in words). */
const MESSAGES: Record<DraftField, string> = {
  provider: "Pick a provider",
  model: "Required, up to 200 characters",
  label: "Up to 200 characters",
  baseUrl: "An http(s) URL, e.g. http://127.0.0.1:11434/v1",
  inputPricePerMTok: "A price from 0 to 100,000 dollars",
  outputPricePerMTok: "A price from 0 to 100,000 dollars",
  requestsPerMinute: "A whole number from 1 to 100,000,000",
  tokensPerMinute: "A whole number from 1 to 100,000,000",
  maxConcurrency: "A whole number from 1 to 10,000"
}

const NUMBER_FIELDS = [
  "inputPricePerMTok",
  "outputPricePerMTok",
  "requestsPerMinute",
  "tokensPerMinute",
  "maxConcurrency"
] as const

const decode = Schema.decodeUnknownEither(ModelConfigCreate, { errors: "all" })

/** A checked draft: the full create payload, with its parameters. */
export type ModelPayload = typeof ModelConfigCreate.Type

/**
 * The payload the draft stands for, or a message per invalid input. Blank prices are 0, blank limits are none,
 * a blank label is the model name; an openai-compatible endpoint needs its base URL.
 */
export const validateDraft = (draft: ModelDraft): Either.Either<ModelPayload, ModelFormErrors> => {
  const fields: Partial<Record<DraftField, string>> = {}
  const raw: Record<string, unknown> = {
    provider: draft.provider,
    model: draft.model,
    isDefault: draft.isDefault
  }
  if (draft.label.trim() !== "") raw["label"] = draft.label
  const baseUrl = draft.baseUrl.trim()
  if (baseUrl !== "") raw["baseUrl"] = baseUrl
  else if (draft.provider === "openai-compatible")
    fields.baseUrl = "An OpenAI-compatible endpoint needs its base URL"
  for (const key of NUMBER_FIELDS) {
    const value = draft[key].trim()
    if (value === "") continue
    const number = Number(value)
    if (Number.isNaN(number)) fields[key] = "Not a number"
    else raw[key] = number
  }
  const params = parseParams(draft.params)
  if (Either.isRight(params)) raw["params"] = params.right
  const decoded = decode(raw)
  if (Either.isLeft(decoded))
    for (const issue of ParseResult.ArrayFormatter.formatErrorSync(decoded.left)) {
      const key = String(issue.path[0]) as DraftField
      if (key in MESSAGES) fields[key] ??= MESSAGES[key]
    }
  const paramErrors = Either.isLeft(params) ? params.left : {}
  if (Object.keys(fields).length > 0 || Object.keys(paramErrors).length > 0 || Either.isLeft(decoded))
    return Either.left({ fields, params: paramErrors })
  return Either.right(decoded.right)
}

const sameParams = (a: ModelParams, b: ModelParams) => {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ModelParams>
  for (const key of keys) if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return false
  return true
}

/** The `models.update` changes that make `model` match a checked payload: only what differs (provider is fixed). */
export const changesOf = (model: ModelConfig, payload: ModelPayload): ModelConfigUpdate => {
  const changes: { -readonly [K in keyof ModelConfigUpdate]: ModelConfigUpdate[K] } = {}
  if (payload.model !== model.model) changes.model = payload.model
  const label = payload.label ?? payload.model
  if (label !== model.label) changes.label = label
  if (payload.baseUrl !== model.baseUrl) changes.baseUrl = payload.baseUrl
  if (!sameParams(payload.params, model.params)) changes.params = payload.params
  if (payload.inputPricePerMTok !== model.inputPricePerMTok)
    changes.inputPricePerMTok = payload.inputPricePerMTok
  if (payload.outputPricePerMTok !== model.outputPricePerMTok)
    changes.outputPricePerMTok = payload.outputPricePerMTok
  if (payload.requestsPerMinute !== model.requestsPerMinute)
    changes.requestsPerMinute = payload.requestsPerMinute
  if (payload.tokensPerMinute !== model.tokensPerMinute) changes.tokensPerMinute = payload.tokensPerMinute
  if (payload.maxConcurrency !== model.maxConcurrency) changes.maxConcurrency = payload.maxConcurrency
  if (payload.isDefault !== model.isDefault) changes.isDefault = payload.isDefault
  return changes
}
