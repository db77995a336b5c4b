// Dataset upload: REST only (a file, not an RPC message), multipart `POST /api/v1/datasets` with the fields
// `name` and `file`. XMLHttpRequest because fetch cannot report upload progress.
import { Schema } from "effect"
import { Dataset } from "../../../src/domain/Dataset.ts"
import { ApiError } from "../lib/errors.ts"

export interface UploadProgress {
  readonly loaded: number
  readonly total: number
}

export interface UploadOptions {
  readonly baseUrl: string
  readonly file: File
  /** The dataset's name; the server uses the file name without its extension when absent. */
  readonly name?: string | undefined
  /** Sent as a bearer token (Supabase mode). */
  readonly token?: string | undefined
  readonly onProgress?: (progress: UploadProgress) => void
  readonly signal?: AbortSignal | undefined
}

const decodeDataset = Schema.decodeUnknownSync(Dataset)

/** The server's `{"error":{code,message,details}}` envelope as an ApiError; a body that is not one, by status. */
export const errorOfResponse = (status: number, body: string): ApiError => {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown; details?: unknown } }
    const error = parsed.error
    if (error && typeof error.code === "string" && typeof error.message === "string")
      return new ApiError(error.code, error.message, error.details)
  } catch {
    // not JSON: a proxy's error page, say
  }
  return new ApiError("http_error", `The upload failed: the server answered ${status}.`)
}

const FACT_LABELS: ReadonlyArray<readonly [key: string, label: string]> = [
  ["row", "Row"],
  ["line", "Line"],
  ["column", "Column"],
  ["name", "Column name"],
  ["expected", "Fields expected"],
  ["got", "Fields found"],
  ["offset", "Byte offset"],
  ["limit", "Limit"]
]

export interface ErrorFact {
  readonly label: string
  readonly value: string
}

/**
 * Where in the file a rejected upload went wrong, from the error's `details` (`{ row, line, expected, got }` for a
 * short row, `{ line }` for a bad header, `{ offset }` for bad UTF-8, ...), labelled for people.
 */
export const errorFacts = (error: ApiError): ReadonlyArray<ErrorFact> => {
  const details = error.details
  if (typeof details !== "object" || details === null) return []
  const record = details as Record<string, unknown>
  return FACT_LABELS.flatMap(([key, label]) => {
    const value = record[key]
    return typeof value === "number" || typeof value === "string" ? [{ label, value: String(value) }] : []
  })
}

/** Uploads `file`; resolves with the new dataset, rejects with an ApiError carrying the server's details. */
export const uploadDataset = (options: UploadOptions): Promise<Dataset> =>
  new Promise((resolve, reject) => {
    const form = new FormData()
    // the name goes first so the server names the dataset as it ingests the file
    if (options.name !== undefined && options.name.trim() !== "") form.append("name", options.name.trim())
    form.append("file", options.file, options.file.name)

    const xhr = new XMLHttpRequest()
    xhr.open("POST", new URL("/api/v1/datasets", options.baseUrl).href)
    if (options.token !== undefined) xhr.setRequestHeader("authorization", `Bearer ${options.token}`)
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) options.onProgress?.({ loaded: event.loaded, total: event.total })
    }
    xhr.onload = () => {
      if (xhr.status === 201) {
        try {
          resolve(decodeDataset(JSON.parse(xhr.responseText)))
        } catch {
          reject(new ApiError("unexpected_response", "The server's answer to the upload is not a dataset."))
        }
      } else reject(errorOfResponse(xhr.status, xhr.responseText))
    }
    xhr.onerror = () =>
      reject(
        new ApiError("network_error", "The upload did not reach the Assay server. Check that it is running.")
      )
    xhr.onabort = () => reject(new ApiError("upload_canceled", "Upload canceled."))
    if (options.signal?.aborted) return reject(new ApiError("upload_canceled", "Upload canceled."))
    options.signal?.addEventListener("abort", () => xhr.abort(), { once: true })
    xhr.send(form)
  })
