import { Effect } from "effect"
import Papa from "papaparse"
import { BadRequest, PayloadTooLarge } from "../domain/Errors.ts"

/**
 * Streaming parser for uploaded datasets (CSV, a JSON array of objects, JSON Lines). It reads the body chunk by
 * chunk and hands rows to `onBatch` in order, so memory stays bounded by a chunk, a batch and the longest row,
 * whatever the file size. Every failure is a `BadRequest` (400) or `PayloadTooLarge` (413) with a stable `code`.
 */

export type DatasetFormat = "csv" | "json" | "jsonl"

export interface ParsedRow {
  /** Position among the stored rows, from 0. */
  readonly index: number
  readonly values: Record<string, unknown>
  /** sha256 (hex) of the values as canonical JSON: keys sorted by UTF-16 code unit, no whitespace. */
  readonly checksum: string
}

export interface ParseLimits {
  readonly maxRows: number
  readonly maxBytes: number
}

export interface ParseSummary {
  readonly headers: ReadonlyArray<string>
  readonly rowCount: number
  readonly byteSize: number
}

export interface ParseOptions<E, R> {
  readonly format: DatasetFormat
  /** The raw bytes, e.g. `Bun.file(path).stream()`; cancelled as soon as parsing stops. */
  readonly body: ReadableStream<Uint8Array>
  readonly limits: ParseLimits
  /** Rows per `onBatch` call; every batch but the last is full. Default 500. */
  readonly batchSize?: number
  /** Called in order, one batch at a time: the next chunk is not read until it completes. */
  readonly onBatch: (rows: ReadonlyArray<ParsedRow>) => Effect.Effect<void, E, R>
}

export const DEFAULT_BATCH_SIZE = 500

/** Where a row sits in the file, for error details: 1-based data row and, when known, 1-based line. */
interface Place {
  readonly row: number
  readonly line?: number | undefined
}

const placeText = (place: Place, noun = "Row") =>
  place.line === undefined ? `${noun} ${place.row}` : `${noun} ${place.row} (line ${place.line})`

const badRequest = (code: string, message: string, details?: unknown) =>
  new BadRequest(details === undefined ? { code, message } : { code, message, details })

// ---------------------------------------------------------------------------------------------------------------
// Format detection
// ---------------------------------------------------------------------------------------------------------------

const formatByExtension = (filename: string): DatasetFormat | undefined => {
  const lower = filename.toLowerCase()
  if (lower.endsWith(".csv")) return "csv"
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl"
  if (lower.endsWith(".json")) return "json"
  return undefined
}

const formatByContentType = (contentType: string): DatasetFormat | undefined => {
  const mime = contentType.split(";")[0]!.trim().toLowerCase()
  if (mime === "text/csv" || mime === "application/csv" || mime === "application/vnd.ms-excel") return "csv"
  if (/^application\/(x-)?(ndjson|jsonl|jsonlines|json-lines)$/.test(mime)) return "jsonl"
  if (mime === "application/json" || mime === "text/json") return "json"
  return undefined
}

/** The file name's extension wins, then the content type, then the first non-blank byte (`[` JSON, `{` JSONL). */
export const detectFormat = (
  filename: string | undefined,
  contentType: string | undefined,
  firstBytes: Uint8Array
): DatasetFormat => {
  const byName = filename ? formatByExtension(filename) : undefined
  if (byName) return byName
  const byType = contentType ? formatByContentType(contentType) : undefined
  if (byType) return byType
  let i = firstBytes[0] === 0xef && firstBytes[1] === 0xbb && firstBytes[2] === 0xbf ? 3 : 0
  while (i < firstBytes.length && isJsonWhitespace(firstBytes[i]!)) i++
  if (firstBytes[i] === 0x5b) return "json"
  if (firstBytes[i] === 0x7b) return "jsonl"
  return "csv"
}

// ---------------------------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------------------------

const continuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80

/** Index of the first byte of the first invalid sequence; -1 if all is valid (an unfinished end counts as valid). */
const firstInvalidUtf8 = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      continue
    }
    let length: number
    let low = 0x80
    let high = 0xbf
    if (b >= 0xc2 && b <= 0xdf) length = 2
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3
      if (b === 0xe0) low = 0xa0
      if (b === 0xed) high = 0x9f
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4
      if (b === 0xf0) low = 0x90
      if (b === 0xf4) high = 0x8f
    } else return i
    for (let k = 1; k < length; k++) {
      const next = bytes[i + k]
      if (next === undefined) return -1
      if (k === 1 ? next < low || next > high : !continuation(next)) return i
    }
    i += length
  }
  return -1
}

/** How many bytes at the end start a sequence that the next chunk must finish (the input is valid UTF-8). */
const unfinishedTail = (bytes: Uint8Array): number => {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const b = bytes[bytes.length - back]!
    if (continuation(b)) continue
    const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1
    return length > back ? back : 0
  }
  return 0
}

const invalidUtf8 = (offset: number) =>
  badRequest("invalid_utf8", `The file is not valid UTF-8 (at byte ${offset}).`, { offset })

/** A fatal streaming TextDecoder that also reports where the bad bytes are; a leading BOM is dropped. */
class Utf8Stream {
  private readonly decoder = new TextDecoder("utf-8", { fatal: true })
  private consumed = 0
  private tail = new Uint8Array(0)

  decode(chunk: Uint8Array): string {
    const start = this.consumed - this.tail.length
    const joined = this.tail.length === 0 ? chunk : concatBytes(this.tail, chunk)
    let text: string
    try {
      text = this.decoder.decode(chunk, { stream: true })
    } catch {
      const at = firstInvalidUtf8(joined)
      throw invalidUtf8(start + Math.max(at, 0))
    }
    this.consumed += chunk.length
    const keep = unfinishedTail(joined)
    this.tail = joined.slice(joined.length - keep)
    return text
  }

  end(): string {
    try {
      return this.decoder.decode()
    } catch {
      throw invalidUtf8(this.consumed - this.tail.length)
    }
  }
}

const concatBytes = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Rows: canonical JSON, checksums, characters the database cannot store
// ---------------------------------------------------------------------------------------------------------------

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

// Postgres text and jsonb reject U+0000 and unpaired surrogates: refuse them here as a 400, not later as a 500.
const storable = (text: string) =>
  !text.includes("\u0000") && !(/[\ud800-\udfff]/.test(text) && LONE_SURROGATE.test(text))

class Unstorable extends Error {}

const canonicalJson = (value: unknown): string => {
  if (typeof value === "string") {
    if (!storable(value)) throw new Unstorable()
    return JSON.stringify(value)
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).sort()
  return `{${keys.map((key) => `${canonicalJson(key)}:${canonicalJson(record[key])}`).join(",")}}`
}

/** The checksum stored with a row: sha256 hex of its canonical JSON. */
const rowChecksum = (values: Record<string, unknown>): string => Bun.SHA256.hash(canonicalJson(values), "hex")

/** Receives each row from a format splitter; throws the error that stops parsing. */
type RowSink = (values: Record<string, unknown>, line: number | undefined) => void

/** A format's incremental splitter: text in (decoded, in order), rows out through the sink. */
interface Splitter {
  push(text: string): void
  end(): void
  headers(): ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------------------------

type Newline = "\n" | "\r\n" | "\r"

/** The first line break outside quotes, or undefined while the text cannot tell yet. */
const detectNewline = (text: string, final: boolean): Newline | undefined => {
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) quoted = !quoted
    else if (!quoted && c === 0x0a) return "\n"
    else if (!quoted && c === 0x0d) {
      if (i + 1 < text.length) return text.charCodeAt(i + 1) === 0x0a ? "\r\n" : "\r"
      if (final) return "\r"
      return undefined
    }
  }
  return final ? "\n" : undefined
}

const countOf = (text: string, needle: string, from: number, to: number) => {
  let n = 0
  for (let i = text.indexOf(needle, from); i !== -1 && i < to; i = text.indexOf(needle, i + 1)) n++
  return n
}

const isBlankRow = (fields: ReadonlyArray<string>) => fields.length === 1 && fields[0]!.trim() === ""

/** What papaparse's core parser hands `step`: the one row just completed, and any quote errors in it. */
interface PapaStep {
  readonly data: ReadonlyArray<ReadonlyArray<string>>
  readonly errors: ReadonlyArray<Papa.ParseError>
  readonly meta: { readonly cursor: number }
}

/**
 * RFC 4180 CSV through papaparse's core parser, fed chunk by chunk the way its own streamers do: the unfinished
 * last row is kept and parsed again with the next chunk. A row that spans many chunks is re-parsed only once the
 * pending text has doubled, so a huge quoted field costs linear, not quadratic, time.
 */
class CsvSplitter implements Splitter {
  private parser: Papa.Parser | undefined
  private newline: Newline = "\n"
  private pending = ""
  private reparseAt = 0
  /** Line breaks counted so far, up to `counted` in `pending`. */
  private lines = 0
  private counted = 0
  private rowStart = 0
  private header: ReadonlyArray<string> | undefined
  private sawBlankFirstLine = false
  private dataRows = 0

  constructor(private readonly sink: RowSink) {}

  headers() {
    return this.header ?? []
  }

  push(text: string) {
    this.pending += text
    if (this.pending.length < this.reparseAt) return
    if (this.start(false)) this.run(false)
    else this.reparseAt = this.pending.length * 2
  }

  end() {
    this.start(true)
    this.run(true)
    if (this.header === undefined) throw missingHeader()
  }

  private start(final: boolean): boolean {
    if (this.parser) return true
    const newline = detectNewline(this.pending, final)
    if (newline === undefined) return false
    this.newline = newline
    this.parser = new Papa.Parser({
      delimiter: ",",
      quoteChar: '"',
      newline,
      step: (results: PapaStep) => this.onRow(results)
    })
    return true
  }

  /** The 1-based line at `offset` in `pending`; offsets only move forward. */
  private lineAt(offset: number) {
    this.lines += countOf(this.pending, this.newline === "\r" ? "\r" : "\n", this.counted, offset)
    this.counted = offset
    return this.lines + 1
  }

  private onRow(results: PapaStep) {
    const fields = results.data[0] ?? [""]
    const line = this.lineAt(this.rowStart)
    this.rowStart = results.meta.cursor
    if (isBlankRow(fields)) {
      if (this.header === undefined) this.sawBlankFirstLine = true
      return
    }
    if (this.header === undefined) {
      if (this.sawBlankFirstLine) throw missingHeader()
      if (results.errors.length > 0)
        throw badRequest("malformed_csv", `The header row has a badly quoted field.`, { line })
      this.header = checkHeader(fields)
      return
    }
    const place = { row: this.dataRows + 1, line }
    if (results.errors.length > 0)
      throw badRequest("malformed_csv", `${placeText(place)} has a badly quoted field.`, place)
    if (fields.length !== this.header.length)
      throw badRequest(
        "field_count_mismatch",
        `${placeText(place)} has ${fields.length} field(s); the header has ${this.header.length}.`,
        { ...place, expected: this.header.length, got: fields.length }
      )
    const header = this.header
    this.dataRows++
    this.sink(Object.fromEntries(header.map((name, i) => [name, fields[i]!])), line)
  }

  private run(final: boolean) {
    if (!this.parser) return
    this.rowStart = 0
    const results = this.parser.parse(this.pending, 0, !final) as PapaStep
    if (final) return
    const consumed = results.meta.cursor
    this.lineAt(consumed)
    this.pending = this.pending.slice(consumed)
    this.counted = 0
    this.reparseAt = consumed === 0 ? this.pending.length * 2 : 0
  }
}

const missingHeader = () =>
  badRequest("missing_header", "A CSV file must start with a header row naming its columns.")

const checkHeader = (fields: ReadonlyArray<string>): ReadonlyArray<string> => {
  const names = fields.map((field) => field.trim())
  const seen = new Set<string>()
  names.forEach((name, i) => {
    if (name === "")
      throw badRequest("empty_header", `Column ${i + 1} of the header has no name.`, { column: i + 1 })
    if (!storable(name))
      throw badRequest(
        "invalid_character",
        `Column ${i + 1} of the header has a character that cannot be stored.`,
        {
          column: i + 1
        }
      )
    if (seen.has(name)) throw badRequest("duplicate_header", `The header names "${name}" twice.`, { name })
    seen.add(name)
  })
  return names
}

// ---------------------------------------------------------------------------------------------------------------
// JSON (one top-level array) and JSON Lines
// ---------------------------------------------------------------------------------------------------------------

const isJsonWhitespace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Characters that start a JSON value other than an object. */
const NON_OBJECT_START = new Set(Array.from('["-0123456789tfn', (c) => c.charCodeAt(0)))

type JsonState = "start" | "first-element" | "next-element" | "in-element" | "after-element" | "done"

/**
 * Splits a top-level JSON array into its elements without parsing the whole file: it tracks strings, escapes and
 * bracket depth, and `JSON.parse`s each element (which must be an object) on its own.
 */
class JsonArraySplitter implements Splitter {
  private state: JsonState = "start"
  private parts: Array<string> = []
  private depth = 0
  private inString = false
  private escaped = false
  private line = 1
  private elementLine = 1
  private elements = 0
  private readonly keys = new Set<string>()

  constructor(private readonly sink: RowSink) {}

  headers() {
    return [...this.keys]
  }

  push(text: string) {
    let start = this.state === "in-element" ? 0 : -1
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (this.state === "in-element") {
        if (this.inString) {
          if (this.escaped) this.escaped = false
          else if (c === 0x5c) this.escaped = true
          else if (c === 0x22) this.inString = false
          else if (c === 0x0a) this.line++
        } else if (c === 0x22) this.inString = true
        else if (c === 0x7b || c === 0x5b) this.depth++
        else if (c === 0x7d || c === 0x5d) {
          if (--this.depth === 0) {
            this.parts.push(text.slice(start, i + 1))
            this.element(this.parts.join(""))
            this.parts = []
            this.state = "after-element"
          }
        } else if (c === 0x0a) this.line++
        continue
      }
      if (c === 0x0a) this.line++
      if (isJsonWhitespace(c)) continue
      switch (this.state) {
        case "start":
          if (c === 0x5b) this.state = "first-element"
          else if (c === 0x7b || NON_OBJECT_START.has(c))
            throw badRequest("not_array_of_objects", "A JSON dataset must be an array of objects.", {
              line: this.line
            })
          else
            throw badRequest("malformed_json", "The file does not start with a JSON array.", {
              line: this.line
            })
          break
        case "first-element":
        case "next-element":
          if (c === 0x5d && this.state === "first-element") this.state = "done"
          else if (c === 0x7b) {
            this.state = "in-element"
            this.depth = 1
            this.elementLine = this.line
            start = i
          } else if (NON_OBJECT_START.has(c)) {
            const place = { row: this.elements + 1, line: this.line }
            throw badRequest(
              "not_array_of_objects",
              `${placeText(place, "Element")} is not an object.`,
              place
            )
          } else throw this.malformed(`Expected an object at ${placeText(this.next(), "element")}.`)
          break
        case "after-element":
          if (c === 0x2c) this.state = "next-element"
          else if (c === 0x5d) this.state = "done"
          else throw this.malformed(`Expected "," or "]" before ${placeText(this.next(), "element")}.`)
          break
        case "done":
          throw badRequest("malformed_json", `Unexpected text after the JSON array (line ${this.line}).`, {
            line: this.line
          })
      }
    }
    if (this.state === "in-element") this.parts.push(text.slice(start))
  }

  end() {
    if (this.state !== "done")
      throw this.malformed(`The JSON array is not closed (at ${placeText(this.next(), "element")}).`)
  }

  private next(): Place {
    return { row: this.elements + 1, line: this.line }
  }

  private malformed(message: string) {
    return badRequest("malformed_json", message, this.next())
  }

  private element(text: string) {
    const place = { row: this.elements + 1, line: this.elementLine }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw badRequest("malformed_json", `${placeText(place, "Element")} is not valid JSON.`, place)
    }
    if (!isPlainObject(value))
      throw badRequest("not_array_of_objects", `${placeText(place, "Element")} is not an object.`, place)
    this.elements++
    for (const key of Object.keys(value)) this.keys.add(key)
    this.sink(value, this.elementLine)
  }
}

/** One JSON object per line; blank lines are skipped. */
class JsonLinesSplitter implements Splitter {
  private carry = ""
  private line = 0
  private rows = 0
  private readonly keys = new Set<string>()

  constructor(private readonly sink: RowSink) {}

  headers() {
    return [...this.keys]
  }

  push(text: string) {
    let from = 0
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
      const line = this.carry + text.slice(from, nl)
      this.carry = ""
      from = nl + 1
      this.handle(line)
    }
    this.carry += text.slice(from)
  }

  end() {
    if (this.carry !== "") this.handle(this.carry)
    this.carry = ""
  }

  private handle(raw: string) {
    this.line++
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw
    if (text.trim() === "") return
    const place = { row: this.rows + 1, line: this.line }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw badRequest("malformed_json", `Line ${this.line} is not valid JSON.`, place)
    }
    if (!isPlainObject(value))
      throw badRequest("not_array_of_objects", `Line ${this.line} is not a JSON object.`, place)
    this.rows++
    for (const key of Object.keys(value)) this.keys.add(key)
    this.sink(value, this.line)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The parse loop
// ---------------------------------------------------------------------------------------------------------------

const makeSplitter = (format: DatasetFormat, sink: RowSink): Splitter => {
  switch (format) {
    case "csv":
      return new CsvSplitter(sink)
    case "json":
      return new JsonArraySplitter(sink)
    case "jsonl":
      return new JsonLinesSplitter(sink)
  }
}

/** Runs synchronous parsing code; the domain errors it throws become failures, anything else a defect. */
const attempt = (f: () => void): Effect.Effect<void, BadRequest | PayloadTooLarge> =>
  Effect.suspend(() => {
    try {
      f()
      return Effect.void
    } catch (error) {
      if (error instanceof BadRequest || error instanceof PayloadTooLarge) return Effect.fail(error)
      throw error
    }
  })

/**
 * Parses `body` as `format`, calling `onBatch` with each full batch of rows in order (and once more with the
 * rest), and returns the headers, row count and byte size. It stops reading at the first error or limit.
 */
export const parseDataset = <E, R>(
  options: ParseOptions<E, R>
): Effect.Effect<ParseSummary, BadRequest | PayloadTooLarge | E, R> => {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
  if (!Number.isInteger(batchSize) || batchSize < 1)
    return Effect.dieMessage(`batchSize must be a positive integer, got ${batchSize}`)
  const { maxBytes, maxRows } = options.limits

  const run = (reader: ReadableStreamDefaultReader<Uint8Array>) =>
    Effect.gen(function* () {
      let pending: Array<ParsedRow> = []
      let rowCount = 0
      const sink: RowSink = (values, line) => {
        const place = { row: rowCount + 1, line }
        if (rowCount >= maxRows)
          throw new PayloadTooLarge({
            code: "too_many_rows",
            message: `The dataset has more than ${maxRows} rows.`,
            details: { limit: maxRows }
          })
        let checksum: string
        try {
          checksum = rowChecksum(values)
        } catch (error) {
          if (!(error instanceof Unstorable)) throw error
          throw badRequest(
            "invalid_character",
            `${placeText(place)} contains a NUL character or an unpaired surrogate, which cannot be stored.`,
            place
          )
        }
        pending.push({ index: rowCount, values, checksum })
        rowCount++
      }
      const deliver = (all: boolean) =>
        Effect.gen(function* () {
          let from = 0
          while (pending.length - from >= batchSize || (all && from < pending.length)) {
            const batch = pending.slice(from, from + batchSize)
            from += batch.length
            yield* options.onBatch(batch)
          }
          pending = from === pending.length ? [] : pending.slice(from)
        })

      const splitter = makeSplitter(options.format, sink)
      const utf8 = new Utf8Stream()
      let byteSize = 0
      let sawContent = false
      const feed = (text: string) => {
        if (text === "") return
        if (!sawContent) sawContent = /\S/.test(text)
        splitter.push(text)
      }

      for (;;) {
        const chunk = yield* Effect.promise(() => reader.read())
        if (chunk.done) break
        byteSize += chunk.value.byteLength
        if (byteSize > maxBytes)
          return yield* new PayloadTooLarge({
            code: "file_too_large",
            message: `The file is larger than ${maxBytes} bytes.`,
            details: { limit: maxBytes }
          })
        yield* attempt(() => feed(utf8.decode(chunk.value)))
        yield* deliver(false)
      }
      yield* attempt(() => {
        feed(utf8.end())
        if (!sawContent) throw badRequest("empty_file", "The file is empty.")
        splitter.end()
        if (rowCount === 0) throw badRequest("no_rows", "The file has no data rows.")
      })
      yield* deliver(true)
      return { headers: splitter.headers(), rowCount, byteSize } satisfies ParseSummary
    })

  return Effect.acquireUseRelease(
    Effect.sync(() => options.body.getReader()),
    run,
    // Cancelling stops the source at once on failure; after a full read it is a no-op.
    (reader) => Effect.promise(() => reader.cancel().catch(() => undefined))
  ).pipe(Effect.withSpan("DatasetParser.parseDataset", { attributes: { format: options.format } }))
}
