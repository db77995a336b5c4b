import { Schema } from "effect"

/**
 * Sampling parameters, for a prompt's defaults and a model's settings. Unknown keys are rejected, never
 * silently dropped.
 */
export const ModelParams = Schema.Struct({
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  max_tokens: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1, 1_000_000))),
  top_p: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  top_k: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1, 1_000))),
  stop: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1))).pipe(Schema.maxItems(4))),
  presence_penalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  frequency_penalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  seed: Schema.optional(Schema.Number.pipe(Schema.int()))
}).annotations({ identifier: "ModelParams", parseOptions: { onExcessProperty: "error" } })
export type ModelParams = typeof ModelParams.Type

/** A prompt's parameters override the model's, which override the provider's defaults. */
export const mergeParams = (model: ModelParams, prompt: ModelParams): ModelParams => ({ ...model, ...prompt })
