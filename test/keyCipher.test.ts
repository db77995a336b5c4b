import { BunContext } from "@effect/platform-bun"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Inspectable, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { KeyCipher, layer, loadOrCreateLocalKey, make, maskKey } from "../src/services/KeyCipher.ts"

const API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"

const randomKey = () => Redacted.make(crypto.getRandomValues(new Uint8Array(32)))

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** A fresh directory under the system temp dir, removed when the test ends. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "assay-keycipher-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

describe("KeyCipher", () => {
  it.effect("decrypts what it encrypted, in the documented blob layout", () =>
    Effect.gen(function* () {
      const cipher = yield* KeyCipher
      const blob = yield* cipher.encrypt(Redacted.make(API_KEY))
      expect(blob[0]).toBe(1)
      // version + IV + ciphertext (as long as the UTF-8 plaintext) + tag
      expect(blob.length).toBe(1 + 12 + Buffer.byteLength(API_KEY) + 16)
      expect(Buffer.from(blob).toString("latin1")).not.toContain(API_KEY)
      const opened = yield* cipher.decrypt(blob)
      expect(Redacted.value(opened)).toBe(API_KEY)
      const unicode = yield* cipher.decrypt(yield* cipher.encrypt(Redacted.make("ключ-🔑")))
      expect(Redacted.value(unicode)).toBe("ключ-🔑")
    }).pipe(Effect.provide(layer(randomKey())))
  )

  it.effect("two encryptions of the same key differ (a fresh IV each time)", () =>
    Effect.gen(function* () {
      const cipher = yield* KeyCipher
      const a = yield* cipher.encrypt(Redacted.make(API_KEY))
      const b = yield* cipher.encrypt(Redacted.make(API_KEY))
      expect(hex(a)).not.toBe(hex(b))
      expect(hex(a.slice(1, 13))).not.toBe(hex(b.slice(1, 13)))
    }).pipe(Effect.provide(layer(randomKey())))
  )

  it.effect("another key cannot decrypt, and the error holds no key material", () =>
    Effect.gen(function* () {
      const key = randomKey()
      const other = randomKey()
      const blob = yield* Effect.flatMap(make(key), (c) => c.encrypt(Redacted.make(API_KEY)))
      const error = yield* Effect.flip(Effect.flatMap(make(other), (c) => c.decrypt(blob)))
      expect(error._tag).toBe("KeyCipherError")
      expect(error.reason).toBe("authentication_failed")
      const shown = `${error.message} ${JSON.stringify(error)} ${String(error)}`
      expect(shown).not.toContain(API_KEY)
      expect(shown).not.toContain(hex(Redacted.value(key)))
      expect(shown).not.toContain(hex(Redacted.value(other)))
      expect(shown).not.toContain(Buffer.from(Redacted.value(key)).toString("base64"))
    })
  )

  it.effect("any altered byte fails: version, IV, ciphertext or tag", () =>
    Effect.gen(function* () {
      const cipher = yield* KeyCipher
      const blob = yield* cipher.encrypt(Redacted.make(API_KEY))
      const reasons: Array<string> = []
      for (const index of [0, 1, 12, 13, 20, blob.length - 1]) {
        const tampered = Uint8Array.from(blob)
        tampered[index] = tampered[index]! ^ 0x01
        reasons.push((yield* Effect.flip(cipher.decrypt(tampered))).reason)
      }
      expect(reasons).toEqual([
        "unsupported_version",
        "authentication_failed",
        "authentication_failed",
        "authentication_failed",
        "authentication_failed",
        "authentication_failed"
      ])
    }).pipe(Effect.provide(layer(randomKey())))
  )

  it.effect("a truncated blob fails, however short", () =>
    Effect.gen(function* () {
      const cipher = yield* KeyCipher
      const blob = yield* cipher.encrypt(Redacted.make(API_KEY))
      expect((yield* Effect.flip(cipher.decrypt(blob.slice(0, blob.length - 1)))).reason).toBe(
        "authentication_failed"
      )
      expect((yield* Effect.flip(cipher.decrypt(blob.slice(0, 1 + 12 + 16)))).reason).toBe(
        "authentication_failed"
      )
      for (const length of [0, 1, 13, 28]) {
        expect((yield* Effect.flip(cipher.decrypt(blob.slice(0, length)))).reason).toBe("truncated")
      }
    }).pipe(Effect.provide(layer(randomKey())))
  )

  it.effect("the Redacted plaintext shows nothing of the key in String(), JSON or inspection", () =>
    Effect.gen(function* () {
      const cipher = yield* KeyCipher
      const opened = yield* cipher.decrypt(yield* cipher.encrypt(Redacted.make(API_KEY)))
      expect(String(opened)).not.toContain(API_KEY)
      expect(JSON.stringify(opened)).not.toContain(API_KEY)
      expect(JSON.stringify({ key: opened })).not.toContain(API_KEY)
      expect(Inspectable.format(opened)).not.toContain(API_KEY)
      expect(Bun.inspect(opened)).not.toContain(API_KEY)
      expect(Redacted.value(opened)).toBe(API_KEY)
    }).pipe(Effect.provide(layer(randomKey())))
  )
})

describe("loadOrCreateLocalKey", () => {
  it.scoped("creates a 32-byte key file with mode 0600, and reads the same key on the next start", () =>
    Effect.gen(function* () {
      const dir = path.join(yield* tempDir, "nested", "data")
      const file = path.join(dir, "encryption.key")
      const first = yield* loadOrCreateLocalKey(dir)
      const stat = yield* Effect.promise(() => fs.stat(file))
      expect(stat.mode & 0o777).toBe(0o600)
      expect(stat.size).toBe(32)
      const onDisk = yield* Effect.promise(() => fs.readFile(file))
      expect(hex(onDisk)).toBe(hex(Redacted.value(first)))
      // no temporary files are left behind
      expect(yield* Effect.promise(() => fs.readdir(dir))).toEqual(["encryption.key"])

      const second = yield* loadOrCreateLocalKey(dir)
      expect(hex(Redacted.value(second))).toBe(hex(Redacted.value(first)))
      // and a key read back decrypts what the first one encrypted
      const blob = yield* Effect.flatMap(make(first), (c) => c.encrypt(Redacted.make(API_KEY)))
      const opened = yield* Effect.flatMap(make(second), (c) => c.decrypt(blob))
      expect(Redacted.value(opened)).toBe(API_KEY)
    }).pipe(Effect.provide(BunContext.layer))
  )

  it.scoped("two directories get two different keys; concurrent first starts agree on one", () =>
    Effect.gen(function* () {
      const a = yield* loadOrCreateLocalKey(yield* tempDir)
      const b = yield* loadOrCreateLocalKey(yield* tempDir)
      expect(hex(Redacted.value(a))).not.toBe(hex(Redacted.value(b)))
      const shared = yield* tempDir
      const keys = yield* Effect.all(
        Array.from({ length: 8 }, () => loadOrCreateLocalKey(shared)),
        { concurrency: "unbounded" }
      )
      expect(new Set(keys.map((k) => hex(Redacted.value(k)))).size).toBe(1)
      expect(yield* Effect.promise(() => fs.readdir(shared))).toEqual(["encryption.key"])
    }).pipe(Effect.provide(BunContext.layer))
  )

  it.scoped("a key file of the wrong size is an error naming the file, and is left untouched", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "encryption.key")
      yield* Effect.promise(() => fs.writeFile(file, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 }))
      const error = yield* Effect.flip(loadOrCreateLocalKey(dir))
      expect(error._tag).toBe("KeyFileError")
      expect(error.path).toBe(file)
      expect(error.message).toContain(file)
      expect(error.message).toContain("33 bytes")
      expect(error.message).not.toContain("0123456789abcdef")
      expect(yield* Effect.promise(() => fs.readFile(file, "utf8"))).toBe(
        "0123456789abcdef0123456789abcdef\n"
      )

      yield* Effect.promise(() => fs.writeFile(file, new Uint8Array(0)))
      expect((yield* Effect.flip(loadOrCreateLocalKey(dir))).message).toContain(file)
    }).pipe(Effect.provide(BunContext.layer))
  )

  it.scoped("an unreadable data directory is an error naming the file", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const blocker = path.join(dir, "not-a-dir")
      yield* Effect.promise(() => fs.writeFile(blocker, "x"))
      const error = yield* Effect.flip(loadOrCreateLocalKey(blocker))
      expect(error._tag).toBe("KeyFileError")
      expect(error.path).toBe(path.join(blocker, "encryption.key"))
      expect(error.message).toContain(path.join(blocker, "encryption.key"))
    }).pipe(Effect.provide(BunContext.layer))
  )
})

describe("maskKey", () => {
  it("shows the last four characters of a long key, and nothing of a short one", () => {
    expect(maskKey("sk-abcdefghijklmnopqrstuvwxyz")).toBe("…wxyz")
    expect(maskKey("abcdefghijkl")).toBe("…ijkl")
    expect(maskKey("abcdefghijk")).toBe("…")
    expect(maskKey("abcd")).toBe("…")
    expect(maskKey("")).toBe("…")
  })
})
