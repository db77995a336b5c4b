// Upload a CSV, JSON or JSONL file: pick or drop it, watch the bytes go, then see the new dataset or, when the
// server rejects the file, its reason and where in the file (row, line) it went wrong.
import { useRef, useState, type DragEvent } from "react"
import type { Dataset } from "../../../src/domain/Dataset.ts"
import { toApiError, type ApiError } from "../lib/errors.ts"
import { formatBytes } from "../lib/format.ts"
import { useApi } from "../lib/session.tsx"
import { toastError } from "../lib/toast.tsx"
import { errorFacts, uploadDataset, type UploadProgress } from "./upload.ts"

const ACCEPT = ".csv,.json,.jsonl,.ndjson,text/csv,application/json,application/x-ndjson"

type Phase =
  | { readonly tag: "idle" }
  | { readonly tag: "sending"; readonly progress: UploadProgress; readonly abort: AbortController }
  | { readonly tag: "failed"; readonly error: ApiError }

export const UploadPanel = ({ onUploaded }: { readonly onUploaded: (dataset: Dataset) => void }) => {
  const api = useApi()
  const [file, setFile] = useState<File | null>(null)
  const [name, setName] = useState("")
  const [phase, setPhase] = useState<Phase>({ tag: "idle" })
  const [dragging, setDragging] = useState(false)
  const input = useRef<HTMLInputElement>(null)
  const sending = phase.tag === "sending"

  const choose = (chosen: File | undefined) => {
    if (!chosen) return
    setFile(chosen)
    setPhase({ tag: "idle" })
  }

  const upload = async () => {
    if (!file) return
    const abort = new AbortController()
    setPhase({ tag: "sending", progress: { loaded: 0, total: file.size }, abort })
    try {
      const dataset = await uploadDataset({
        baseUrl: api.baseUrl,
        file,
        name,
        token: await api.token(),
        signal: abort.signal,
        onProgress: (progress) => setPhase({ tag: "sending", progress, abort })
      })
      setPhase({ tag: "idle" })
      onUploaded(dataset)
    } catch (error) {
      const apiError = toApiError(error)
      if (apiError.code === "upload_canceled") return setPhase({ tag: "idle" })
      toastError(apiError)
      setPhase({ tag: "failed", error: apiError })
    }
  }

  const onDrop = (event: DragEvent) => {
    event.preventDefault()
    setDragging(false)
    if (!sending) choose(event.dataTransfer.files[0])
  }

  return (
    <section className="card ds-upload" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload a dataset</h2>
      <div
        className={`ds-dropzone${dragging ? " ds-dragging" : ""}${file ? " ds-has-file" : ""}`}
        onDragOver={(event) => {
          event.preventDefault()
          setDragging(true)
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <input
          ref={input}
          id="dataset-file"
          type="file"
          accept={ACCEPT}
          className="ds-visually-hidden"
          aria-label="Dataset file"
          disabled={sending}
          onChange={(event) => {
            choose(event.target.files?.[0])
            // choosing the same file again after a failed upload must fire onChange again
            event.target.value = ""
          }}
        />
        {file ? (
          <div className="ds-chosen">
            <span className="ds-file-name">{file.name}</span>
            <span className="muted">{formatBytes(file.size)}</span>
            <button type="button" className="link" disabled={sending} onClick={() => input.current?.click()}>
              Choose another
            </button>
          </div>
        ) : (
          <p>
            Drop a <strong>CSV</strong>, <strong>JSON</strong> (array of objects) or <strong>JSONL</strong>{" "}
            file here, or{" "}
            <button type="button" className="link" onClick={() => input.current?.click()}>
              choose a file
            </button>
            .
          </p>
        )}
      </div>

      <form
        className="ds-upload-row"
        onSubmit={(event) => {
          event.preventDefault()
          void upload()
        }}
      >
        <label className="ds-grow">
          <span>
            Name <span className="muted">(optional: the file name by default)</span>
          </span>
          <input
            value={name}
            maxLength={200}
            disabled={sending}
            placeholder={file ? file.name.replace(/\.[^.]*$/, "") : "Dataset name"}
            onChange={(event) => setName(event.target.value)}
          />
        </label>
        {sending ? (
          <button type="button" onClick={() => phase.abort.abort()}>
            Cancel upload
          </button>
        ) : (
          <button type="submit" className="primary" disabled={!file}>
            Upload
          </button>
        )}
      </form>

      {phase.tag === "sending" && <ProgressBar progress={phase.progress} />}
      {phase.tag === "failed" && <UploadError error={phase.error} />}
    </section>
  )
}

const ProgressBar = ({ progress }: { readonly progress: UploadProgress }) => {
  const done = progress.total > 0 && progress.loaded >= progress.total
  const percent = progress.total > 0 ? Math.round((progress.loaded / progress.total) * 100) : 0
  return (
    <div className="ds-progress-wrap">
      <div
        className={`ds-progress${done ? " ds-processing" : ""}`}
        role="progressbar"
        aria-label="Upload progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
      >
        <div className="ds-progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <span className="muted ds-progress-text">
        {done
          ? "Checking and storing rows…"
          : `${percent}% · ${formatBytes(progress.loaded)} of ${formatBytes(progress.total)}`}
      </span>
    </div>
  )
}

const UploadError = ({ error }: { readonly error: ApiError }) => {
  const facts = errorFacts(error)
  return (
    <div className="ds-upload-error" role="alert">
      <div className="ds-upload-error-head">
        <strong>The file was not accepted</strong>
        <code>{error.code}</code>
      </div>
      <p>{error.message}</p>
      {facts.length > 0 && (
        <dl className="ds-facts">
          {facts.map((fact) => (
            <div key={fact.label}>
              <dt>{fact.label}</dt>
              <dd>{fact.value}</dd>
            </div>
          ))}
        </dl>
      )}
    </div>
  )
}
