import { Schema } from "effect"
import { PromptId, PromptVersionId, RunId } from "./Ids.ts"
import { ModelParams } from "./ModelParams.ts"

export const PromptType = Schema.Literal("generator", "grader")
export type PromptType = typeof PromptType.Type

const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200)).annotations({
  description: "1–200 characters, trimmed"
})
const Text = Schema.String.pipe(Schema.maxLength(200_000))

/** The frozen part of a prompt: what a version hashes. */
export const PromptBody = Schema.Struct({
  systemText: Schema.String,
  userTemplate: Schema.String,
  defaultParams: ModelParams
})
export type PromptBody = typeof PromptBody.Type

export const VersionRef = Schema.Struct({
  id: PromptVersionId,
  lineage: Schema.Int,
  versionNumber: Schema.Int
})
export type VersionRef = typeof VersionRef.Type

/** A prompt as it is being edited: the working draft, with its placeholders. */
export class Prompt extends Schema.Class<Prompt>("Prompt")({
  id: PromptId,
  name: Schema.String,
  type: PromptType,
  systemText: Schema.String,
  userTemplate: Schema.String,
  defaultParams: ModelParams,
  placeholders: Schema.Array(Schema.String),
  lineage: Schema.Int,
  latestVersion: Schema.NullOr(VersionRef),
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

export const PromptCreate = Schema.Struct({
  name: Name,
  type: PromptType,
  systemText: Schema.optionalWith(Text, { default: () => "" }),
  userTemplate: Schema.optionalWith(Text, { default: () => "" }),
  defaultParams: Schema.optionalWith(ModelParams, { default: () => ({}) })
}).annotations({ identifier: "PromptCreate", parseOptions: { onExcessProperty: "error" } })
export type PromptCreate = typeof PromptCreate.Type

/** Rename and edit in one: absent fields are left as they are. */
export const PromptUpdate = Schema.Struct({
  name: Schema.optional(Name),
  systemText: Schema.optional(Text),
  userTemplate: Schema.optional(Text),
  defaultParams: Schema.optional(ModelParams)
}).annotations({ identifier: "PromptUpdate", parseOptions: { onExcessProperty: "error" } })
export type PromptUpdate = typeof PromptUpdate.Type

/** An immutable snapshot, frozen when a run uses the prompt (or on request). */
export class PromptVersion extends Schema.Class<PromptVersion>("PromptVersion")({
  id: PromptVersionId,
  promptId: PromptId,
  lineage: Schema.Int,
  versionNumber: Schema.Int,
  name: Schema.String,
  body: PromptBody,
  hash: Schema.String,
  runId: Schema.NullOr(RunId),
  createdAt: Schema.DateTimeUtc
}) {}

export const DiffLine = Schema.Struct({
  op: Schema.Literal("equal", "insert", "delete"),
  text: Schema.String
})

export const ParamChange = Schema.Struct({
  key: Schema.String,
  from: Schema.optional(Schema.Unknown),
  to: Schema.optional(Schema.Unknown)
})

export const PromptVersionDiff = Schema.Struct({
  from: VersionRef,
  to: VersionRef,
  systemText: Schema.Array(DiffLine),
  userTemplate: Schema.Array(DiffLine),
  params: Schema.Array(ParamChange),
  stats: Schema.Struct({ added: Schema.Int, removed: Schema.Int })
}).annotations({ identifier: "PromptVersionDiff" })
export type PromptVersionDiff = typeof PromptVersionDiff.Type
