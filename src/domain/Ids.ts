import { Schema } from "effect"

/** Every id is a UUID, branded so one kind cannot be passed for another. */
export const UserId = Schema.UUID.pipe(Schema.brand("UserId"))
export type UserId = typeof UserId.Type

export const PromptId = Schema.UUID.pipe(Schema.brand("PromptId"))
export type PromptId = typeof PromptId.Type

export const PromptVersionId = Schema.UUID.pipe(Schema.brand("PromptVersionId"))
export type PromptVersionId = typeof PromptVersionId.Type

export const DatasetId = Schema.UUID.pipe(Schema.brand("DatasetId"))
export type DatasetId = typeof DatasetId.Type

export const ModelConfigId = Schema.UUID.pipe(Schema.brand("ModelConfigId"))
export type ModelConfigId = typeof ModelConfigId.Type

export const RunId = Schema.UUID.pipe(Schema.brand("RunId"))
export type RunId = typeof RunId.Type

export const RunModelId = Schema.UUID.pipe(Schema.brand("RunModelId"))
export type RunModelId = typeof RunModelId.Type

export const RunCellId = Schema.UUID.pipe(Schema.brand("RunCellId"))
export type RunCellId = typeof RunCellId.Type

/** The one implicit user of local mode. */
export const LOCAL_USER_ID = UserId.make("00000000-0000-4000-8000-000000000001")
