import { Effect, type Scope } from "effect"

/**
 * A loopback stand-in for Supabase Storage: just the object endpoints supabase-js calls for upload, download and
 * remove, with the service key checked on every request and objects kept in memory. Errors have Supabase's
 * shape (`{statusCode, error, message}`, a missing object is HTTP 400 with statusCode "404").
 */

export interface StoredObject {
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly contentType: string
}

export interface FakeSupabaseStorage {
  /** The project URL to give `createClient` (storage lives under `/storage/v1`). */
  readonly url: string
  /** Stored objects by `<bucket>/<key>`. */
  readonly objects: Map<string, StoredObject>
  /** Every request as `METHOD /path` (decoded), in order. */
  readonly requests: Array<string>
  /** While set, every request fails with this status and a body that echoes the request's Authorization header. */
  failWith(status: number | undefined): void
}

/**
 * The file part of a multipart body. supabase-js sends it as `name=""; filename=""`, which Bun's own
 * `formData()` drops as "no file chosen", so the body is split by hand (as latin1: one char per byte).
 */
const fileFromMultipart = (body: Uint8Array, contentType: string): StoredObject | undefined => {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2]
  if (!boundary) return undefined
  const text = Buffer.from(body).toString("latin1")
  for (const part of text.split(`--${boundary}`).slice(1)) {
    const headerEnd = part.indexOf("\r\n\r\n")
    if (headerEnd === -1) continue
    const headers = part.slice(0, headerEnd)
    if (!/content-disposition:[^\r\n]*filename=/i.test(headers)) continue
    const content = part.slice(headerEnd + 4, part.endsWith("\r\n") ? -2 : undefined)
    return {
      bytes: new Uint8Array(Buffer.from(content, "latin1")),
      contentType: /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim() ?? ""
    }
  }
  return undefined
}

const json = (status: number, body: unknown) => Response.json(body, { status })

const storageError = (statusCode: string, error: string, message: string) =>
  json(statusCode === "500" ? 500 : 400, { statusCode, error, message })

export const make = (options: {
  readonly serviceKey: string
  readonly buckets: ReadonlyArray<string>
}): Effect.Effect<FakeSupabaseStorage, never, Scope.Scope> =>
  Effect.gen(function* () {
    const objects = new Map<string, StoredObject>()
    const requests: Array<string> = []
    let failing: number | undefined

    const handle = async (request: Request): Promise<Response> => {
      const url = new URL(request.url)
      const segments = url.pathname
        .split("/")
        .filter((s) => s !== "")
        .map(decodeURIComponent)
      requests.push(`${request.method} /${segments.join("/")}`)
      const authorization = request.headers.get("authorization") ?? ""
      if (failing !== undefined)
        return json(failing, {
          statusCode: String(failing),
          error: "internal",
          message: `boom (${authorization})`
        })
      if (
        request.headers.get("apikey") !== options.serviceKey ||
        authorization !== `Bearer ${options.serviceKey}`
      )
        return storageError("403", "Unauthorized", "invalid signature")

      const [storage, v1, object, bucket, ...rest] = segments
      if (storage !== "storage" || v1 !== "v1" || object !== "object" || bucket === undefined)
        return json(404, { statusCode: "404", error: "Not Found", message: "Route not found" })
      if (!options.buckets.includes(bucket))
        return storageError("404", "Bucket not found", "Bucket not found")
      const key = rest.join("/")
      const id = `${bucket}/${key}`

      if ((request.method === "POST" || request.method === "PUT") && key !== "") {
        if (request.method === "POST" && objects.has(id) && request.headers.get("x-upsert") !== "true")
          return storageError("409", "Duplicate", "The resource already exists")
        if (request.method === "PUT" && !objects.has(id))
          return storageError("404", "not_found", "Object not found")
        const type = request.headers.get("content-type") ?? ""
        let stored: StoredObject
        if (type.startsWith("multipart/form-data")) {
          const file = fileFromMultipart(new Uint8Array(await request.arrayBuffer()), type)
          if (!file) return storageError("400", "InvalidRequest", "No file in the form")
          stored = file
        } else {
          stored = { bytes: new Uint8Array(await request.arrayBuffer()), contentType: type }
        }
        objects.set(id, stored)
        return json(200, { Id: crypto.randomUUID(), Key: id })
      }
      if (request.method === "GET" && key !== "") {
        const found = objects.get(id)
        if (!found) return storageError("404", "not_found", "Object not found")
        return new Response(found.bytes, { headers: { "content-type": found.contentType } })
      }
      if (request.method === "DELETE" && key === "") {
        const body = (await request.json()) as { prefixes?: unknown }
        if (!Array.isArray(body.prefixes) || body.prefixes.length === 0)
          return storageError("400", "InvalidRequest", "prefixes must be a non-empty array")
        const removed = body.prefixes.filter((prefix: unknown) =>
          objects.delete(`${bucket}/${String(prefix)}`)
        )
        return json(
          200,
          removed.map((name: unknown) => ({ name, bucket_id: bucket, id: crypto.randomUUID(), metadata: {} }))
        )
      }
      return json(404, { statusCode: "404", error: "Not Found", message: "Route not found" })
    }

    const server = yield* Effect.acquireRelease(
      Effect.sync(() => Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handle })),
      (server) => Effect.promise(() => server.stop(true))
    )
    return {
      url: `http://127.0.0.1:${server.port}`,
      objects,
      requests,
      failWith: (status) => {
        failing = status
      }
    } satisfies FakeSupabaseStorage
  })
