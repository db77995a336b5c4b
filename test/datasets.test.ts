import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Stream } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { Dataset } from "../src/domain/Dataset.ts"
import { BadRequest, Conflict, NotFound, PayloadTooLarge } from "../src/domain/Errors.ts"
import { DatasetId, UserId } from "../src/domain/Ids.ts"
import type { Page } from "../src/domain/Page.ts"
import { Datasets, type UploadInput } from "../src/services/Datasets.ts"
import { layerLocal, Storage, StorageError, type StorageShape } from "../src/services/Storage.ts"
import { testConfig } from "./support/TestConfig.ts"
import { testDatabases } from "./support/TestDatabase.ts"

const encoder = new TextEncoder()
const BOM = "\ufeff"

const newOwner = () => UserId.make(crypto.randomUUID())

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

/** Files under `dir`, relative and sorted; a directory that does not exist holds none. */
const filesUnder = (dir: string) =>
  Effect.promise(async () => {
    const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
    return entries
      .filter((entry) => entry.isFile())
      .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
      .sort()
  })

/** The bytes in chunks of `size`, so spooling sees many writes. */
const chunked = (data: string | Uint8Array, size = 997): Stream.Stream<Uint8Array> => {
  const bytes = typeof data === "string" ? encoder.encode(data) : data
  const chunks: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.slice(at, at + size))
  return Stream.fromIterable(chunks)
}

const fileInput = (
  filename: string | undefined,
  data: string | Uint8Array,
  extra: Partial<UploadInput<never>> = {}
): UploadInput<never> => ({
  filename,
  contentType: undefined,
  name: undefined,
  content: chunked(data),
  ...extra
})

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex")

/** Canonical JSON as the checksum contract says: keys sorted, no whitespace. */
const canonical = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  const record = value as Record<string, unknown>
  return `{${Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`)
    .join(",")}}`
}

interface Setup {
  readonly env?: Record<string, string>
  readonly storage?: (root: string) => Layer.Layer<Storage>
}

/** A Datasets service of its own: fresh storage root and data dir, the given limits, the suite's database. */
const setup = (options: Setup = {}) =>
  Effect.gen(function* () {
    const root = yield* tempDir("assay-files-")
    const dataDir = yield* tempDir("assay-data-")
    const storage = options.storage ? options.storage(root) : layerLocal({ root })
    const config = testConfig({ ASSAY_DATA_DIR: dataDir, ...options.env })
    const datasets = yield* Effect.provide(
      Datasets,
      Datasets.Default.pipe(Layer.provide(Layer.mergeAll(storage, config)))
    )
    const sql = yield* SqlClient.SqlClient
    return { datasets, root, tmp: path.join(dataDir, "tmp"), sql }
  })

type Env = Effect.Effect.Success<ReturnType<typeof setup>>

const storedRows = (sql: SqlClient.SqlClient, id: string) =>
  sql<{ row_index: number; values: Record<string, unknown>; checksum: string }>`
    select row_index, values, checksum from assay.dataset_row where dataset_id = ${id} order by row_index`

const storagePath = (sql: SqlClient.SqlClient, id: string) =>
  Effect.map(
    sql<{ storage_path: string | null }>`select storage_path from assay.dataset where id = ${id}`,
    (rows) => rows[0]?.storage_path
  )

/** Everything an upload could leave behind: the owner's datasets, all dataset rows, stored files, temp files. */
const traces = (env: Env, owner: UserId) =>
  Effect.gen(function* () {
    const [counts] = yield* env.sql<{ datasets: number; rows: number }>`
      select (select count(*)::int from assay.dataset where owner_id = ${owner}) as datasets,
        (select count(*)::int from assay.dataset_row) as rows`
    return {
      datasets: counts!.datasets,
      rows: counts!.rows,
      stored: yield* filesUnder(env.root),
      temp: yield* filesUnder(env.tmp)
    }
  })

const csvOf = (rows: number, from = 0) => {
  let text = "id,text,label\n"
  for (let i = from; i < from + rows; i++)
    text += `${i},"row ${i}, with a comma",${i % 2 === 0 ? "even" : "odd"}\n`
  return text
}

const failingPut =
  (message: string): ((key: string, file: Blob, contentType: string) => Effect.Effect<void, StorageError>) =>
  () =>
    Effect.fail(new StorageError({ reason: "unavailable", message }))

/** A store that is down: every call fails. */
const downStorage = (): Layer.Layer<Storage> =>
  Layer.succeed(Storage, {
    put: failingPut("The store is down."),
    get: () => Effect.fail(new StorageError({ reason: "unavailable", message: "The store is down." })),
    remove: () => Effect.fail(new StorageError({ reason: "unavailable", message: "The store is down." }))
  } satisfies StorageShape)

/** A store that writes the object and then reports failure (a lost response). */
const writesThenFails = (root: string): Layer.Layer<Storage> =>
  Layer.effect(
    Storage,
    Effect.map(Effect.provide(Storage, layerLocal({ root })), (local): StorageShape => ({
      ...local,
      put: (key, file, contentType) =>
        Effect.zipRight(
          local.put(key, file, contentType),
          failingPut("The response was lost.")(key, file, contentType)
        )
    }))
  )

/** A run that uses the dataset, straight in SQL. */
const useInRun = (sql: SqlClient.SqlClient, owner: UserId, datasetId: string) =>
  Effect.gen(function* () {
    const [prompt] = yield* sql<{ id: string }>`
      insert into assay.prompt (owner_id, name, type) values (${owner}, 'p', 'generator') returning id`
    const [version] = yield* sql<{ id: string }>`
      insert into assay.prompt_version (prompt_id, lineage, version_number, name, body, hash)
      values (${prompt!.id}, 1, 1, 'p', '{}'::jsonb, ${sha256(crypto.randomUUID())}) returning id`
    const [run] = yield* sql<{ id: string }>`
      insert into assay.run (owner_id, prompt_id, prompt_version_id, dataset_id)
      values (${owner}, ${prompt!.id}, ${version!.id}, ${datasetId}) returning id`
    return run!.id
  })

for (const db of testDatabases) {
  layer(db.layer, { excludeTestServices: true, timeout: 120_000 })(`Datasets on ${db.kind}`, (it) => {
    it.scoped("a CSV upload keeps headers, order, checksums and the exact bytes of the file", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const text = `${BOM}id,text,note\r\n1,"a, b","say ""hi"""\r\n2,"two\r\nlines",\r\n3,Zoë 𝄞,"x"\r\n`
        const bytes = encoder.encode(text)
        const dataset = yield* env.datasets.upload(owner, fileInput("données été (v2).csv", bytes))

        expect(dataset.name).toBe("données été (v2)")
        expect(dataset.sourceFilename).toBe("données été (v2).csv")
        expect(dataset.format).toBe("csv")
        expect(dataset.headers).toEqual(["id", "text", "note"])
        expect(dataset.rowCount).toBe(3)
        expect(dataset.byteSize).toBe(bytes.length)

        const rows = yield* storedRows(env.sql, dataset.id)
        expect(rows.map((row) => row.row_index)).toEqual([0, 1, 2])
        expect(rows.map((row) => row.values)).toEqual([
          { id: "1", text: "a, b", note: 'say "hi"' },
          { id: "2", text: "two\r\nlines", note: "" },
          { id: "3", text: "Zoë 𝄞", note: "x" }
        ])
        for (const row of rows) expect(row.checksum).toBe(sha256(canonical(row.values)))

        const key = yield* storagePath(env.sql, dataset.id)
        expect(key).toBe(`${owner}/${dataset.id}/donn_es_t_v2.csv`)
        expect(yield* filesUnder(env.root)).toEqual([key])
        const stored = yield* Effect.promise(() => Bun.file(path.join(env.root, key!)).bytes())
        expect(stored).toEqual(bytes)
        expect(yield* filesUnder(env.tmp)).toEqual([])

        const got = yield* env.datasets.get(owner, dataset.id)
        expect(got).toEqual(dataset)
        expect(yield* env.datasets.rows(owner, dataset.id)).toEqual({
          headers: ["id", "text", "note"],
          rowCount: 3
        })
      })
    )

    it.scoped("a JSON array keeps numbers, booleans, nulls, arrays and objects, and unions the keys", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const values = [
          { q: "first", n: 1.5, ok: true, none: null, tags: ["x", "y"], meta: { k: 1, deep: { z: false } } },
          { q: "second", n: -2 },
          { extra: "only here", q: "third" }
        ]
        const text = JSON.stringify(values, null, 2)
        const dataset = yield* env.datasets.upload(owner, fileInput("scores.json", text))
        expect(dataset.format).toBe("json")
        expect(dataset.name).toBe("scores")
        expect(dataset.headers).toEqual(["q", "n", "ok", "none", "tags", "meta", "extra"])
        expect(dataset.rowCount).toBe(3)
        const rows = yield* storedRows(env.sql, dataset.id)
        expect(rows.map((row) => row.values)).toEqual(values)
        for (const row of rows) expect(row.checksum).toBe(sha256(canonical(row.values)))
        const key = yield* storagePath(env.sql, dataset.id)
        expect(yield* Effect.promise(() => Bun.file(path.join(env.root, key!)).text())).toBe(text)
      })
    )

    it.scoped(
      "a JSONL upload skips blank lines and accepts CRLF; the format comes from the content type",
      () =>
        Effect.gen(function* () {
          const env = yield* setup()
          const owner = newOwner()
          const text = '{"a":1,"b":"x"}\r\n\r\n{"a":2,"b":"y"}\n{"b":"z","c":[1]}\n'
          const dataset = yield* env.datasets.upload(
            owner,
            fileInput("upload", text, { contentType: "application/x-ndjson", name: "  Lines  " })
          )
          expect(dataset.format).toBe("jsonl")
          expect(dataset.name).toBe("Lines")
          expect(dataset.sourceFilename).toBe("upload")
          expect(dataset.headers).toEqual(["a", "b", "c"])
          const rows = yield* storedRows(env.sql, dataset.id)
          expect(rows.map((row) => [row.row_index, row.values])).toEqual([
            [0, { a: 1, b: "x" }],
            [1, { a: 2, b: "y" }],
            [2, { b: "z", c: [1] }]
          ])
          expect(yield* storagePath(env.sql, dataset.id)).toBe(`${owner}/${dataset.id}/upload`)
        })
    )

    it.scoped(
      "names default to the file name without extension; keys are sanitised; bad names are refused",
      () =>
        Effect.gen(function* () {
          const env = yield* setup()
          const owner = newOwner()
          const csv = "a\n1\n"
          const cases: ReadonlyArray<readonly [string | undefined, string, string]> = [
            ["reviews.v2.csv", "reviews.v2", "reviews.v2.csv"],
            ["C:\\fakepath\\my file.csv", "my file", "my_file.csv"],
            ["../../etc/passwd", "passwd", "passwd"],
            [".hidden.csv", ".hidden", "hidden.csv"],
            ["....csv", "...", "dataset.csv"],
            [undefined, "Untitled dataset", "dataset.csv"]
          ]
          for (const [filename, name, stored] of cases) {
            const dataset = yield* env.datasets.upload(owner, fileInput(filename, csv))
            expect(dataset.name).toBe(name)
            expect(dataset.sourceFilename).toBe(filename ?? null)
            expect(yield* storagePath(env.sql, dataset.id)).toBe(`${owner}/${dataset.id}/${stored}`)
          }

          const long = "x".repeat(250)
          const defaulted = yield* env.datasets.upload(owner, fileInput(`${long}.csv`, csv))
          expect(defaulted.name).toBe("x".repeat(200))
          expect(yield* storagePath(env.sql, defaulted.id)).toBe(
            `${owner}/${defaulted.id}/${"x".repeat(100)}.csv`
          )
          const exactly = yield* env.datasets.upload(
            owner,
            fileInput("a.csv", csv, { name: "é".repeat(200) })
          )
          expect(exactly.name).toBe("é".repeat(200))

          const before = yield* traces(env, owner)
          for (const name of ["", "   ", "y".repeat(201), "nul\u0000name"]) {
            const error = yield* Effect.flip(env.datasets.upload(owner, fileInput("a.csv", csv, { name })))
            expect(error).toBeInstanceOf(BadRequest)
            expect(error.code).toBe("invalid_name")
          }
          expect(yield* traces(env, owner)).toEqual(before)
        })
    )

    it.scoped("every parser error surfaces with its code and place, and leaves nothing behind", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const cases: ReadonlyArray<readonly [string, string | Uint8Array, string, Record<string, unknown>?]> =
          [
            ["empty.csv", "", "empty_file"],
            ["blank.csv", " \n\n", "empty_file"],
            ["header-only.csv", "a,b\n", "no_rows"],
            ["blank-first.csv", "\na,b\n1,2\n", "missing_header"],
            ["empty-header.csv", "a,,c\n1,2,3\n", "empty_header", { column: 2 }],
            ["dup.csv", "a,a\n1,2\n", "duplicate_header", { name: "a" }],
            [
              "count.csv",
              "a,b\n1,2\n3,4\n5\n",
              "field_count_mismatch",
              { row: 3, line: 4, expected: 2, got: 1 }
            ],
            ["quote.csv", 'a,b\n1,2\n3,"x"y\n', "malformed_csv", { row: 2, line: 3 }],
            ["bad.json", '[{"a":1},\n{"a":}]', "malformed_json", { row: 2, line: 2 }],
            ["scalars.json", '[{"a":1}, 2]', "not_array_of_objects", { row: 2 }],
            ["object.json", '{"a":1}', "not_array_of_objects"],
            ["open.json", '[{"a":1}', "malformed_json"],
            ["empty.json", "[]", "no_rows"],
            ["lines.jsonl", '{"a":1}\n{oops}\n', "malformed_json", { row: 2, line: 2 }],
            ["lines.jsonl", '{"a":1}\n\n[1]\n', "not_array_of_objects", { row: 2, line: 3 }],
            ["nul.jsonl", '{"a":"ok"}\n{"a":"x\\u0000y"}\n', "invalid_character", { row: 2, line: 2 }],
            [
              "latin1.csv",
              new Uint8Array([...encoder.encode("a\nok\n"), 0xe9, 0x0a]),
              "invalid_utf8",
              { offset: 5 }
            ]
          ]
        for (const [filename, content, code, details] of cases) {
          const error = yield* Effect.flip(env.datasets.upload(owner, fileInput(filename, content)))
          expect(error, filename).toBeInstanceOf(BadRequest)
          expect(error.code, filename).toBe(code)
          if (details) expect(error.details, filename).toMatchObject(details)
        }
        expect(yield* traces(env, owner)).toMatchObject({ datasets: 0, stored: [], temp: [] })
      })
    )

    it.scoped("too many rows: 413 too_many_rows after batches were written, and nothing is left behind", () =>
      Effect.gen(function* () {
        const env = yield* setup({ env: { ASSAY_MAX_DATASET_ROWS: "2500" } })
        const owner = newOwner()
        const before = yield* traces(env, owner)
        const error = yield* Effect.flip(env.datasets.upload(owner, fileInput("big.csv", csvOf(3000))))
        expect(error).toBeInstanceOf(PayloadTooLarge)
        expect(error.code).toBe("too_many_rows")
        expect(error.details).toEqual({ limit: 2500 })
        expect(yield* traces(env, owner)).toEqual({ ...before, datasets: 0, stored: [], temp: [] })

        // the limit itself is allowed
        const ok = yield* env.datasets.upload(owner, fileInput("ok.csv", csvOf(2500)))
        expect(ok.rowCount).toBe(2500)
      })
    )

    it.scoped("too many bytes: 413 file_too_large while spooling, and nothing is left behind", () =>
      Effect.gen(function* () {
        const env = yield* setup({ env: { ASSAY_MAX_UPLOAD_BYTES: "10000" } })
        const owner = newOwner()
        const before = yield* traces(env, owner)
        let pulled = 0
        const endless = Stream.repeatEffect(
          Effect.sync(() => {
            pulled++
            return encoder.encode(pulled === 1 ? "id,text\n" : `${pulled},${"x".repeat(990)}\n`)
          })
        )
        const error = yield* Effect.flip(
          env.datasets.upload(owner, {
            filename: "huge.csv",
            contentType: undefined,
            name: undefined,
            content: endless
          })
        )
        expect(error).toBeInstanceOf(PayloadTooLarge)
        expect(error.code).toBe("file_too_large")
        expect(error.details).toEqual({ limit: 10000 })
        // reading stopped at the limit, not at the end of an endless stream
        expect(pulled).toBeLessThan(15)
        expect(yield* traces(env, owner)).toEqual({ ...before, datasets: 0, stored: [], temp: [] })

        const exact = csvOf(200).slice(0, 10000)
        const lastNewline = exact.lastIndexOf("\n") + 1
        const ok = yield* env.datasets.upload(owner, fileInput("ok.csv", exact.slice(0, lastNewline)))
        expect(ok.byteSize).toBe(lastNewline)
      })
    )

    it.scoped("a stream error from the client is passed through and leaves nothing behind", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const content = Stream.concat(chunked(csvOf(100)), Stream.fail("client went away" as const))
        const error = yield* Effect.flip(
          env.datasets.upload(owner, {
            filename: "cut.csv",
            contentType: undefined,
            name: undefined,
            content
          })
        )
        expect(error).toBe("client went away")
        expect(yield* traces(env, owner)).toMatchObject({ datasets: 0, stored: [], temp: [] })
      })
    )

    it.scoped("a storage failure rolls the whole upload back", () =>
      Effect.gen(function* () {
        for (const storage of [downStorage, writesThenFails]) {
          const env = yield* setup({ storage })
          const owner = newOwner()
          const before = yield* traces(env, owner)
          const exit = yield* Effect.exit(env.datasets.upload(owner, fileInput("rows.csv", csvOf(2500))))
          expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
          expect(yield* traces(env, owner)).toEqual({ ...before, datasets: 0, stored: [], temp: [] })
        }
      })
    )

    it.scoped("preview pages through rows in order, with totals and clamped limits", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const dataset = yield* env.datasets.upload(owner, fileInput("paged.csv", csvOf(620)))
        const row = (i: number) => ({
          index: i,
          values: { id: String(i), text: `row ${i}, with a comma`, label: i % 2 === 0 ? "even" : "odd" }
        })
        const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => row(from + k))

        const first = yield* env.datasets.preview(owner, dataset.id, {})
        expect(first).toEqual({
          headers: ["id", "text", "label"],
          total: 620,
          offset: 0,
          limit: 50,
          rows: range(0, 50)
        })
        const middle = yield* env.datasets.preview(owner, dataset.id, { offset: 100, limit: 7 })
        expect(middle.rows).toEqual(range(100, 107))
        const tail = yield* env.datasets.preview(owner, dataset.id, { offset: 600, limit: 50 })
        expect(tail.rows).toEqual(range(600, 620))
        const big = yield* env.datasets.preview(owner, dataset.id, { offset: 10, limit: 10_000 })
        expect(big.limit).toBe(500)
        expect(big.rows).toEqual(range(10, 510))
        const past = yield* env.datasets.preview(owner, dataset.id, { offset: 5_000_000_000 })
        expect(past).toMatchObject({ total: 620, offset: 5_000_000_000, rows: [] })
      })
    )

    it.scoped("list is newest first with a cursor, and survives timestamps that differ in microseconds", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const ids: Array<string> = []
        for (let i = 0; i < 5; i++) {
          ids.push((yield* env.datasets.upload(owner, fileInput(`d${i}.csv`, "a\n1\n"))).id)
          yield* Effect.sleep("3 millis")
        }
        const seen: Array<string> = []
        let cursor: string | undefined
        for (let page = 0; page < 10; page++) {
          const result: Page<Dataset> = yield* env.datasets.list(owner, { limit: 2, cursor })
          expect(result.items.length).toBeLessThanOrEqual(2)
          seen.push(...result.items.map((item) => item.id))
          if (result.nextCursor === null) break
          cursor = result.nextCursor
        }
        expect(seen).toEqual([...ids].reverse())

        // same millisecond, different microseconds: every dataset still comes exactly once
        yield* env.sql`
          update assay.dataset
          set created_at = '2026-01-01T00:00:00.123Z'::timestamptz + (ascii(right(name, 1)) * interval '1 microsecond')
          where owner_id = ${owner}`
        const tied: Array<string> = []
        cursor = undefined
        for (let page = 0; page < 10; page++) {
          const result: Page<Dataset> = yield* env.datasets.list(owner, { limit: 1, cursor })
          tied.push(...result.items.map((item) => item.id))
          if (result.nextCursor === null) break
          cursor = result.nextCursor
        }
        expect([...tied].sort()).toEqual([...ids].sort())

        const other = yield* env.datasets.list(newOwner(), {})
        expect(other).toEqual({ items: [], nextCursor: null })
        const invalid = yield* Effect.flip(env.datasets.list(owner, { cursor: "not-a-cursor" }))
        expect(invalid.code).toBe("invalid_cursor")
      })
    )

    it.scoped("rename trims and validates the name", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const dataset = yield* env.datasets.upload(owner, fileInput("old.csv", "a\n1\n"))
        const renamed = yield* env.datasets.rename(owner, dataset.id, "  New name  ")
        expect(renamed.name).toBe("New name")
        expect((yield* env.datasets.get(owner, dataset.id)).name).toBe("New name")
        for (const name of ["", " ", "z".repeat(201)]) {
          const error = yield* Effect.flip(env.datasets.rename(owner, dataset.id, name))
          expect(error).toMatchObject({ _tag: "BadRequest", code: "invalid_name" })
        }
        expect((yield* env.datasets.get(owner, dataset.id)).name).toBe("New name")
      })
    )

    it.scoped("delete removes the rows and the stored file", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const kept = yield* env.datasets.upload(owner, fileInput("kept.csv", csvOf(3)))
        const dataset = yield* env.datasets.upload(owner, fileInput("gone.csv", csvOf(1200)))
        const key = yield* storagePath(env.sql, dataset.id)
        expect(yield* filesUnder(env.root)).toContain(key)
        expect((yield* storedRows(env.sql, dataset.id)).length).toBe(1200)

        yield* env.datasets.remove(owner, dataset.id)

        expect((yield* storedRows(env.sql, dataset.id)).length).toBe(0)
        expect(yield* filesUnder(env.root)).toEqual([yield* storagePath(env.sql, kept.id)])
        const again = yield* Effect.flip(env.datasets.remove(owner, dataset.id))
        expect(again).toMatchObject({ _tag: "NotFound", code: "dataset_not_found" })
        expect((yield* env.datasets.get(owner, kept.id)).rowCount).toBe(3)
      })
    )

    it.scoped(
      "a dataset used by a run cannot be deleted: Conflict dataset_in_use with the number of runs",
      () =>
        Effect.gen(function* () {
          const env = yield* setup()
          const owner = newOwner()
          const dataset = yield* env.datasets.upload(owner, fileInput("used.csv", csvOf(4)))
          const runs = [
            yield* useInRun(env.sql, owner, dataset.id),
            yield* useInRun(env.sql, owner, dataset.id)
          ]

          const error = yield* Effect.flip(env.datasets.remove(owner, dataset.id))
          expect(error).toBeInstanceOf(Conflict)
          expect(error).toMatchObject({ code: "dataset_in_use", details: { runs: 2 } })
          expect((yield* storedRows(env.sql, dataset.id)).length).toBe(4)
          expect(yield* filesUnder(env.root)).toEqual([yield* storagePath(env.sql, dataset.id)])

          yield* env.sql`delete from assay.run where id in ${env.sql.in(runs)}`
          yield* env.datasets.remove(owner, dataset.id)
          expect(yield* filesUnder(env.root)).toEqual([])
        })
    )

    it.scoped("another owner gets NotFound everywhere, and nothing changes", () =>
      Effect.gen(function* () {
        const env = yield* setup()
        const owner = newOwner()
        const stranger = newOwner()
        const dataset = yield* env.datasets.upload(owner, fileInput("mine.csv", csvOf(3)))
        const missing = DatasetId.make(crypto.randomUUID())
        const attempts: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
          env.datasets.get(stranger, dataset.id),
          env.datasets.rename(stranger, dataset.id, "taken"),
          env.datasets.preview(stranger, dataset.id, {}),
          env.datasets.remove(stranger, dataset.id),
          env.datasets.rows(stranger, dataset.id),
          env.datasets.get(owner, missing)
        ]
        for (const attempt of attempts) {
          const error = yield* Effect.flip(attempt)
          expect(error).toBeInstanceOf(NotFound)
          expect((error as NotFound).code).toBe("dataset_not_found")
        }
        expect(yield* env.datasets.list(stranger, {})).toEqual({ items: [], nextCursor: null })
        expect(yield* env.datasets.get(owner, dataset.id)).toEqual(dataset)
        expect((yield* storedRows(env.sql, dataset.id)).length).toBe(3)
        expect(yield* filesUnder(env.root)).toHaveLength(1)
      })
    )

    it.scoped(
      "a 100k-row CSV upload completes",
      () =>
        Effect.gen(function* () {
          const env = yield* setup()
          const owner = newOwner()
          const text = csvOf(100_000)
          const bytes = encoder.encode(text)
          const started = performance.now()
          const dataset = yield* env.datasets.upload(owner, {
            filename: "big.csv",
            contentType: "text/csv",
            name: undefined,
            content: chunked(bytes, 64 * 1024)
          })
          const seconds = (performance.now() - started) / 1000
          console.log(
            `[${db.kind}] 100k-row CSV (${(bytes.length / 1e6).toFixed(1)} MB): ${seconds.toFixed(2)} s, ` +
              `${Math.round(100_000 / seconds)} rows/s`
          )
          expect(dataset.rowCount).toBe(100_000)
          expect(dataset.byteSize).toBe(bytes.length)
          const [counted] = yield* env.sql<{ n: number; max: number }>`
            select count(*)::int as n, max(row_index) as max from assay.dataset_row where dataset_id = ${dataset.id}`
          expect(counted).toEqual({ n: 100_000, max: 99_999 })
          const last = yield* env.datasets.preview(owner, dataset.id, { offset: 99_999 })
          expect(last.rows).toEqual([
            { index: 99_999, values: { id: "99999", text: "row 99999, with a comma", label: "odd" } }
          ])
          expect(yield* filesUnder(env.tmp)).toEqual([])
        }),
      { timeout: 300_000 }
    )
  })
}
