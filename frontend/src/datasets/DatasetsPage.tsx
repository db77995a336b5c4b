// Every dataset, newest first, and the upload panel; a finished upload opens the new dataset.
import { useState } from "react"
import type { Dataset } from "../../../src/domain/Dataset.ts"
import { formatAgo, formatBytes, formatCount, formatDateTime } from "../lib/format.ts"
import { Link, navigate } from "../lib/router.tsx"
import { useApi } from "../lib/session.tsx"
import { showToast } from "../lib/toast.tsx"
import { useAction } from "../lib/useAction.ts"
import { useQuery } from "../lib/useQuery.ts"
import { UploadPanel } from "./UploadPanel.tsx"
import "./datasets.css"

export const DatasetsPage = () => {
  const api = useApi()
  const first = useQuery("datasets", () => api.call((client) => client.datasets.list({})))
  const [more, setMore] = useState<{ items: ReadonlyArray<Dataset>; cursor: string | null }>()
  const { busy, run } = useAction()
  const items = first.data ? [...first.data.items, ...(more?.items ?? [])] : undefined
  const cursor = more ? more.cursor : (first.data?.nextCursor ?? null)

  const loadMore = async () => {
    if (cursor === null) return
    const page = await run(() => api.call((client) => client.datasets.list({ cursor })))
    if (page) setMore({ items: [...(more?.items ?? []), ...page.items], cursor: page.nextCursor })
  }

  return (
    <div className="page">
      <h1>Datasets</h1>
      <UploadPanel
        onUploaded={(dataset) => {
          showToast("success", `Uploaded “${dataset.name}”: ${formatCount(dataset.rowCount)} rows.`)
          navigate(`/datasets/${dataset.id}`)
        }}
      />
      <h2 className="datasets-subtitle">Your datasets</h2>
      {items === undefined ? (
        <p className="muted">{first.loading ? "Loading datasets…" : "Datasets could not be loaded."}</p>
      ) : items.length === 0 ? (
        <div className="empty card">
          No datasets yet. Upload a file above: each row becomes one test case.
        </div>
      ) : (
        <table className="list dataset-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Format</th>
              <th className="ds-num">Rows</th>
              <th>Columns</th>
              <th className="ds-num">Size</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {items.map((dataset) => (
              <tr key={dataset.id}>
                <td>
                  <Link to={`/datasets/${dataset.id}`} className="ds-row-link">
                    {dataset.name}
                  </Link>
                  {dataset.sourceFilename && <div className="muted ds-small">{dataset.sourceFilename}</div>}
                </td>
                <td>
                  <span className="badge ds-format">{dataset.format.toUpperCase()}</span>
                </td>
                <td className="ds-num">{formatCount(dataset.rowCount)}</td>
                <td className="ds-columns-cell" title={dataset.headers.join(", ")}>
                  <span className="ds-col-count">{dataset.headers.length}</span>{" "}
                  <span className="muted">{dataset.headers.join(", ")}</span>
                </td>
                <td className="ds-num">{formatBytes(dataset.byteSize)}</td>
                <td className="ds-nowrap" title={formatDateTime(dataset.createdAt)}>
                  {formatAgo(dataset.createdAt)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor !== null && items !== undefined && (
        <div className="dataset-more">
          <button type="button" disabled={busy} onClick={() => void loadMore()}>
            Load more
          </button>
        </div>
      )}
    </div>
  )
}
