import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import { BadRequest, PayloadTooLarge } from "../src/domain/Errors.ts"
import {
  detectFormat,
  parseDataset,
  type DatasetFormat,
  type ParsedRow,
  type ParseLimits
} from "../src/services/DatasetParser.ts"

const encoder = new TextEncoder()
const bytes = (text: string) => encoder.encode(text)
const BOM = "\ufeff"
const LIMITS: ParseLimits = { maxRows: 1_000, maxBytes: 1_000_000 }

/** A stream of the given chunks, recording how many were pulled and whether it was cancelled. */
const streamOf = (chunks: ReadonlyArray<string | Uint8Array>) => {
  const state = { pulled: 0, cancelled: false }
  let i = 0
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = chunks[i++]
        if (chunk === undefined) return controller.close()
        state.pulled++
        controller.enqueue(typeof chunk === "string" ? bytes(chunk) : chunk)
      },
      cancel() {
        state.cancelled = true
      }
    },
    { highWaterMark: 0 }
  )
  return { stream, state }
}

/** An endless stream: `header` once, then `row(i)` forever, in chunks of `rowsPerChunk` rows. */
const endless = (header: string, row: (i: number) => string, rowsPerChunk = 100) => {
  const state = { pulled: 0, cancelled: false }
  let next = 0
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        let text = state.pulled === 0 ? header : ""
        for (let k = 0; k < rowsPerChunk; k++) text += row(next++)
        state.pulled++
        controller.enqueue(bytes(text))
      },
      cancel() {
        state.cancelled = true
      }
    },
    { highWaterMark: 0 }
  )
  return { stream, state }
}

const parse = (
  format: DatasetFormat,
  chunks: ReadonlyArray<string | Uint8Array>,
  options: { readonly limits?: ParseLimits; readonly batchSize?: number } = {}
) =>
  Effect.gen(function* () {
    const rows: Array<ParsedRow> = []
    const batches: Array<number> = []
    const summary = yield* parseDataset({
      format,
      body: streamOf(chunks).stream,
      limits: options.limits ?? LIMITS,
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
      onBatch: (batch) =>
        Effect.sync(() => {
          batches.push(batch.length)
          rows.push(...batch)
        })
    })
    return { summary, rows, batches, values: rows.map((row) => row.values) }
  })

const failure = (format: DatasetFormat, chunks: ReadonlyArray<string | Uint8Array>, limits?: ParseLimits) =>
  Effect.flip(parse(format, chunks, limits ? { limits } : {}))

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex")

/** Every way to cut `text` in two, plus one byte at a time: the result must never depend on chunking. */
const chunkings = (text: string): ReadonlyArray<ReadonlyArray<Uint8Array>> => {
  const all = bytes(text)
  const cuts: Array<ReadonlyArray<Uint8Array>> = [[all], Array.from(all, (b) => Uint8Array.of(b))]
  for (let at = 1; at < all.length; at++) cuts.push([all.slice(0, at), all.slice(at)])
  return cuts
}

describe("detectFormat", () => {
  it("prefers the extension, then the content type, then the first byte", () => {
    expect(detectFormat("rows.CSV", "application/json", bytes("[{}]"))).toBe("csv")
    expect(detectFormat("rows.jsonl", undefined, bytes("a,b"))).toBe("jsonl")
    expect(detectFormat("rows.ndjson", undefined, bytes("a,b"))).toBe("jsonl")
    expect(detectFormat("rows.json", undefined, bytes("a,b"))).toBe("json")
    expect(detectFormat("rows.txt", "text/csv; charset=utf-8", bytes("[{}]"))).toBe("csv")
    expect(detectFormat(undefined, "application/x-ndjson", bytes("[{}]"))).toBe("jsonl")
    expect(detectFormat(undefined, "application/json", bytes("a,b"))).toBe("json")
    expect(detectFormat("upload", "application/octet-stream", bytes(`${BOM} \r\n [{"a":1}]`))).toBe("json")
    expect(detectFormat(undefined, undefined, bytes('\n{"a":1}\n'))).toBe("jsonl")
    expect(detectFormat(undefined, undefined, bytes("a,b\n1,2"))).toBe("csv")
  })
})

describe("CSV", () => {
  it.effect("reads a header and string values, with a BOM, CRLF and quoted commas, quotes and newlines", () =>
    Effect.gen(function* () {
      const text = `${BOM}id,text,note\r\n1,"a, b","say ""hi"""\r\n2,"two\r\nlines",\r\n3,plain,"x"\r\n`
      const { summary, values, rows } = yield* parse("csv", [text])
      expect(summary).toEqual({ headers: ["id", "text", "note"], rowCount: 3, byteSize: bytes(text).length })
      expect(values).toEqual([
        { id: "1", text: "a, b", note: 'say "hi"' },
        { id: "2", text: "two\r\nlines", note: "" },
        { id: "3", text: "plain", note: "x" }
      ])
      expect(rows.map((row) => row.index)).toEqual([0, 1, 2])
    })
  )

  it.effect("gives the same rows however the bytes are chunked, with LF or CRLF and multi-byte text", () =>
    Effect.gen(function* () {
      for (const nl of ["\n", "\r\n"]) {
        const text = `name,quote${nl}Zoë,"«ça va»${nl}— oui"${nl}"𝄞 clef","a,""b"""`
        const expected = [
          { name: "Zoë", quote: `«ça va»${nl}— oui` },
          { name: "𝄞 clef", quote: 'a,"b"' }
        ]
        for (const chunks of chunkings(text)) {
          const { values, summary } = yield* parse("csv", chunks)
          expect(values).toEqual(expected)
          expect(summary.headers).toEqual(["name", "quote"])
        }
      }
    })
  )

  it.effect("trims header names, skips blank lines and keeps a lone-CR file apart", () =>
    Effect.gen(function* () {
      const { summary, values } = yield* parse("csv", [" a , b\n1,2\n\n3,4\n\n"])
      expect(summary.headers).toEqual(["a", "b"])
      expect(values).toEqual([
        { a: "1", b: "2" },
        { a: "3", b: "4" }
      ])
      const cr = yield* parse("csv", ["a,b\r1,2\r3,4"])
      expect(cr.values).toEqual([
        { a: "1", b: "2" },
        { a: "3", b: "4" }
      ])
    })
  )

  it.effect("a header named __proto__ is an ordinary column", () =>
    Effect.gen(function* () {
      const { values } = yield* parse("csv", ["__proto__,b\nx,y\n"])
      expect(Object.keys(values[0]!)).toEqual(["__proto__", "b"])
      expect(Object.getOwnPropertyDescriptor(values[0], "__proto__")?.value).toBe("x")
    })
  )

  it.effect("missing_header: the first line is blank", () =>
    Effect.gen(function* () {
      const error = yield* failure("csv", ["\na,b\n1,2\n"])
      expect(error).toBeInstanceOf(BadRequest)
      expect(error.code).toBe("missing_header")
      const quotedOnly = yield* failure("csv", ['""\n'])
      expect(quotedOnly.code).toBe("missing_header")
    })
  )

  it.effect("empty_header and duplicate_header name the column", () =>
    Effect.gen(function* () {
      const empty = yield* failure("csv", ["a, ,c\n1,2,3\n"])
      expect(empty).toBeInstanceOf(BadRequest)
      expect(empty.code).toBe("empty_header")
      expect(empty.details).toEqual({ column: 2 })
      const duplicate = yield* failure("csv", ["a,b,a\n1,2,3\n"])
      expect(duplicate).toBeInstanceOf(BadRequest)
      expect(duplicate.code).toBe("duplicate_header")
      expect(duplicate.details).toEqual({ name: "a" })
    })
  )

  it.effect("field_count_mismatch gives the data row, its line, and the counts", () =>
    Effect.gen(function* () {
      const error = yield* failure("csv", ['a,b\n1,2\n"multi\nline",2\n3,4,5\n'])
      expect(error).toBeInstanceOf(BadRequest)
      expect(error.code).toBe("field_count_mismatch")
      expect(error.details).toEqual({ row: 3, line: 5, expected: 2, got: 3 })
      expect(error.message).toContain("Row 3")
    })
  )

  it.effect("malformed_csv: an unterminated or badly closed quoted field", () =>
    Effect.gen(function* () {
      const unterminated = yield* failure("csv", ['a,b\n1,2\n3,"open\n4,5\n'])
      expect(unterminated.code).toBe("malformed_csv")
      expect(unterminated.details).toEqual({ row: 2, line: 3 })
      const badClose = yield* failure("csv", ['a,b\n"x"y,2\n'])
      expect(badClose.code).toBe("malformed_csv")
      expect(badClose.details).toEqual({ row: 1, line: 2 })
    })
  )

  it.effect("no_rows: a header and nothing else", () =>
    Effect.gen(function* () {
      const error = yield* failure("csv", ["a,b\r\n\r\n"])
      expect(error).toBeInstanceOf(BadRequest)
      expect(error.code).toBe("no_rows")
    })
  )

  it.effect("invalid_character: a NUL byte cannot be stored", () =>
    Effect.gen(function* () {
      const error = yield* failure("csv", ["a\nok\nx\u0000y\n"])
      expect(error.code).toBe("invalid_character")
      expect(error.details).toEqual({ row: 2, line: 3 })
    })
  )
})

describe("JSON", () => {
  it.effect("keeps non-string values as JSON and unions the keys in first-seen order", () =>
    Effect.gen(function* () {
      const text = ` [\n {"b": 1.5, "a": true, "n": null},\n {"c": {"d": [1, "x", {"e": false}]}, "a": "s\\"]}"},\n {} ]\n`
      const { summary, values } = yield* parse("json", [text])
      expect(summary).toEqual({ headers: ["b", "a", "n", "c"], rowCount: 3, byteSize: bytes(text).length })
      expect(values).toEqual([
        { b: 1.5, a: true, n: null },
        { c: { d: [1, "x", { e: false }] }, a: 's"]}' },
        {}
      ])
    })
  )

  it.effect("gives the same rows however the bytes are chunked", () =>
    Effect.gen(function* () {
      const text = `${BOM}[{"k":"é\\\\","v":[{"w":"}"}]},\r\n{"k":"𝄞","v":-2e3}]`
      for (const chunks of chunkings(text)) {
        const { values } = yield* parse("json", chunks)
        expect(values).toEqual([
          { k: "é\\", v: [{ w: "}" }] },
          { k: "𝄞", v: -2000 }
        ])
      }
    })
  )

  it.effect("not_array_of_objects: a top-level object or an element that is not an object", () =>
    Effect.gen(function* () {
      const top = yield* failure("json", ['{"a":1}'])
      expect(top).toBeInstanceOf(BadRequest)
      expect(top.code).toBe("not_array_of_objects")
      const element = yield* failure("json", ['[{"a":1},\n[2]]'])
      expect(element.code).toBe("not_array_of_objects")
      expect(element.details).toEqual({ row: 2, line: 2 })
      const scalar = yield* failure("json", ['[{"a":1}, {"a":2}, "three"]'])
      expect(scalar.details).toEqual({ row: 3, line: 1 })
    })
  )

  it.effect(
    "malformed_json: a bad element, a missing comma, a trailing comma, an unclosed array, trailing text",
    () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [string, unknown]> = [
          ['[{"a":1},\n{"a":}]', { row: 2, line: 2 }],
          ['[{"a":1} {"a":2}]', { row: 2, line: 1 }],
          ['[{"a":1},]', { row: 2, line: 1 }],
          ['[{"a":1},\n{"a":2}', { row: 3, line: 2 }],
          ['[{"a":1}] x', { line: 1 }],
          ["# not json", { line: 1 }]
        ]
        for (const [text, details] of cases) {
          const error = yield* failure("json", [text])
          expect(error).toBeInstanceOf(BadRequest)
          expect(error.code).toBe("malformed_json")
          expect(error.details).toEqual(details)
        }
      })
  )

  it.effect("no_rows: an empty array", () =>
    Effect.gen(function* () {
      const error = yield* failure("json", [" [ ] "])
      expect(error.code).toBe("no_rows")
    })
  )

  it.effect("invalid_character: an escaped NUL or an unpaired surrogate", () =>
    Effect.gen(function* () {
      const nul = yield* failure("json", ['[{"a":"x\\u0000"}]'])
      expect(nul.code).toBe("invalid_character")
      expect(nul.details).toEqual({ row: 1, line: 1 })
      const surrogate = yield* failure("jsonl", ['{"a":"ok"}\n{"a":"\\ud800"}\n'])
      expect(surrogate.code).toBe("invalid_character")
      expect(surrogate.details).toEqual({ row: 2, line: 2 })
      const paired = yield* parse("jsonl", ['{"a":"\\ud834\\udd1e"}'])
      expect(paired.values).toEqual([{ a: "𝄞" }])
    })
  )
})

describe("JSON Lines", () => {
  it.effect("reads one object per line with CRLF and blank lines, values kept as JSON", () =>
    Effect.gen(function* () {
      const text = `${BOM}{"a":1,"b":"x"}\r\n\r\n  \n{"b":null,"c":[true]}\n{"a":{"z":0}}`
      for (const chunks of chunkings(text)) {
        const { summary, values } = yield* parse("jsonl", chunks)
        expect(summary.headers).toEqual(["a", "b", "c"])
        expect(values).toEqual([{ a: 1, b: "x" }, { b: null, c: [true] }, { a: { z: 0 } }])
      }
    })
  )

  it.effect("malformed_json and not_array_of_objects give the line and row", () =>
    Effect.gen(function* () {
      const malformed = yield* failure("jsonl", ['{"a":1}\n\n{"a":\n'])
      expect(malformed).toBeInstanceOf(BadRequest)
      expect(malformed.code).toBe("malformed_json")
      expect(malformed.details).toEqual({ row: 2, line: 3 })
      const notObject = yield* failure("jsonl", ['{"a":1}\n[1,2]\n'])
      expect(notObject.code).toBe("not_array_of_objects")
      expect(notObject.details).toEqual({ row: 2, line: 2 })
    })
  )
})

describe("every format", () => {
  it.effect("empty_file: no bytes, only whitespace, or only a BOM", () =>
    Effect.gen(function* () {
      for (const format of ["csv", "json", "jsonl"] as const) {
        for (const chunks of [
          [],
          [" \r\n\t\n"],
          [BOM],
          [bytes(BOM).slice(0, 2), bytes(BOM).slice(2), "\n"]
        ]) {
          const error = yield* failure(format, chunks)
          expect(error).toBeInstanceOf(BadRequest)
          expect(error.code).toBe("empty_file")
        }
      }
    })
  )

  it.effect("invalid_utf8 gives the byte offset, also across chunks and at the very end", () =>
    Effect.gen(function* () {
      const bad = yield* failure("csv", ["a\nok\n", Uint8Array.of(0x78, 0xff, 0x0a)])
      expect(bad).toBeInstanceOf(BadRequest)
      expect(bad.code).toBe("invalid_utf8")
      expect(bad.details).toEqual({ offset: 6 })
      // é is C3 A9: a split sequence is fine, a broken one is not
      const split = yield* parse("jsonl", [
        bytes('{"a":"'),
        Uint8Array.of(0xc3),
        Uint8Array.of(0xa9, 0x22, 0x7d)
      ])
      expect(split.values).toEqual([{ a: "é" }])
      const broken = yield* failure("jsonl", [
        Uint8Array.of(0x7b, 0x7d, 0x0a, 0xe2, 0x82),
        Uint8Array.of(0x41)
      ])
      expect(broken.details).toEqual({ offset: 3 })
      const truncated = yield* failure("jsonl", [Uint8Array.of(0x7b, 0x7d, 0x0a, 0xf0, 0x9d)])
      expect(truncated.details).toEqual({ offset: 3 })
    })
  )

  it.effect("rows keep their order and checksums are sha256 of canonical JSON, stable across formats", () =>
    Effect.gen(function* () {
      const csv = yield* parse("csv", ["b,a\nx,1\ny,2\n"])
      const jsonl = yield* parse("jsonl", ['{"a":"1","b":"x"}\n{"b":"y","a":"2"}\n'])
      expect(csv.rows.map((row) => [row.index, row.values.b])).toEqual([
        [0, "x"],
        [1, "y"]
      ])
      expect(csv.rows[0]!.checksum).toBe(sha256('{"a":"1","b":"x"}'))
      expect(csv.rows[1]!.checksum).toBe(sha256('{"a":"2","b":"y"}'))
      expect(jsonl.rows.map((row) => row.checksum)).toEqual(csv.rows.map((row) => row.checksum))
      const again = yield* parse("csv", ["b,a\nx,1\ny,2\n"])
      expect(again.rows.map((row) => row.checksum)).toEqual(csv.rows.map((row) => row.checksum))
      // nested keys are sorted too, and a number differs from its string
      const nested = yield* parse("json", ['[{"z":{"y":1,"x":[{"b":2,"a":3}]},"a":"1"},{"a":1}]'])
      expect(nested.rows[0]!.checksum).toBe(sha256('{"a":"1","z":{"x":[{"a":3,"b":2}],"y":1}}'))
      expect(nested.rows[1]!.checksum).toBe(sha256('{"a":1}'))
      expect(nested.rows[1]!.checksum).not.toBe(sha256('{"a":"1"}'))
    })
  )

  it.effect("onBatch gets full batches in order and then the rest", () =>
    Effect.gen(function* () {
      const lines = Array.from({ length: 23 }, (_, i) => `${i},v${i}\n`)
      const { batches, rows, summary } = yield* parse("csv", ["i,v\n", ...lines], { batchSize: 5 })
      expect(batches).toEqual([5, 5, 5, 5, 3])
      expect(rows.map((row) => row.values.i)).toEqual(lines.map((_, i) => String(i)))
      expect(rows.map((row) => row.index)).toEqual(lines.map((_, i) => i))
      expect(summary.rowCount).toBe(23)
    })
  )

  it.effect("too_many_rows is a 413 with the limit, and reading stops", () =>
    Effect.gen(function* () {
      for (const [format, header, row] of [
        ["csv", "a,b\n", (i: number) => `${i},x\n`],
        ["jsonl", "", (i: number) => `{"i":${i}}\n`],
        ["json", "[", (i: number) => `{"i":${i}},`]
      ] as const) {
        const source = endless(header, row)
        const delivered: Array<number> = []
        const error = yield* Effect.flip(
          parseDataset({
            format,
            body: source.stream,
            limits: { maxRows: 250, maxBytes: 1_000_000_000 },
            batchSize: 100,
            onBatch: (batch) => Effect.sync(() => delivered.push(batch.length))
          })
        )
        expect(error).toBeInstanceOf(PayloadTooLarge)
        expect(error.code).toBe("too_many_rows")
        expect(error.details).toEqual({ limit: 250 })
        expect(source.state.cancelled).toBe(true)
        expect(source.state.pulled).toBe(3)
        expect(delivered).toEqual([100, 100])
      }
    })
  )

  it.effect("exactly maxRows rows is fine", () =>
    Effect.gen(function* () {
      const { summary } = yield* parse("csv", ["a\n1\n2\n3\n"], { limits: { maxRows: 3, maxBytes: 100 } })
      expect(summary.rowCount).toBe(3)
    })
  )

  it.effect("file_too_large is a 413 with the limit, and reading stops", () =>
    Effect.gen(function* () {
      const source = endless("a\n", (i) => `${i}\n`, 1_000)
      const error = yield* Effect.flip(
        parseDataset({
          format: "csv",
          body: source.stream,
          limits: { maxRows: 1_000_000_000, maxBytes: 20_000 },
          onBatch: () => Effect.void
        })
      )
      expect(error).toBeInstanceOf(PayloadTooLarge)
      expect(error.code).toBe("file_too_large")
      expect(error.details).toEqual({ limit: 20_000 })
      expect(source.state.cancelled).toBe(true)
      expect(source.state.pulled).toBeLessThan(10)
      // exactly maxBytes is fine
      const exact = yield* parse("csv", ["a\n1\n"], { limits: { maxRows: 10, maxBytes: 4 } })
      expect(exact.summary.byteSize).toBe(4)
    })
  )

  it.effect("a parse error stops reading at once", () =>
    Effect.gen(function* () {
      const source = endless("a,b\n1,2\n3\n", (i) => `${i},x\n`)
      const error = yield* Effect.flip(
        parseDataset({ format: "csv", body: source.stream, limits: LIMITS, onBatch: () => Effect.void })
      )
      expect(error.code).toBe("field_count_mismatch")
      expect(source.state.pulled).toBe(1)
      expect(source.state.cancelled).toBe(true)
    })
  )

  it.effect("an onBatch failure stops parsing with that error", () =>
    Effect.gen(function* () {
      class StoreFailed extends Data.TaggedError("StoreFailed")<{ readonly batch: number }> {}
      const source = endless("a\n", (i) => `${i}\n`)
      let calls = 0
      const error = yield* Effect.flip(
        parseDataset({
          format: "csv",
          body: source.stream,
          limits: { maxRows: 1_000_000, maxBytes: 1_000_000_000 },
          batchSize: 30,
          onBatch: () => (++calls === 2 ? Effect.fail(new StoreFailed({ batch: calls })) : Effect.void)
        })
      )
      expect(error).toEqual(new StoreFailed({ batch: 2 }))
      expect(calls).toBe(2)
      expect(source.state.cancelled).toBe(true)
    })
  )
})

describe("a large CSV", () => {
  it.live(
    "200k rows stream through with bounded heap and full batches",
    () =>
      Effect.gen(function* () {
        const ROWS = 200_000
        const padding = "lorem ipsum dolor sit amet ".repeat(4)
        const row = (i: number) => `${i},"text ${i}, with a comma and ""quotes""",${padding}${i}\n`
        let produced = 0
        let fileBytes = 0
        const body = new ReadableStream<Uint8Array>(
          {
            pull(controller) {
              if (produced >= ROWS) return controller.close()
              let text = produced === 0 ? "id,text,padding\n" : ""
              for (let k = 0; k < 400 && produced < ROWS; k++) text += row(produced++)
              const chunk = bytes(text)
              fileBytes += chunk.length
              controller.enqueue(chunk)
            }
          },
          { highWaterMark: 0 }
        )
        Bun.gc(true)
        const baseline = process.memoryUsage().heapUsed
        let peak = 0
        const batchSizes: Array<number> = []
        let lastIndex = -1
        let orderOk = true
        const summary = yield* parseDataset({
          format: "csv",
          body,
          limits: { maxRows: ROWS, maxBytes: 100_000_000 },
          batchSize: 500,
          onBatch: (batch) =>
            Effect.sync(() => {
              batchSizes.push(batch.length)
              for (const r of batch) {
                if (r.index !== lastIndex + 1 || r.values.id !== String(r.index)) orderOk = false
                lastIndex = r.index
              }
              if (batchSizes.length % 40 === 0) {
                Bun.gc(true)
                peak = Math.max(peak, process.memoryUsage().heapUsed - baseline)
              }
            })
        })
        expect(summary.rowCount).toBe(ROWS)
        expect(summary.byteSize).toBe(fileBytes)
        expect(summary.headers).toEqual(["id", "text", "padding"])
        expect(orderOk).toBe(true)
        expect(lastIndex).toBe(ROWS - 1)
        expect(batchSizes.length).toBe(ROWS / 500)
        expect(batchSizes.every((size) => size === 500)).toBe(true)
        expect(fileBytes).toBeGreaterThan(30_000_000)
        // the heap grows by a few chunks and batches, not by the file
        expect(peak).toBeLessThan(fileBytes / 10)
      }),
    120_000
  )
})
