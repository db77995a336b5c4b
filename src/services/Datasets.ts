import { SqlClient } from "@effect/sql"
import { Data, DateTime, Effect, Stream } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Dataset, type DatasetPreview } from "../domain/Dataset.ts"
import { BadRequest, Conflict, NotFound, PayloadTooLarge } from "../domain/Errors.ts"
import type { DatasetId, UserId } from "../domain/Ids.ts"
import type { Page } from "../domain/Page.ts"
import { AppConfig } from "../layers/Config.ts"
import { decodeCursor, pageOf, pageSize } from "./Cursor.ts"
import { detectFormat, parseDataset, type DatasetFormat, type ParsedRow } from "./DatasetParser.ts"
import { FOREIGN_KEY_VIOLATION, mapSqlFailure, orDieSql, RESTRICT_VIOLATION } from "./SqlFailure.ts"
import { Storage } from "./Storage.ts"

/**
 * Datasets: streaming upload (spooled to a temp file, parsed and stored in one transaction), listing, preview,
 * rename and delete. Every query is scoped to the owner; another owner's dataset is `dataset_not_found`.
 */

export interface UploadInput<E> {
  /** The name the client gave the file; kept as `sourceFilename`, sanitised for the storage key. */
  readonly filename: string | undefined
  readonly contentType: string | undefined
  /** Default: the file name without its extension. */
  readonly name: string | undefined
  readonly content: Stream.Stream<Uint8Array, E>
}

export interface ListParams {
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

export interface PreviewOptions {
  readonly offset?: number | undefined
  readonly limit?: number | undefined
}

/** What a run needs to know about its dataset before reading rows. */
export interface DatasetShape {
  readonly headers: ReadonlyArray<string>
  readonly rowCount: number
}

const MAX_NAME_LENGTH = 200
const MAX_PAGE_SIZE = 200
const PREVIEW_DEFAULT_LIMIT = 50
const PREVIEW_MAX_LIMIT = 500
/** Rows per multi-row insert: ~200 statements for 100k rows, and each batch's JSON stays small. */
const INSERT_BATCH = 1000
/** Enough of the file's start for format detection to see past a BOM and leading whitespace. */
const HEAD_BYTES = 64 * 1024
const MAX_SOURCE_FILENAME = 255
const MAX_STORED_STEM = 100

interface DatasetRecord {
  readonly id: string
  readonly name: string
  readonly source_filename: string | null
  readonly format: DatasetFormat
  readonly headers: Array<string>
  readonly row_count: number
  readonly byte_size: string
  readonly created_at: Date
}

const toDataset = (row: DatasetRecord) =>
  new Dataset({
    id: row.id as DatasetId,
    name: row.name,
    sourceFilename: row.source_filename,
    format: row.format,
    headers: row.headers,
    rowCount: row.row_count,
    byteSize: Number(row.byte_size),
    createdAt: DateTime.unsafeFromDate(row.created_at)
  })

const notFound = (id: string) =>
  new NotFound({ code: "dataset_not_found", message: "No such dataset.", details: { id } })

const invalidName = () =>
  new BadRequest({
    code: "invalid_name",
    message: `A dataset name must be 1 to ${MAX_NAME_LENGTH} characters, without NUL characters.`
  })

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/** Postgres text cannot hold U+0000 or unpaired surrogates. */
const storableText = (text: string) => text.replaceAll("\u0000", "").replace(LONE_SURROGATE, "\ufffd")

const codePoints = (text: string) => [...text]

const checkName = (raw: string): Effect.Effect<string, BadRequest> => {
  const name = raw.trim()
  const length = codePoints(name).length
  return length >= 1 && length <= MAX_NAME_LENGTH && storableText(name) === name
    ? Effect.succeed(name)
    : Effect.fail(invalidName())
}

/** The last path segment: some clients send `C:\fakepath\x.csv` or `dir/x.csv`. */
const baseName = (filename: string) => filename.split(/[\\/]/).pop() ?? ""

const splitExtension = (base: string): { stem: string; extension: string } => {
  const dot = base.lastIndexOf(".")
  return dot > 0 ? { stem: base.slice(0, dot), extension: base.slice(dot) } : { stem: base, extension: "" }
}

const defaultName = (filename: string | undefined): string => {
  const stem = splitExtension(baseName(storableText(filename ?? "")).trim()).stem.trim()
  const name = codePoints(stem).slice(0, MAX_NAME_LENGTH).join("").trim()
  return name === "" ? "Untitled dataset" : name
}

const sourceFilename = (filename: string | undefined): string | null => {
  const text = codePoints(storableText(filename ?? ""))
    .slice(0, MAX_SOURCE_FILENAME)
    .join("")
  return text.trim() === "" ? null : text
}

const cleanSegment = (text: string) =>
  text
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/\.{2,}/g, ".")
    .replace(/^[._-]+|[._-]+$/g, "")

/** A storage key segment from the file name: only `[A-Za-z0-9._-]`, no leading dot, no "..", bounded length. */
const storedFilename = (filename: string | undefined, format: DatasetFormat): string => {
  const { stem, extension } = splitExtension(baseName(filename ?? ""))
  const cleanStem = cleanSegment(stem)
    .slice(0, MAX_STORED_STEM)
    .replace(/[._-]+$/, "")
  const cleanExtension = cleanSegment(extension).slice(0, 16)
  if (cleanStem === "") return `dataset.${format}`
  return cleanExtension === "" ? cleanStem : `${cleanStem}.${cleanExtension}`
}

const contentTypeOf = (format: DatasetFormat) =>
  format === "csv" ? "text/csv" : format === "json" ? "application/json" : "application/x-ndjson"

const clampInt = (value: number | undefined, fallback: number, min: number, max: number) =>
  value === undefined || !Number.isFinite(value) ? fallback : Math.min(max, Math.max(min, Math.floor(value)))

/** Local file I/O that should never fail; when it does, it is a defect (500), logged with its cause. */
const io = <A>(f: () => Promise<A>) => Effect.orDie(Effect.tryPromise(f))

const tooLarge = (limit: number) =>
  new PayloadTooLarge({
    code: "file_too_large",
    message: `The file is larger than ${limit} bytes.`,
    details: { limit }
  })

/** Copies `content` to `file`, chunk by chunk, and stops with `file_too_large` past `maxBytes`. */
const spool = <E>(content: Stream.Stream<Uint8Array, E>, file: string, maxBytes: number) =>
  Effect.acquireUseRelease(
    io(() => fs.open(file, "wx")),
    (handle) =>
      Stream.runFoldEffect(content, 0, (size, chunk) => {
        const next = size + chunk.byteLength
        if (next > maxBytes) return Effect.fail(tooLarge(maxBytes))
        return io(async () => {
          for (let written = 0; written < chunk.byteLength;) {
            const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written)
            written += bytesWritten
          }
          return next
        })
      }),
    (handle) => io(() => handle.close())
  )

/** The FK from `run.dataset_id` (on delete restrict) refused the delete: 23001 on PostgreSQL 18, 23503 before. */
class InUse extends Data.TaggedError("InUse") {}
const inUse = () => new InUse()

export class Datasets extends Effect.Service<Datasets>()("assay/Datasets", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storage = yield* Storage
    const config = yield* AppConfig
    const tempDir = path.join(config.dataDir, "tmp")

    const columns = sql`id, name, source_filename, format, headers, row_count, byte_size, created_at`

    const find = (owner: UserId, id: DatasetId) =>
      sql<DatasetRecord>`select ${columns} from assay.dataset where id = ${id} and owner_id = ${owner}`.pipe(
        orDieSql,
        Effect.flatMap((rows) => (rows[0] ? Effect.succeed(rows[0]) : Effect.fail(notFound(id))))
      )

    /** A fresh path under `<dataDir>/tmp`, removed when the scope closes, whatever happened. */
    const tempFile = Effect.acquireRelease(
      io(async () => {
        await fs.mkdir(tempDir, { recursive: true })
        return path.join(tempDir, `${crypto.randomUUID()}.upload`)
      }),
      (file) =>
        Effect.tryPromise(() => fs.rm(file, { force: true })).pipe(
          Effect.catchAll((failure) => Effect.logWarning("could not remove an upload's temp file", failure))
        )
    )

    const insertRows = (datasetId: string) => (rows: ReadonlyArray<ParsedRow>) =>
      orDieSql(sql`
        insert into assay.dataset_row (dataset_id, row_index, values, checksum)
        select ${datasetId}::uuid, x."index", x."values", x.checksum
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x("index" integer, "values" jsonb, checksum text)
      `)

    /**
     * Parses the spooled file and writes the dataset, its rows and the stored copy in one transaction: any
     * failure (a parse error, a limit, the store) rolls every row back.
     */
    const ingest = (
      owner: UserId,
      file: string,
      meta: {
        name: string
        filename: string | undefined
        contentType: string | undefined
        format: DatasetFormat
      }
    ) => {
      let storedKey: string | undefined
      return sql
        .withTransaction(
          Effect.gen(function* () {
            const [created] = yield* orDieSql(sql<{ id: string }>`
              insert into assay.dataset (owner_id, name, source_filename, format)
              values (${owner}, ${meta.name}, ${sourceFilename(meta.filename)}, ${meta.format})
              returning id`)
            const datasetId = created!.id
            const summary = yield* parseDataset({
              format: meta.format,
              body: Bun.file(file).stream(),
              limits: { maxRows: config.maxDatasetRows, maxBytes: config.maxUploadBytes },
              batchSize: INSERT_BATCH,
              onBatch: insertRows(datasetId)
            })
            const key = `${owner}/${datasetId}/${storedFilename(meta.filename, meta.format)}`
            const [row] = yield* orDieSql(sql<DatasetRecord>`
              update assay.dataset
              set headers = ${JSON.stringify(summary.headers)}::jsonb, row_count = ${summary.rowCount},
                byte_size = ${summary.byteSize}, storage_path = ${key}
              where id = ${datasetId}
              returning ${columns}`)
            // set before the put: a put that fails half way may still have left an object behind
            storedKey = key
            const contentType = meta.contentType?.trim() ? meta.contentType : contentTypeOf(meta.format)
            yield* Effect.orDie(storage.put(key, Bun.file(file), contentType))
            return toDataset(row!)
          })
        )
        .pipe(
          orDieSql,
          Effect.onError(() =>
            storedKey === undefined
              ? Effect.void
              : storage
                  .remove([storedKey])
                  .pipe(
                    Effect.catchAll((failure) =>
                      Effect.logWarning("could not remove the stored file of a failed upload", failure)
                    )
                  )
          )
        )
    }

    const upload = Effect.fn("Datasets.upload")(function* <E>(owner: UserId, input: UploadInput<E>) {
      const name = yield* checkName(input.name ?? defaultName(input.filename))
      const file = yield* tempFile
      yield* spool(input.content, file, config.maxUploadBytes)
      const head = yield* io(() => Bun.file(file).slice(0, HEAD_BYTES).bytes())
      const format = detectFormat(input.filename, input.contentType, head)
      return yield* ingest(owner, file, {
        name,
        filename: input.filename,
        contentType: input.contentType,
        format
      })
    }, Effect.scoped)

    const list = Effect.fn("Datasets.list")(function* (owner: UserId, params: ListParams) {
      const limit = clampInt(pageSize(params.limit), 1, 1, MAX_PAGE_SIZE)
      const position = yield* decodeCursor(params.cursor)
      // Dates carry milliseconds, Postgres microseconds: sort and compare on the millisecond the cursor holds.
      const conditions = [
        sql`owner_id = ${owner}`,
        ...(position
          ? [
              sql`(date_trunc('milliseconds', created_at), id) < (${position.at.toISOString()}::timestamptz, ${position.id}::uuid)`
            ]
          : [])
      ]
      const rows = yield* orDieSql(sql<DatasetRecord>`
        select ${columns} from assay.dataset
        where ${sql.and(conditions)}
        order by date_trunc('milliseconds', created_at) desc, id desc
        limit ${limit + 1}`)
      return pageOf(
        rows,
        limit,
        (row) => ({ at: row.created_at, id: row.id }),
        toDataset
      ) satisfies Page<Dataset>
    })

    const get = Effect.fn("Datasets.get")(function* (owner: UserId, id: DatasetId) {
      return toDataset(yield* find(owner, id))
    })

    const rename = Effect.fn("Datasets.rename")(function* (owner: UserId, id: DatasetId, name: string) {
      const checked = yield* checkName(name)
      const rows = yield* orDieSql(sql<DatasetRecord>`
        update assay.dataset set name = ${checked}
        where id = ${id} and owner_id = ${owner}
        returning ${columns}`)
      const row = rows[0]
      if (!row) return yield* notFound(id)
      return toDataset(row)
    })

    const preview = Effect.fn("Datasets.preview")(function* (
      owner: UserId,
      id: DatasetId,
      params: PreviewOptions
    ) {
      const dataset = yield* find(owner, id)
      const offset = clampInt(params.offset, 0, 0, Number.MAX_SAFE_INTEGER)
      const limit = clampInt(params.limit, PREVIEW_DEFAULT_LIMIT, 1, PREVIEW_MAX_LIMIT)
      // row_index runs 0..row_count-1 with no gaps, so a range on the unique index replaces OFFSET
      const rows =
        offset >= dataset.row_count
          ? []
          : yield* orDieSql(sql<{ row_index: number; values: Record<string, unknown> }>`
              select row_index, values from assay.dataset_row
              where dataset_id = ${id} and row_index >= ${offset} and row_index < ${offset + limit}
              order by row_index`)
      return {
        headers: dataset.headers,
        total: dataset.row_count,
        offset,
        limit,
        rows: rows.map((row) => ({ index: row.row_index, values: row.values }))
      } satisfies DatasetPreview
    })

    const remove = Effect.fn("Datasets.remove")(function* (owner: UserId, id: DatasetId) {
      // the stored file goes inside the transaction: if the store fails, the dataset stays and can be retried
      const found = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const rows = yield* sql<{ storage_path: string | null }>`
              delete from assay.dataset where id = ${id} and owner_id = ${owner}
              returning storage_path`
            const row = rows[0]
            if (!row) return false
            if (row.storage_path !== null) yield* Effect.orDie(storage.remove([row.storage_path]))
            return true
          })
        )
        .pipe(
          mapSqlFailure({ [FOREIGN_KEY_VIOLATION]: inUse, [RESTRICT_VIOLATION]: inUse }),
          Effect.catchTag("InUse", () =>
            orDieSql(sql<{ runs: number }>`
              select count(*)::int as runs from assay.run where dataset_id = ${id} and owner_id = ${owner}`).pipe(
              Effect.flatMap(([counted]) =>
                Effect.fail(
                  new Conflict({
                    code: "dataset_in_use",
                    message: "The dataset is used by runs; delete those runs first.",
                    details: { runs: counted?.runs ?? 0 }
                  })
                )
              )
            )
          )
        )
      if (!found) return yield* notFound(id)
    })

    const rows = Effect.fn("Datasets.rows")(function* (owner: UserId, id: DatasetId) {
      const dataset = yield* find(owner, id)
      return { headers: dataset.headers, rowCount: dataset.row_count } satisfies DatasetShape
    })

    return { upload, list, get, rename, preview, remove, rows } as const
  })
}) {}
