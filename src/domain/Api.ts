import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "./Auth.ts"
import { GradesApi } from "./Grade.ts"
import { CellDetail, CellEventId, CellListParams, CellPage, StreamAuthentication } from "./Cell.ts"
import { Dataset, DatasetPreview, DatasetRename, PreviewParams } from "./Dataset.ts"
import {
  BadRequestResponse,
  ConflictResponse,
  NotFoundResponse,
  PayloadTooLargeResponse,
  UnprocessableResponse
} from "./Errors.ts"
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

const Created = { status: 201 } as const
const NoContent = HttpApiSchema.Empty(204)

const idPath = <A, I extends string>(id: Schema.Schema<A, I>) => Schema.Struct({ id })

export class PromptsApi extends HttpApiGroup.make("prompts")
  .add(
    HttpApiEndpoint.get("list", "/prompts")
      .setUrlParams(Schema.Struct({ ...PageParams.fields, type: Schema.optional(PromptType) }))
      .addSuccess(Page(Prompt))
  )
  .add(
    HttpApiEndpoint.post("create", "/prompts")
      .setPayload(PromptCreate)
      .addSuccess(Prompt, Created)
      .addError(UnprocessableResponse)
  )
  .add(HttpApiEndpoint.get("get", "/prompts/:id").setPath(idPath(PromptId)).addSuccess(Prompt))
  .add(
    HttpApiEndpoint.patch("update", "/prompts/:id")
      .setPath(idPath(PromptId))
      .setPayload(PromptUpdate)
      .addSuccess(Prompt)
      .addError(UnprocessableResponse)
  )
  .add(
    HttpApiEndpoint.del("delete", "/prompts/:id")
      .setPath(idPath(PromptId))
      .addSuccess(NoContent)
      .addError(ConflictResponse)
  )
  .add(
    HttpApiEndpoint.get("versions", "/prompts/:id/versions")
      .setPath(idPath(PromptId))
      .addSuccess(Schema.Array(PromptVersion))
  )
  .add(
    HttpApiEndpoint.post("freeze", "/prompts/:id/versions")
      .setPath(idPath(PromptId))
      .addSuccess(PromptVersion)
      .addError(UnprocessableResponse)
      .annotate(
        OpenApi.Description,
        "Freeze the working draft as a version. The same body always gives the same version (no duplicates)."
      )
  )
  .add(
    HttpApiEndpoint.get("version", "/prompts/:id/versions/:versionId")
      .setPath(Schema.Struct({ id: PromptId, versionId: PromptVersionId }))
      .addSuccess(PromptVersion)
  )
  .add(
    HttpApiEndpoint.get("diff", "/prompts/:id/diff")
      .setPath(idPath(PromptId))
      .setUrlParams(Schema.Struct({ from: PromptVersionId, to: PromptVersionId }))
      .addSuccess(PromptVersionDiff)
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export const DatasetUpload = HttpApiSchema.MultipartStream(
  Schema.Struct({ file: Schema.Unknown, name: Schema.optional(Schema.String) })
).annotations({
  description: "multipart/form-data: `file` (CSV, JSON array of objects, or JSONL) and optional `name`"
})

export class DatasetsApi extends HttpApiGroup.make("datasets")
  .add(HttpApiEndpoint.get("list", "/datasets").setUrlParams(PageParams).addSuccess(Page(Dataset)))
  .add(
    HttpApiEndpoint.post("upload", "/datasets")
      .setPayload(DatasetUpload)
      .addSuccess(Dataset, Created)
      .addError(PayloadTooLargeResponse)
  )
  .add(HttpApiEndpoint.get("get", "/datasets/:id").setPath(idPath(DatasetId)).addSuccess(Dataset))
  .add(
    HttpApiEndpoint.patch("rename", "/datasets/:id")
      .setPath(idPath(DatasetId))
      .setPayload(DatasetRename)
      .addSuccess(Dataset)
  )
  .add(
    HttpApiEndpoint.del("delete", "/datasets/:id")
      .setPath(idPath(DatasetId))
      .addSuccess(NoContent)
      .addError(ConflictResponse)
  )
  .add(
    HttpApiEndpoint.get("preview", "/datasets/:id/preview")
      .setPath(idPath(DatasetId))
      .setUrlParams(PreviewParams)
      .addSuccess(DatasetPreview)
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export class ModelsApi extends HttpApiGroup.make("models")
  .add(HttpApiEndpoint.get("list", "/models").addSuccess(Schema.Array(ModelConfig)))
  .add(
    HttpApiEndpoint.post("create", "/models")
      .setPayload(ModelConfigCreate)
      .addSuccess(ModelConfig, Created)
      .addError(ConflictResponse)
  )
  .add(
    HttpApiEndpoint.post("seedDefaults", "/models/defaults")
      .addSuccess(Schema.Array(ModelConfig))
      .annotate(
        OpenApi.Description,
        "Add the default models (mock, OpenAI, Anthropic) that are missing. Idempotent."
      )
  )
  .add(HttpApiEndpoint.get("get", "/models/:id").setPath(idPath(ModelConfigId)).addSuccess(ModelConfig))
  .add(
    HttpApiEndpoint.patch("update", "/models/:id")
      .setPath(idPath(ModelConfigId))
      .setPayload(ModelConfigUpdate)
      .addSuccess(ModelConfig)
      .addError(ConflictResponse)
  )
  .add(
    HttpApiEndpoint.del("delete", "/models/:id")
      .setPath(idPath(ModelConfigId))
      .addSuccess(NoContent)
      .addError(ConflictResponse)
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export class ApiKeysApi extends HttpApiGroup.make("apiKeys")
  .add(HttpApiEndpoint.get("list", "/api-keys").addSuccess(Schema.Array(ApiKeyInfo)))
  .add(
    HttpApiEndpoint.put("put", "/api-keys/:provider")
      .setPath(Schema.Struct({ provider: KeyedProvider }))
      .setPayload(ApiKeyPut)
      .addSuccess(ApiKeyInfo)
  )
  .add(
    HttpApiEndpoint.del("delete", "/api-keys/:provider")
      .setPath(Schema.Struct({ provider: KeyedProvider }))
      .addSuccess(NoContent)
      .addError(NotFoundResponse)
  )
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export class RunsApi extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.post("create", "/runs")
      .setPayload(RunCreate)
      .addSuccess(Run, Created)
      .addError(UnprocessableResponse)
  )
  .add(
    HttpApiEndpoint.get("list", "/runs")
      .setUrlParams(Schema.Struct({ ...PageParams.fields, promptId: Schema.optional(PromptId) }))
      .addSuccess(Page(Run))
  )
  .add(HttpApiEndpoint.get("get", "/runs/:id").setPath(idPath(RunId)).addSuccess(Run))
  .add(
    HttpApiEndpoint.post("cancel", "/runs/:id/cancel")
      .setPath(idPath(RunId))
      .addSuccess(Run)
      .annotate(OpenApi.Description, "Cancel queued cells and abort the calls in flight.")
  )
  .add(
    HttpApiEndpoint.post("rerunFailed", "/runs/:id/rerun-failed")
      .setPath(idPath(RunId))
      .addSuccess(Run)
      .annotate(
        OpenApi.Description,
        "Queue every failed cell again, as new attempts (history stays in the events)."
      )
  )
  .add(
    HttpApiEndpoint.post("rerunCell", "/runs/:id/cells/:cellId/rerun")
      .setPath(Schema.Struct({ id: RunId, cellId: RunCellId }))
      .addSuccess(Run)
      .annotate(OpenApi.Description, "Queue one cell again (a running one is aborted first).")
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export class CellsApi extends HttpApiGroup.make("cells")
  .add(
    HttpApiEndpoint.get("list", "/runs/:id/cells")
      .setPath(idPath(RunId))
      .setUrlParams(CellListParams)
      .addSuccess(CellPage)
      .middleware(Authentication)
      .annotate(
        OpenApi.Description,
        "The run's cells ordered by (updatedAt, id). Poll with `updated_since` = the previous answer's `serverTime` " +
          "to get only cells that changed (a cell may come again: dedupe by id and updatedAt)."
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/runs/:id/cells/:cellId")
      .setPath(Schema.Struct({ id: RunId, cellId: RunCellId }))
      .addSuccess(CellDetail)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.get("events", "/runs/:id/events")
      .setPath(idPath(RunId))
      .setUrlParams(
        Schema.Struct({
          after: Schema.optional(
            CellEventId.annotations({
              description: "Start after this event id (a cell page's `lastEventId`)"
            })
          )
        })
      )
      .setHeaders(
        Schema.Struct({
          "last-event-id": Schema.optional(
            CellEventId.annotations({ description: "Sent by EventSource on reconnect; wins over `after`" })
          )
        })
      )
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }))
      .middleware(StreamAuthentication)
      .annotate(
        OpenApi.Description,
        "Server-Sent Events: the run's cell events in id order (`id:` the event id, `event:` its type, `data:` " +
          "`{cellId, payload, createdAt}` as JSON), from the start or after `Last-Event-ID` / `after`, then live, " +
          "with keep-alive comments. EventSource cannot send headers: pass the token as `access_token` instead."
      )
  )
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .prefix("/api/v1") {}

export class AssayApi extends HttpApi.make("assay")
  .add(PromptsApi)
  .add(DatasetsApi)
  .add(ModelsApi)
  .add(ApiKeysApi)
  .add(RunsApi)
  .add(CellsApi)
  .add(GradesApi)
  .annotate(OpenApi.Title, "Assay API")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    'Prompts, datasets, models, provider keys, runs and their cells. Every error is `{"error":{"code","message","details"?}}`.'
  ) {}
