import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { layerLocal, layerSupabase, Storage, StorageError } from "../src/services/Storage.ts"
import * as FakeSupabaseStorage from "./support/FakeSupabaseStorage.ts"

const SERVICE_KEY = "service-role-key-0123456789-abcdefghijklmnopqrstuvwxyz"
const BUCKET = "datasets"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "assay-storage-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const fakeSupabase = FakeSupabaseStorage.make({ serviceKey: SERVICE_KEY, buckets: [BUCKET] })

const supabaseLayer = (url: string, key = SERVICE_KEY) =>
  layerSupabase({ url, serviceRoleKey: Redacted.make(key), bucket: BUCKET })

const storageFrom = (layer: Layer.Layer<Storage>) => Effect.provide(Storage, layer)

const text = (stream: ReadableStream<Uint8Array>) => Effect.promise(() => new Response(stream).text())
const bytesOf = (stream: ReadableStream<Uint8Array>) =>
  Effect.promise(async () => new Uint8Array(await new Response(stream).arrayBuffer()))

/** Files under `dir`, relative, sorted. */
const filesUnder = (dir: string) =>
  Effect.promise(async () => {
    const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true })
    return entries
      .filter((entry) => entry.isFile())
      .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
      .sort()
  })

const BAD_KEYS = [
  "",
  "../escape.csv",
  "owner/../../escape.csv",
  "owner/..",
  "/etc/passwd",
  "owner\\dataset\\file.csv",
  "owner//file.csv",
  "owner/file.csv/",
  "owner/.hidden",
  "owner/a?b.csv",
  "owner/a#b.csv",
  "owner/a%2e%2e",
  "owner/\u0000.csv",
  "x".repeat(1025)
]

const adapters: ReadonlyArray<
  readonly [string, Effect.Effect<Layer.Layer<Storage>, never, import("effect").Scope.Scope>]
> = [
  ["local", Effect.map(tempDir, (root) => layerLocal({ root }))],
  ["supabase", Effect.map(fakeSupabase, (fake) => supabaseLayer(fake.url))]
]

describe.each(adapters)("Storage (%s)", (_name, makeLayer) => {
  it.scopedLive("round trip: what is put comes back byte for byte, and a second put replaces it", () =>
    Effect.gen(function* () {
      const storage = yield* storageFrom(yield* makeLayer)
      const key = "owner-1/dataset-1/rows (v2).csv"
      const content = new Uint8Array([...new TextEncoder().encode("a,b\n1,é\n"), 0x00, 0xff, 0xfe])
      yield* storage.put(key, new Blob([content]), "text/csv")
      expect(yield* bytesOf(yield* storage.get(key))).toEqual(content)
      yield* storage.put(key, new Blob(["second"]), "text/csv")
      expect(yield* text(yield* storage.get(key))).toBe("second")
    })
  )

  it.scopedLive("remove deletes every key given, ignores keys with nothing stored, and accepts none", () =>
    Effect.gen(function* () {
      const storage = yield* storageFrom(yield* makeLayer)
      yield* storage.put("o/d/a.csv", new Blob(["a"]), "text/csv")
      yield* storage.put("o/d/b.csv", new Blob(["b"]), "text/csv")
      yield* storage.put("o/e/c.csv", new Blob(["c"]), "text/csv")
      yield* storage.remove(["o/d/a.csv", "o/d/b.csv", "o/d/never-stored.csv"])
      yield* storage.remove([])
      for (const key of ["o/d/a.csv", "o/d/b.csv"]) {
        const error = yield* Effect.flip(storage.get(key))
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toBe("not_found")
      }
      expect(yield* text(yield* storage.get("o/e/c.csv"))).toBe("c")
    })
  )

  it.scopedLive("a missing object is a not_found StorageError", () =>
    Effect.gen(function* () {
      const storage = yield* storageFrom(yield* makeLayer)
      const error = yield* Effect.flip(storage.get("o/d/missing.csv"))
      expect(error).toBeInstanceOf(StorageError)
      expect(error._tag).toBe("StorageError")
      expect(error.reason).toBe("not_found")
    })
  )

  it.scopedLive("keys with .., absolute paths, backslashes and other unsafe forms are refused", () =>
    Effect.gen(function* () {
      const storage = yield* storageFrom(yield* makeLayer)
      for (const key of BAD_KEYS) {
        const put = yield* Effect.flip(storage.put(key, new Blob(["x"]), "text/csv"))
        const get = yield* Effect.flip(storage.get(key))
        const remove = yield* Effect.flip(storage.remove(["o/d/fine.csv", key]))
        for (const error of [put, get, remove]) {
          expect(error).toBeInstanceOf(StorageError)
          expect(error.reason).toBe("invalid_key")
        }
      }
    })
  )
})

describe("Storage (local)", () => {
  it.scopedLive("writes under the root at the key's path, leaving no temporary file", () =>
    Effect.gen(function* () {
      const root = yield* tempDir
      const storage = yield* storageFrom(layerLocal({ root: path.join(root, "files") }))
      yield* storage.put("owner/dataset/rows.csv", new Blob(["a\n1\n"]), "text/csv")
      expect(yield* filesUnder(root)).toEqual([path.join("files", "owner", "dataset", "rows.csv")])
      expect(
        yield* Effect.promise(() => Bun.file(path.join(root, "files/owner/dataset/rows.csv")).text())
      ).toBe("a\n1\n")
    })
  )

  it.scopedLive("streams a file from disk back, and a refused key writes nothing", () =>
    Effect.gen(function* () {
      const root = yield* tempDir
      const source = path.join(root, "source.bin")
      const content = new Uint8Array(3_000_000).map((_, i) => (i * 31) % 251)
      yield* Effect.promise(() => Bun.write(source, content))
      const storage = yield* storageFrom(layerLocal({ root: path.join(root, "store") }))
      yield* storage.put("o/d/big.bin", Bun.file(source), "application/octet-stream")
      const back = yield* bytesOf(yield* storage.get("o/d/big.bin"))
      expect(back.length).toBe(content.length)
      // element-wise toEqual over 3 MB is slow; a byte comparison is exact and quick
      expect(Buffer.from(back).equals(content)).toBe(true)
      yield* Effect.flip(storage.put("../outside.bin", new Blob(["x"]), "text/plain"))
      expect(yield* filesUnder(root)).toEqual(["source.bin", path.join("store", "o", "d", "big.bin")].sort())
    })
  )

  it.scopedLive("a key naming a directory is not_found, not a read of the directory", () =>
    Effect.gen(function* () {
      const storage = yield* storageFrom(layerLocal({ root: yield* tempDir }))
      yield* storage.put("o/d/f.csv", new Blob(["x"]), "text/csv")
      const error = yield* Effect.flip(storage.get("o/d"))
      expect(error.reason).toBe("not_found")
    })
  )
})

describe("Storage (supabase)", () => {
  it.scopedLive("calls the object endpoints with the service key, recording the content type", () =>
    Effect.gen(function* () {
      const fake = yield* fakeSupabase
      const storage = yield* storageFrom(supabaseLayer(fake.url))
      yield* storage.put("o/d/rows.jsonl", new Blob(['{"a":1}\n']), "application/x-ndjson")
      expect(fake.objects.get(`${BUCKET}/o/d/rows.jsonl`)?.contentType).toBe("application/x-ndjson")
      yield* text(yield* storage.get("o/d/rows.jsonl"))
      yield* storage.remove(["o/d/rows.jsonl"])
      expect(fake.objects.size).toBe(0)
      expect(fake.requests).toEqual([
        `POST /storage/v1/object/${BUCKET}/o/d/rows.jsonl`,
        `GET /storage/v1/object/${BUCKET}/o/d/rows.jsonl`,
        `DELETE /storage/v1/object/${BUCKET}`
      ])
      // a refused key never reaches the server
      yield* Effect.flip(storage.get("../x"))
      expect(fake.requests.length).toBe(3)
    })
  )

  it.scopedLive("a server error is an unavailable StorageError that leaks neither key nor server text", () =>
    Effect.gen(function* () {
      const fake = yield* fakeSupabase
      const storage = yield* storageFrom(supabaseLayer(fake.url))
      yield* storage.put("o/d/kept.csv", new Blob(["kept"]), "text/csv")
      fake.failWith(500)
      const errors = [
        yield* Effect.flip(storage.put("o/d/new.csv", new Blob(["x"]), "text/csv")),
        yield* Effect.flip(storage.get("o/d/kept.csv")),
        yield* Effect.flip(storage.remove(["o/d/kept.csv"]))
      ]
      for (const error of errors) {
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toBe("unavailable")
        expect(error.message).toContain("HTTP 500")
        expect(error.message).not.toContain(SERVICE_KEY)
        expect(error.message).not.toContain("boom")
        expect(JSON.stringify(error)).not.toContain(SERVICE_KEY)
        expect(String(error)).not.toContain(SERVICE_KEY)
      }
      fake.failWith(undefined)
      expect(yield* text(yield* storage.get("o/d/kept.csv"))).toBe("kept")
    })
  )

  it.scopedLive("a wrong service key is refused by the server and reported without the key", () =>
    Effect.gen(function* () {
      const fake = yield* fakeSupabase
      const wrongKey = "not-the-service-role-key"
      const storage = yield* storageFrom(supabaseLayer(fake.url, wrongKey))
      const error = yield* Effect.flip(storage.put("o/d/x.csv", new Blob(["x"]), "text/csv"))
      expect(error.reason).toBe("unavailable")
      expect(error.message).not.toContain(wrongKey)
      expect(fake.objects.size).toBe(0)
    })
  )

  it.scopedLive("an unreachable server is an unavailable StorageError", () =>
    Effect.gen(function* () {
      const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
      const url = `http://127.0.0.1:${server.port}`
      yield* Effect.promise(() => server.stop(true))
      const storage = yield* storageFrom(supabaseLayer(url))
      const error = yield* Effect.flip(storage.get("o/d/x.csv"))
      expect(error.reason).toBe("unavailable")
      expect(error.message).toContain("no response")
      expect(error.message).not.toContain(SERVICE_KEY)
    })
  )
})
