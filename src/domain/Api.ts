import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "./Auth.ts"
import { Dataset, DatasetPreview, DatasetRename, PreviewParams } from "./Dataset.ts"
import {
  BadRequestResponse,
  ConflictResponse,
  NotFoundResponse,
  PayloadTooLargeResponse,
  UnprocessableResponse
} from "./Errors.ts"
import { DatasetId, ModelConfigId, PromptId, PromptVersionId, RunId } from "./Ids.ts"
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
  .addError(NotFoundResponse)
  .addError(BadRequestResponse)
  .middleware(Authentication)
  .prefix("/api/v1") {}

export class AssayApi extends HttpApi.make("assay")
  .add(PromptsApi)
  .add(DatasetsApi)
  .add(ModelsApi)
  .add(ApiKeysApi)
  .add(RunsApi)
  .annotate(OpenApi.Title, "Assay API")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    'Prompts, datasets, models, provider keys and runs. Every error is `{"error":{"code","message","details"?}}`.'
  ) {}
