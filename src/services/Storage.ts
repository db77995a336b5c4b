import { createClient } from "@supabase/supabase-js"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/**
 * Raw uploaded files, by key (`<ownerId>/<datasetId>/<filename>`): on local disk, or in a Supabase Storage
 * bucket. Keys are checked before any I/O so that no key can reach outside its root or bucket.
 */

export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  /** `invalid_key`: refused before any I/O; `not_found`: no file at that key; `unavailable`: the store failed. */
  reason: Schema.Literal("invalid_key", "not_found", "unavailable"),
  /** Safe to show: never a secret, a server's own message, or a local path. */
  message: Schema.String
}) {}

export interface StorageShape {
  /** Stores `file` at `key`, replacing what was there. */
  readonly put: (key: string, file: Blob, contentType: string) => Effect.Effect<void, StorageError>
  /** The stored bytes, streamed: read or cancel the stream so the file or connection is released. */
  readonly get: (key: string) => Effect.Effect<ReadableStream<Uint8Array>, StorageError>
  /** Removes every key; a key with nothing stored is not an error. */
  readonly remove: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
}

export class Storage extends Context.Tag("assay/Storage")<Storage, StorageShape>() {}

const MAX_KEY_LENGTH = 1024
// Characters that are safe in a file name on every filesystem and in a URL path (a space goes as %20).
const SEGMENT = /^[A-Za-z0-9_\-.()+,=@ ]+$/

/** Why `key` is refused, or undefined when it is a safe relative path. */
const keyProblem = (key: string): string | undefined => {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) return `must be 1 to ${MAX_KEY_LENGTH} characters`
  if (key.includes("\\")) return "must not contain a backslash"
  if (key.includes("..")) return 'must not contain ".."'
  if (key.startsWith("/")) return "must be a relative path"
  for (const segment of key.split("/")) {
    if (segment === "") return "must not have empty path segments"
    if (segment.startsWith(".")) return 'must not have a segment starting with "."'
    if (segment !== segment.trim()) return "must not have a segment starting or ending with a space"
    if (!SEGMENT.test(segment)) return "may only use letters, digits, spaces and _-.()+,=@"
  }
  return undefined
}

const checkKey = (key: string): Effect.Effect<string, StorageError> => {
  const problem = keyProblem(key)
  return problem === undefined
    ? Effect.succeed(key)
    : Effect.fail(new StorageError({ reason: "invalid_key", message: `The storage key ${problem}.` }))
}

const notFound = () => new StorageError({ reason: "not_found", message: "No file is stored under this key." })

// ---------------------------------------------------------------------------------------------------------------
// Local directory
// ---------------------------------------------------------------------------------------------------------------

/** Temporary files live here, under the root but outside every key (no key segment starts with "."). */
const TEMP_DIR = ".tmp"

const isMissing = (cause: unknown) =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT"

/** Files under `root`; each write goes to a temporary file first and is renamed into place, so readers see all or nothing. */
const makeLocal = (options: { readonly root: string }): StorageShape => {
  const root = path.resolve(options.root)
  const tempDir = path.join(root, TEMP_DIR)
  const pathOf = (key: string) => path.join(root, ...key.split("/"))

  // the cause names local paths: it goes to the log, not into the error
  const io = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise(f).pipe(
      Effect.tapError((failure) => Effect.logWarning(`local storage ${operation} failed`, failure.error)),
      Effect.mapError(
        () =>
          new StorageError({
            reason: "unavailable",
            message: `Local storage could not ${operation} the file.`
          })
      )
    )

  const put = Effect.fn("Storage.put")(function* (key: string, file: Blob, _contentType: string) {
    const target = pathOf(yield* checkKey(key))
    yield* io("write", async () => {
      await fs.mkdir(tempDir, { recursive: true })
      await fs.mkdir(path.dirname(target), { recursive: true })
      const temp = path.join(tempDir, crypto.randomUUID())
      try {
        await Bun.write(temp, file)
        await fs.rename(temp, target)
      } catch (cause) {
        await fs.rm(temp, { force: true })
        throw cause
      }
    })
  })

  const get = Effect.fn("Storage.get")(function* (key: string) {
    const target = pathOf(yield* checkKey(key))
    const found = yield* io("read", () =>
      fs.stat(target).then(
        (stat) => stat.isFile(),
        (cause: unknown) => (isMissing(cause) ? false : Promise.reject(cause))
      )
    )
    if (!found) return yield* Effect.fail(notFound())
    return Bun.file(target).stream()
  })

  const remove = Effect.fn("Storage.remove")(function* (keys: ReadonlyArray<string>) {
    const targets = yield* Effect.forEach(keys, (key) => Effect.map(checkKey(key), pathOf))
    yield* io("remove", () => Promise.all(targets.map((target) => fs.rm(target, { force: true }))))
  })

  return { put, get, remove }
}

export const layerLocal = (options: { readonly root: string }): Layer.Layer<Storage> =>
  Layer.sync(Storage, () => makeLocal(options))

// ---------------------------------------------------------------------------------------------------------------
// Supabase Storage
// ---------------------------------------------------------------------------------------------------------------

export interface SupabaseStorageOptions {
  readonly url: string
  readonly serviceRoleKey: Redacted.Redacted<string>
  readonly bucket: string
}

/** Supabase Storage's delete endpoint takes at most this many keys per request. */
const REMOVE_BATCH = 1000

/** What storage-js reports on failure; its message is the server's text, so only the status is used. */
interface SupabaseFailure {
  readonly status?: number | undefined
  readonly statusCode?: string | undefined
}

const fromSupabase = (operation: string, failure: SupabaseFailure): StorageError => {
  if (failure.status === 404 || failure.statusCode === "404" || failure.statusCode === "not_found")
    return notFound()
  const status = failure.status === undefined ? "no response" : `HTTP ${failure.status}`
  return new StorageError({
    reason: "unavailable",
    message: `Supabase Storage could not ${operation} the file (${status}).`
  })
}

/**
 * A bucket through supabase-js with the service-role key (it bypasses row-level security, so keys must be
 * checked here). Calls: `POST /storage/v1/object/<bucket>/<key>` (multipart, `x-upsert: true`),
 * `GET /storage/v1/object/<bucket>/<key>` and `DELETE /storage/v1/object/<bucket>` with `{"prefixes": [...]}`.
 */
const makeSupabase = (options: SupabaseStorageOptions): StorageShape => {
  const client = createClient(options.url, Redacted.value(options.serviceRoleKey), {
    // a server-side client: no session to keep, refresh or read from a URL
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false }
  })
  const bucket = () => client.storage.from(options.bucket)

  /** Runs a supabase-js call; a rejected promise (not a `{ error }` result) is a store failure too. */
  const call = <A>(
    operation: string,
    f: () => Promise<{ data: A; error: null } | { data: null; error: SupabaseFailure }>
  ) =>
    Effect.tryPromise({ try: f, catch: () => fromSupabase(operation, {}) }).pipe(
      Effect.flatMap((result) =>
        result.error === null
          ? Effect.succeed(result.data)
          : Effect.fail(fromSupabase(operation, result.error))
      )
    )

  const put = Effect.fn("Storage.put")(function* (key: string, file: Blob, contentType: string) {
    yield* checkKey(key)
    // supabase-js sends a Blob as multipart; the part's type is what the bucket records as the object's type
    const typed = file.type === contentType ? file : file.slice(0, file.size, contentType)
    yield* call("write", () => bucket().upload(key, typed, { contentType, upsert: true }))
  })

  const get = Effect.fn("Storage.get")(function* (key: string) {
    yield* checkKey(key)
    const body = yield* call("read", () => bucket().download(key).asStream())
    return body as ReadableStream<Uint8Array>
  })

  const remove = Effect.fn("Storage.remove")(function* (keys: ReadonlyArray<string>) {
    yield* Effect.forEach(keys, checkKey)
    for (let from = 0; from < keys.length; from += REMOVE_BATCH) {
      const batch = keys.slice(from, from + REMOVE_BATCH)
      yield* call("remove", () => bucket().remove(batch))
    }
  })

  return { put, get, remove }
}

export const layerSupabase = (options: SupabaseStorageOptions): Layer.Layer<Storage> =>
  Layer.sync(Storage, () => makeSupabase(options))
