// What the runs screens load beyond a run itself: every cell of a run, and the names a run only refers to by id
// (its prompt version and its dataset).
import type { Cell } from "../../../src/domain/Cell.ts"
import type { RunMetricsReport } from "../../../src/domain/Grade.ts"
import { MAX_CELL_PAGE_SIZE } from "../../../src/domain/Cell.ts"
import type { Dataset } from "../../../src/domain/Dataset.ts"
import type { DatasetId, PromptId, PromptVersionId, RunId } from "../../../src/domain/Ids.ts"
import type { Prompt, PromptVersion } from "../../../src/domain/Prompt.ts"
import type { Run } from "../../../src/domain/Run.ts"
import type { Api } from "../lib/rpc.ts"

/** Every cell of a run, paging through `cells.list` at its largest page size; `onPage` hears each page's size. */
export const loadAllCells = async (
  api: Api,
  runId: RunId,
  onPage: (cells: number) => void = () => {}
): Promise<ReadonlyArray<Cell>> => {
  // pages are ordered by (updatedAt, id): a cell that changes while we page shows up again, later — keep the last
  const byId = new Map<string, Cell>()
  let cursor: string | undefined
  do {
    const page = await api.call((client) =>
      client.cells.list({ runId, limit: MAX_CELL_PAGE_SIZE, ...(cursor === undefined ? {} : { cursor }) })
    )
    for (const cell of page.items) byId.set(cell.id, cell)
    onPage(page.items.length)
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  return [...byId.values()]
}

/** Every prompt, paging through `prompts.list`. */
export const loadAllPrompts = async (api: Api): Promise<ReadonlyArray<Prompt>> => {
  const prompts: Array<Prompt> = []
  let cursor: string | undefined
  do {
    const page = await api.call((client) =>
      client.prompts.list({ limit: 200, ...(cursor === undefined ? {} : { cursor }) })
    )
    prompts.push(...page.items)
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  return prompts
}

/** The names runs point at: prompt versions (with the prompt's name at that version) and datasets. */
export interface RunLabels {
  readonly versions: ReadonlyMap<PromptVersionId, PromptVersion>
  readonly datasets: ReadonlyMap<DatasetId, Dataset>
}

export const emptyLabels: RunLabels = { versions: new Map(), datasets: new Map() }

/**
 * The labels `runs` need that `known` lacks: one `prompts.versions` per prompt, one `datasets.get` per dataset
 * (prompts cascade to their runs and datasets in use cannot be deleted, so both exist).
 */
export const loadLabels = async (
  api: Api,
  runs: ReadonlyArray<Run>,
  known: RunLabels
): Promise<RunLabels> => {
  const prompts = new Set<PromptId>()
  const datasets = new Set<DatasetId>()
  for (const run of runs) {
    if (!known.versions.has(run.promptVersionId)) prompts.add(run.promptId)
    if (run.datasetId !== null && !known.datasets.has(run.datasetId)) datasets.add(run.datasetId)
  }
  const [versionLists, datasetList] = await Promise.all([
    Promise.all([...prompts].map((id) => api.call((client) => client.prompts.versions({ id })))),
    Promise.all([...datasets].map((id) => api.call((client) => client.datasets.get({ id }))))
  ])
  return {
    versions: new Map(versionLists.flat().map((version) => [version.id, version])),
    datasets: new Map(datasetList.map((dataset) => [dataset.id, dataset]))
  }
}

export const mergeLabels = (known: RunLabels, more: RunLabels): RunLabels => ({
  versions: new Map([...known.versions, ...more.versions]),
  datasets: new Map([...known.datasets, ...more.datasets])
})

/** Whether `labels` can name every run of `runs`. */
export const hasLabels = (labels: RunLabels, runs: ReadonlyArray<Run>) =>
  runs.every(
    (run) =>
      labels.versions.has(run.promptVersionId) &&
      (run.datasetId === null || labels.datasets.has(run.datasetId))
  )

/** "Summarize v3" — the prompt's name as it was at that version. */
export const versionLabel = (labels: RunLabels, run: Run): string => {
  const version = labels.versions.get(run.promptVersionId)
  // a no-break space keeps the version number with the name
  return version ? `${version.name}\u00a0v${version.versionNumber}` : "…"
}

export const datasetLabel = (labels: RunLabels, run: Run): string => {
  if (run.datasetId === null) return "no dataset"
  return labels.datasets.get(run.datasetId)?.name ?? "…"
}

export interface ComparisonData {
  readonly a: { readonly run: Run; readonly cells: ReadonlyArray<Cell>; readonly metrics: RunMetricsReport }
  readonly b: { readonly run: Run; readonly cells: ReadonlyArray<Cell>; readonly metrics: RunMetricsReport }
}

const loadSide = async (api: Api, id: RunId, onPage: (cells: number) => void) => {
  const [run, cells, metrics] = await Promise.all([
    api.call((client) => client.runs.get({ id })),
    loadAllCells(api, id, onPage),
    api.call((client) => client.runs.metrics({ id }))
  ])
  return { run, cells, metrics }
}

/** Both runs, all their cells and their metrics; `onProgress` hears how many cells have arrived so far. */
export const loadComparison = async (
  api: Api,
  a: RunId,
  b: RunId,
  onProgress: (cells: number) => void = () => {}
): Promise<ComparisonData> => {
  let loaded = 0
  const onPage = (cells: number) => onProgress((loaded += cells))
  const [sideA, sideB] = await Promise.all([loadSide(api, a, onPage), loadSide(api, b, onPage)])
  return { a: sideA, b: sideB }
}
