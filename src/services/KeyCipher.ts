import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Data, Effect, Layer, Redacted } from "effect"
import * as path from "node:path"

/** A blob that cannot be decrypted: wrong key, tampered, truncated or of an unknown version. */
export class KeyCipherError extends Data.TaggedError("KeyCipherError")<{
  readonly reason: "truncated" | "unsupported_version" | "authentication_failed" | "not_utf8"
  readonly message: string
}> {}

/** The local encryption key file cannot be created or read, or holds something that is not a key. */
export class KeyFileError extends Data.TaggedError("KeyFileError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * AES-256-GCM for provider API keys at rest. A blob is `version (1) ‖ IV (12) ‖ ciphertext ‖ tag (16)`; the
 * version byte is also the additional authenticated data, so it cannot be swapped without detection.
 */
export class KeyCipher extends Context.Tag("assay/KeyCipher")<
  KeyCipher,
  {
    readonly encrypt: (plaintext: Redacted.Redacted<string>) => Effect.Effect<Uint8Array>
    readonly decrypt: (blob: Uint8Array) => Effect.Effect<Redacted.Redacted<string>, KeyCipherError>
  }
>() {}

const VERSION = 1
const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
const HEADER = Uint8Array.of(VERSION)

const failure = (reason: KeyCipherError["reason"], message: string) => new KeyCipherError({ reason, message })

export const make = (key: Redacted.Redacted<Uint8Array>): Effect.Effect<KeyCipher["Type"]> =>
  Effect.gen(function* () {
    const raw = Redacted.value(key)
    if (raw.length !== KEY_BYTES)
      return yield* Effect.dieMessage(`the encryption key must be ${KEY_BYTES} bytes, got ${raw.length}`)
    const cryptoKey = yield* Effect.promise(() =>
      crypto.subtle.importKey("raw", Uint8Array.from(raw), { name: "AES-GCM" }, false, ["encrypt", "decrypt"])
    )

    const encrypt = Effect.fn("KeyCipher.encrypt")(function* (plaintext: Redacted.Redacted<string>) {
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES))
      const sealed = yield* Effect.promise(() =>
        crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: HEADER, tagLength: TAG_BYTES * 8 },
          cryptoKey,
          new TextEncoder().encode(Redacted.value(plaintext))
        )
      )
      const blob = new Uint8Array(1 + IV_BYTES + sealed.byteLength)
      blob.set(HEADER, 0)
      blob.set(iv, 1)
      blob.set(new Uint8Array(sealed), 1 + IV_BYTES)
      return blob
    })

    const decrypt = Effect.fn("KeyCipher.decrypt")(function* (blob: Uint8Array) {
      if (blob.length < 1 + IV_BYTES + TAG_BYTES)
        return yield* failure("truncated", "The encrypted key is too short to be a valid blob.")
      if (blob[0] !== VERSION)
        return yield* failure(
          "unsupported_version",
          `The encrypted key has unknown format version ${blob[0]}.`
        )
      const opened = yield* Effect.tryPromise({
        try: () =>
          crypto.subtle.decrypt(
            {
              name: "AES-GCM",
              iv: blob.slice(1, 1 + IV_BYTES),
              additionalData: HEADER,
              tagLength: TAG_BYTES * 8
            },
            cryptoKey,
            blob.slice(1 + IV_BYTES)
          ),
        catch: () =>
          failure("authentication_failed", "The encrypted key does not open with this key, or was altered.")
      })
      const text = yield* Effect.try({
        try: () => new TextDecoder("utf-8", { fatal: true }).decode(opened),
        catch: () => failure("not_utf8", "The decrypted key is not UTF-8 text.")
      })
      return Redacted.make(text)
    })

    return KeyCipher.of({ encrypt, decrypt })
  })

export const layer = (key: Redacted.Redacted<Uint8Array>): Layer.Layer<KeyCipher> =>
  Layer.effect(KeyCipher, make(key))

const fileError = (file: string, action: string) => (error: PlatformError) =>
  new KeyFileError({
    path: file,
    message: `cannot ${action} the encryption key file ${file}: ${error.message}`
  })

const readKeyFile = (fs: FileSystem.FileSystem, file: string) =>
  Effect.gen(function* () {
    const bytes = yield* fs.readFile(file).pipe(Effect.mapError(fileError(file, "read")))
    if (bytes.length !== KEY_BYTES)
      return yield* new KeyFileError({
        path: file,
        message: `the encryption key file ${file} holds ${bytes.length} bytes, not ${KEY_BYTES}: restore it, or remove it only if no provider keys were saved with it`
      })
    return Redacted.make(Uint8Array.from(bytes))
  })

/**
 * Local mode's key: 32 random bytes made on the first start and kept in `<dataDir>/encryption.key` (mode 0600),
 * read back on every later start. Losing the file loses every saved provider key.
 */
export const loadOrCreateLocalKey = (
  dataDir: string
): Effect.Effect<Redacted.Redacted<Uint8Array>, KeyFileError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const file = path.join(dataDir, "encryption.key")
    if (yield* fs.exists(file).pipe(Effect.mapError(fileError(file, "inspect"))))
      return yield* readKeyFile(fs, file)

    yield* fs.makeDirectory(dataDir, { recursive: true }).pipe(Effect.mapError(fileError(file, "create")))
    // Written in full under a temporary name, then linked into place: a crash never leaves a partial key, and
    // of two processes starting at once, the one that links second reads the first one's key.
    const temporary = `${file}.${crypto.randomUUID()}.tmp`
    const created = yield* Effect.acquireUseRelease(
      Effect.succeed(temporary),
      (tmp) =>
        fs
          .writeFile(tmp, crypto.getRandomValues(new Uint8Array(KEY_BYTES)), { flag: "wx", mode: 0o600 })
          .pipe(
            Effect.zipRight(fs.link(tmp, file)),
            Effect.as(true),
            Effect.catchIf(
              (error) => error._tag === "SystemError" && error.reason === "AlreadyExists",
              () => Effect.succeed(false)
            ),
            Effect.mapError(fileError(file, "create"))
          ),
      (tmp) => fs.remove(tmp).pipe(Effect.ignore)
    )
    if (created)
      yield* Effect.logInfo("created a new local encryption key").pipe(Effect.annotateLogs({ file }))
    return yield* readKeyFile(fs, file)
  })

/** What a list of saved keys shows: the last four characters, or nothing of a key too short to hide. */
export const maskKey = (key: string): string => (key.length < 12 ? "…" : `…${key.slice(-4)}`)
