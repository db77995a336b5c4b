// The dataset rows beside the grid, fetched a page at a time as the user scrolls to them.
import type { DatasetRow } from "../../../src/domain/Dataset.ts"
import type { DatasetId } from "../../../src/domain/Ids.ts"
import { toApiError, type ApiError } from "../lib/errors.ts"
import type { Api } from "../lib/rpc.ts"

export const DATASET_PAGE_SIZE = 200

/** The pages holding rows `first`..`last` (inclusive). */
export const pagesFor = (
  first: number,
  last: number,
  pageSize = DATASET_PAGE_SIZE
): ReadonlyArray<number> => {
  if (last < first) return []
  const pages: Array<number> = []
  for (let page = Math.floor(Math.max(0, first) / pageSize); page <= Math.floor(last / pageSize); page++) {
    pages.push(page)
  }
  return pages
}

export class DatasetRows {
  private readonly rows = new Map<number, DatasetRow["values"]>()
  /** Pages loaded or loading; a failed page is dropped so the next scroll retries it. */
  private readonly pages = new Set<number>()
  private readonly listeners = new Set<() => void>()
  private revision = 0
  headers: ReadonlyArray<string> = []

  constructor(
    private readonly api: Api,
    private readonly datasetId: DatasetId,
    private readonly onError: (error: ApiError) => void,
    private readonly pageSize = DATASET_PAGE_SIZE
  ) {}

  row(index: number): DatasetRow["values"] | undefined {
    return this.rows.get(index)
  }

  /** Loads the pages of rows `first`..`last` not loaded yet; resolves when they are in. */
  ensure(first: number, last: number): Promise<void> {
    const missing = pagesFor(first, last, this.pageSize).filter((page) => !this.pages.has(page))
    return Promise.all(missing.map((page) => this.load(page))).then(() => undefined)
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  getRevision = () => this.revision

  private async load(page: number) {
    this.pages.add(page)
    try {
      const preview = await this.api.call((client) =>
        client.datasets.preview({ id: this.datasetId, offset: page * this.pageSize, limit: this.pageSize })
      )
      this.headers = preview.headers
      for (const row of preview.rows) this.rows.set(row.index, row.values)
      this.revision++
      this.listeners.forEach((listener) => listener())
    } catch (error) {
      this.pages.delete(page)
      this.onError(toApiError(error))
    }
  }
}
