import { Schema } from "effect"
import { DatasetId } from "./Ids.ts"

export const DatasetFormat = Schema.Literal("csv", "json", "jsonl")
export type DatasetFormat = typeof DatasetFormat.Type

export class Dataset extends Schema.Class<Dataset>("Dataset")({
  id: DatasetId,
  name: Schema.String,
  sourceFilename: Schema.NullOr(Schema.String),
  format: DatasetFormat,
  headers: Schema.Array(Schema.String),
  rowCount: Schema.Int,
  byteSize: Schema.Int,
  createdAt: Schema.DateTimeUtc
}) {}

export const DatasetRow = Schema.Struct({
  index: Schema.Int,
  values: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type DatasetRow = typeof DatasetRow.Type

export const PreviewParams = Schema.Struct({
  offset: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0))),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)))
})
export type PreviewParams = typeof PreviewParams.Type

export const DatasetPreview = Schema.Struct({
  headers: Schema.Array(Schema.String),
  total: Schema.Int,
  offset: Schema.Int,
  limit: Schema.Int,
  rows: Schema.Array(DatasetRow)
}).annotations({ identifier: "DatasetPreview" })
export type DatasetPreview = typeof DatasetPreview.Type

export const DatasetRename = Schema.Struct({
  name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))
}).annotations({ parseOptions: { onExcessProperty: "error" } })
