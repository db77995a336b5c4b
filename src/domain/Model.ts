import { Schema } from "effect"
import { ModelConfigId } from "./Ids.ts"
import { ModelParams } from "./ModelParams.ts"

export const Provider = Schema.Literal("mock", "openai", "anthropic", "openai-compatible")
export type Provider = typeof Provider.Type

/** Providers that take an API key. */
export const KeyedProvider = Schema.Literal("openai", "anthropic", "openai-compatible")
export type KeyedProvider = typeof KeyedProvider.Type

const Price = Schema.Number.pipe(Schema.between(0, 100_000)).annotations({
  description: "US dollars per million tokens"
})
const PerMinute = Schema.Number.pipe(Schema.int(), Schema.between(1, 100_000_000))

const BaseUrl = Schema.String.pipe(
  Schema.maxLength(2_000),
  Schema.filter((value) => {
    try {
      const url = new URL(value)
      return url.protocol === "http:" || url.protocol === "https:" || "must be an http(s) URL"
    } catch {
      return "must be an http(s) URL"
    }
  })
)

export class ModelConfig extends Schema.Class<ModelConfig>("ModelConfig")({
  id: ModelConfigId,
  provider: Provider,
  model: Schema.String,
  label: Schema.String,
  baseUrl: Schema.NullOr(Schema.String),
  params: ModelParams,
  inputPricePerMTok: Schema.Number,
  outputPricePerMTok: Schema.Number,
  requestsPerMinute: Schema.NullOr(Schema.Int),
  tokensPerMinute: Schema.NullOr(Schema.Int),
  maxConcurrency: Schema.NullOr(Schema.Int),
  isDefault: Schema.Boolean,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

const fields = {
  model: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200)),
  label: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200)),
  baseUrl: Schema.NullOr(BaseUrl),
  params: ModelParams,
  inputPricePerMTok: Price,
  outputPricePerMTok: Price,
  requestsPerMinute: Schema.NullOr(PerMinute),
  tokensPerMinute: Schema.NullOr(PerMinute),
  maxConcurrency: Schema.NullOr(Schema.Number.pipe(Schema.int(), Schema.between(1, 10_000))),
  isDefault: Schema.Boolean
}

export const ModelConfigCreate = Schema.Struct({
  provider: Provider,
  model: fields.model,
  label: Schema.optional(fields.label),
  baseUrl: Schema.optionalWith(fields.baseUrl, { default: () => null }),
  params: Schema.optionalWith(fields.params, { default: () => ({}) }),
  inputPricePerMTok: Schema.optionalWith(fields.inputPricePerMTok, { default: () => 0 }),
  outputPricePerMTok: Schema.optionalWith(fields.outputPricePerMTok, { default: () => 0 }),
  requestsPerMinute: Schema.optionalWith(fields.requestsPerMinute, { default: () => null }),
  tokensPerMinute: Schema.optionalWith(fields.tokensPerMinute, { default: () => null }),
  maxConcurrency: Schema.optionalWith(fields.maxConcurrency, { default: () => null }),
  isDefault: Schema.optionalWith(fields.isDefault, { default: () => false })
}).annotations({ identifier: "ModelConfigCreate", parseOptions: { onExcessProperty: "error" } })
export type ModelConfigCreate = typeof ModelConfigCreate.Type

export const ModelConfigUpdate = Schema.Struct({
  model: Schema.optional(fields.model),
  label: Schema.optional(fields.label),
  baseUrl: Schema.optional(fields.baseUrl),
  params: Schema.optional(fields.params),
  inputPricePerMTok: Schema.optional(fields.inputPricePerMTok),
  outputPricePerMTok: Schema.optional(fields.outputPricePerMTok),
  requestsPerMinute: Schema.optional(fields.requestsPerMinute),
  tokensPerMinute: Schema.optional(fields.tokensPerMinute),
  maxConcurrency: Schema.optional(fields.maxConcurrency),
  isDefault: Schema.optional(fields.isDefault)
}).annotations({ identifier: "ModelConfigUpdate", parseOptions: { onExcessProperty: "error" } })
export type ModelConfigUpdate = typeof ModelConfigUpdate.Type

export const ApiKeyInfo = Schema.Struct({
  provider: KeyedProvider,
  /** The last characters of the key, e.g. "…wxyz"; the key itself never leaves the server. */
  masked: Schema.String,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}).annotations({ identifier: "ApiKeyInfo" })
export type ApiKeyInfo = typeof ApiKeyInfo.Type

export const ApiKeyPut = Schema.Struct({
  key: Schema.Redacted(Schema.String.pipe(Schema.minLength(8), Schema.maxLength(500)))
}).annotations({ identifier: "ApiKeyPut", parseOptions: { onExcessProperty: "error" } })
export type ApiKeyPut = typeof ApiKeyPut.Type
