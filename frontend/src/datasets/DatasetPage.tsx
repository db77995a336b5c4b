// One dataset: what it holds (format, rows, columns, size), its rows page by page, rename and delete.
import { Schema } from "effect"
import { useRef, useState } from "react"
import { DatasetId } from "../../../src/domain/Ids.ts"
import type { Dataset, DatasetPreview } from "../../../src/domain/Dataset.ts"
import { ConfirmButton } from "../lib/ConfirmButton.tsx"
import { EditableName } from "../lib/EditableName.tsx"
import { formatBytes, formatCount, formatDateTime } from "../lib/format.ts"
import { Link, navigate, setSearch, useLocation } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { showToast } from "../lib/toast.tsx"
import { useAction } from "../lib/useAction.ts"
import { useQuery } from "../lib/useQuery.ts"
import { intParam, offsetOfRow, PAGE_SIZES, pageWindow } from "./paging.ts"
import "./datasets.css"

const isDatasetId = Schema.is(DatasetId)
const DEFAULT_LIMIT = 50

export const DatasetPage = ({ id }: { readonly id: string }) =>
  isDatasetId(id) ? (
    <DatasetView id={id} />
  ) : (
    <div className="page">
      <h1>Dataset not found</h1>
      <p>
        <code>{id}</code> is not a dataset id. <Link to="/datasets">Back to datasets</Link>
      </p>
    </div>
  )

const DatasetView = ({ id }: { readonly id: DatasetId }) => {
  const api = useApi()
  const dataset = useQuery(`dataset:${id}`, () => api.call((client) => client.datasets.get({ id })))
  const { busy, run } = useAction()
  if (dataset.data === undefined)
    return (
      <div className="page">
        <p className="muted">{dataset.loading ? "Loading dataset…" : (dataset.error?.message ?? "")}</p>
        {!dataset.loading && <Link to="/datasets">Back to datasets</Link>}
      </div>
    )
  const current = dataset.data

  const rename = async (name: string) => {
    const renamed = await run(() => api.call((client) => client.datasets.rename({ id, name })))
    if (renamed === undefined) return false
    dataset.setData(() => renamed)
    return true
  }

  const remove = async () => {
    const done = await run(async () => {
      await api.call((client) => client.datasets.delete({ id }))
      return true
    })
    if (!done) return
    showToast("success", `Deleted “${current.name}”.`)
    navigate("/datasets")
  }

  return (
    <div className="page dataset-page">
      <nav className="ds-crumbs" aria-label="Breadcrumb">
        <Link to="/datasets">Datasets</Link> <span className="muted">/</span>
      </nav>
      <header className="dataset-head">
        <EditableName name={current.name} noun="dataset" disabled={busy} onRename={rename} />
        <div className="ds-spacer" />
        <ConfirmButton
          label="Delete"
          question={
            <>
              Delete <strong>{current.name}</strong> and its {formatCount(current.rowCount)} rows? Runs that
              used it keep it from being deleted.
            </>
          }
          disabled={busy}
          onConfirm={() => void remove()}
        />
      </header>
      <Summary dataset={current} />
      <Preview dataset={current} />
    </div>
  )
}

const Summary = ({ dataset }: { readonly dataset: Dataset }) => (
  <section className="card dataset-summary" aria-label="Summary">
    <dl className="ds-facts ds-wide">
      <div>
        <dt>Format</dt>
        <dd>{dataset.format.toUpperCase()}</dd>
      </div>
      <div>
        <dt>Rows</dt>
        <dd>{formatCount(dataset.rowCount)}</dd>
      </div>
      <div>
        <dt>Columns</dt>
        <dd>{dataset.headers.length}</dd>
      </div>
      <div>
        <dt>Size</dt>
        <dd>{formatBytes(dataset.byteSize)}</dd>
      </div>
      <div>
        <dt>Source file</dt>
        <dd className="ds-ellipsis" title={dataset.sourceFilename ?? undefined}>
          {dataset.sourceFilename ?? "—"}
        </dd>
      </div>
      <div>
        <dt>Uploaded</dt>
        <dd>{formatDateTime(dataset.createdAt)}</dd>
      </div>
    </dl>
    <div className="ds-columns">
      <span className="muted">Columns, usable as placeholders:</span>
      {dataset.headers.map((header) => (
        <code key={header} className="ds-col-chip">
          {`{{${header}}}`}
        </code>
      ))}
    </div>
  </section>
)

const cellText = (value: unknown) =>
  typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value)

const Preview = ({ dataset }: { readonly dataset: Dataset }) => {
  const api = useApi()
  const { search } = useLocation()
  const limitParam = intParam(search.get("limit"), DEFAULT_LIMIT)
  const limit = (PAGE_SIZES as ReadonlyArray<number>).includes(limitParam) ? limitParam : DEFAULT_LIMIT
  const page = pageWindow(intParam(search.get("offset"), 0), limit, dataset.rowCount)
  const preview = useQuery(`preview:${dataset.id}:${page.offset}:${page.limit}`, () =>
    api.call((client) => client.datasets.preview({ id: dataset.id, offset: page.offset, limit: page.limit }))
  )
  // the previous page stays on screen (dimmed) while the next one loads, so the table does not jump
  const shownRef = useRef<DatasetPreview | undefined>(undefined)
  if (preview.data) shownRef.current = preview.data
  const shown = preview.data ?? shownRef.current
  const [jump, setJump] = useState("")

  const go = (offset: number, size = page.limit) =>
    setSearch({
      offset: offset === 0 ? null : String(offset),
      limit: size === DEFAULT_LIMIT ? null : String(size)
    })

  const jumpTo = () => {
    const offset = offsetOfRow(Number(jump), page.limit, page.total)
    if (offset === null)
      return showToast("error", `There is no row ${jump}: rows go from 1 to ${page.total}.`)
    setJump("")
    go(offset)
  }

  return (
    <section className="card ds-preview" aria-labelledby="preview-title">
      <div className="ds-preview-bar">
        <h2 id="preview-title">Rows</h2>
        <span className="muted" aria-live="polite">
          {page.total === 0
            ? "No rows"
            : `${formatCount(page.first)}–${formatCount(page.last)} of ${formatCount(page.total)}`}
        </span>
        <div className="ds-spacer" />
        <form
          className="ds-jump"
          onSubmit={(event) => {
            event.preventDefault()
            jumpTo()
          }}
        >
          <input
            aria-label="Go to row"
            placeholder="Row #"
            inputMode="numeric"
            value={jump}
            onChange={(event) => setJump(event.target.value)}
          />
          <button type="submit" disabled={jump.trim() === ""}>
            Go
          </button>
        </form>
        <div className="ds-page-size">
          <label htmlFor="rows-per-page">Rows per page</label>
          <select
            id="rows-per-page"
            value={page.limit}
            onChange={(event) => {
              const size = Number(event.target.value)
              // keep the first row in view
              go(pageWindow(page.offset, size, page.total).offset, size)
            }}
          >
            {PAGE_SIZES.map((size) => (
              <option key={size} value={size}>
                {size}
              </option>
            ))}
          </select>
        </div>
        <nav className="ds-pager" aria-label="Pages">
          <button
            type="button"
            aria-label="First page"
            disabled={page.prevOffset === null}
            onClick={() => go(0)}
          >
            «
          </button>
          <button
            type="button"
            disabled={page.prevOffset === null}
            onClick={() => page.prevOffset !== null && go(page.prevOffset)}
          >
            Previous
          </button>
          <span className="ds-page-of">
            Page {formatCount(page.page)} of {formatCount(page.pages)}
          </span>
          <button
            type="button"
            disabled={page.nextOffset === null}
            onClick={() => page.nextOffset !== null && go(page.nextOffset)}
          >
            Next
          </button>
          <button
            type="button"
            aria-label="Last page"
            disabled={page.nextOffset === null}
            onClick={() => go(page.lastOffset)}
          >
            »
          </button>
        </nav>
      </div>
      {shown === undefined ? (
        <p className="muted">{preview.loading ? "Loading rows…" : "Rows could not be loaded."}</p>
      ) : (
        <div className={`ds-table-scroll${preview.loading ? " ds-stale" : ""}`}>
          <table className="ds-preview-table" aria-label="Dataset rows" aria-busy={preview.loading}>
            <thead>
              <tr>
                <th className="ds-row-num">#</th>
                {shown.headers.map((header) => (
                  <th key={header}>{header}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.rows.map((row) => (
                <tr key={row.index}>
                  <td className="ds-row-num">{formatCount(row.index + 1)}</td>
                  {shown.headers.map((header) => {
                    const text = cellText(row.values[header])
                    return (
                      <td key={header} title={text.length > 80 ? text : undefined}>
                        {row.values[header] === null ? <span className="muted">null</span> : text}
                      </td>
                    )
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
