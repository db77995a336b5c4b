import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { RpcAuthentication } from "./Auth.ts"
import { GradeRpcs } from "./Grade.ts"
import { CellDetail, CellEventId, CellPage, CellPageLimit, RunEventMessage } from "./Cell.ts"
import { Dataset, DatasetPreview, DatasetRename, PreviewParams } from "./Dataset.ts"
import { BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable } from "./Errors.ts"
import { DatasetId, ModelConfigId, PromptId, PromptVersionId, RunCellId, RunId } from "./Ids.ts"
import {
  ApiKeyInfo,
  ApiKeyPut,
  KeyedProvider,
  ModelConfig,
  ModelConfigCreate,
  ModelConfigUpdate
} from "./Model.ts"
import { Page, PageParams } from "./Page.ts"
import { Prompt, PromptCreate, PromptType, PromptUpdate, PromptVersion, PromptVersionDiff } from "./Prompt.ts"
import { Run, RunCreate } from "./Run.ts"

/** Every expected failure an RPC can answer with (the same errors REST sends as envelopes). */
const Failure = Schema.Union(BadRequest, Unprocessable, NotFound, Conflict, PayloadTooLarge)

const op = <const Tag extends string, P extends Schema.Struct.Fields, S extends Schema.Schema.Any>(
  tag: Tag,
  payload: P,
  success: S
) => Rpc.make(tag, { payload, success, error: Failure })

const byId = <A, I extends string>(id: Schema.Schema<A, I>) => ({ id })

/**
 * A run's cells and live events. `runs.events` streams the run's events from the start or `after` an id, then
 * live, in id order, with a `KeepAlive` message on an idle stream; resubscribe with `after` = the last id seen
 * if the stream ends.
 */
export class CellRpcs extends RpcGroup.make(
  op(
    "cells.list",
    {
      runId: RunId,
      updatedSince: Schema.optional(Schema.DateTimeUtc),
      cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(400))),
      limit: Schema.optional(CellPageLimit)
    },
    CellPage
  ),
  op("cells.get", { runId: RunId, cellId: RunCellId }, CellDetail),
  Rpc.make("runs.events", {
    payload: { id: RunId, after: Schema.optional(CellEventId) },
    success: RunEventMessage,
    error: Failure,
    stream: true
  })
).middleware(RpcAuthentication) {}

/** Prompts, datasets, models, keys and runs. */
export class CoreRpcs extends RpcGroup.make(
  op("prompts.list", { ...PageParams.fields, type: Schema.optional(PromptType) }, Page(Prompt)),
  op("prompts.create", PromptCreate.fields, Prompt),
  op("prompts.get", byId(PromptId), Prompt),
  op("prompts.update", { id: PromptId, changes: PromptUpdate }, Prompt),
  op("prompts.delete", byId(PromptId), Schema.Void),
  op("prompts.versions", byId(PromptId), Schema.Array(PromptVersion)),
  op("prompts.freeze", byId(PromptId), PromptVersion),
  op("prompts.version", { id: PromptId, versionId: PromptVersionId }, PromptVersion),
  op("prompts.diff", { id: PromptId, from: PromptVersionId, to: PromptVersionId }, PromptVersionDiff),

  op("datasets.list", PageParams.fields, Page(Dataset)),
  op("datasets.get", byId(DatasetId), Dataset),
  op("datasets.rename", { id: DatasetId, ...DatasetRename.fields }, Dataset),
  op("datasets.delete", byId(DatasetId), Schema.Void),
  op("datasets.preview", { id: DatasetId, ...PreviewParams.fields }, DatasetPreview),

  op("models.list", {}, Schema.Array(ModelConfig)),
  op("models.create", ModelConfigCreate.fields, ModelConfig),
  op("models.seedDefaults", {}, Schema.Array(ModelConfig)),
  op("models.get", byId(ModelConfigId), ModelConfig),
  op("models.update", { id: ModelConfigId, changes: ModelConfigUpdate }, ModelConfig),
  op("models.delete", byId(ModelConfigId), Schema.Void),

  op("apiKeys.list", {}, Schema.Array(ApiKeyInfo)),
  op("apiKeys.put", { provider: KeyedProvider, ...ApiKeyPut.fields }, ApiKeyInfo),
  op("apiKeys.delete", { provider: KeyedProvider }, Schema.Void),

  op("runs.create", RunCreate.fields, Run),
  op("runs.list", { ...PageParams.fields, promptId: Schema.optional(PromptId) }, Page(Run)),
  op("runs.get", byId(RunId), Run),
  op("runs.cancel", byId(RunId), Run),
  op("runs.rerunFailed", byId(RunId), Run),
  op("runs.rerunCell", { id: RunId, cellId: RunCellId }, Run)
).middleware(RpcAuthentication) {}

/** What the frontend calls, over `/rpc` (HTTP, NDJSON). Dataset upload is REST only (a file, not a message). */
export const AssayRpcs = CoreRpcs.merge(CellRpcs).merge(GradeRpcs)
