// Offset paging of a dataset preview: which rows a page shows and where the buttons lead. Rows are numbered
// from 1 for people (the server's row_index counts from 0).

export const PAGE_SIZES = [25, 50, 100, 200] as const

export interface PageWindow {
  /** The page's first row, 0-based, aligned to the page size and never past the last page. */
  readonly offset: number
  readonly limit: number
  readonly total: number
  /** First and last row shown, 1-based; both 0 when there are no rows. */
  readonly first: number
  readonly last: number
  /** 1-based page number and page count (at least 1). */
  readonly page: number
  readonly pages: number
  readonly prevOffset: number | null
  readonly nextOffset: number | null
  readonly lastOffset: number
}

/** The page holding row `offset` (0-based), for `limit` rows a page out of `total`. */
export const pageWindow = (offset: number, limit: number, total: number): PageWindow => {
  const size = Math.max(1, Math.floor(limit))
  const count = Math.max(0, Math.floor(total))
  const pages = Math.max(1, Math.ceil(count / size))
  const lastOffset = (pages - 1) * size
  const aligned = Math.min(lastOffset, Math.max(0, Math.floor(offset / size) * size))
  return {
    offset: aligned,
    limit: size,
    total: count,
    first: count === 0 ? 0 : aligned + 1,
    last: Math.min(count, aligned + size),
    page: aligned / size + 1,
    pages,
    prevOffset: aligned > 0 ? aligned - size : null,
    nextOffset: aligned + size < count ? aligned + size : null,
    lastOffset
  }
}

/** The offset of the page showing 1-based `row`; null when `row` is not a row number of the dataset. */
export const offsetOfRow = (row: number, limit: number, total: number): number | null =>
  Number.isInteger(row) && row >= 1 && row <= total ? pageWindow(row - 1, limit, total).offset : null

/** A URL parameter as a whole number, else the fallback. */
export const intParam = (value: string | null, fallback: number): number => {
  if (value === null || !/^\d+$/.test(value)) return fallback
  return Number(value)
}
