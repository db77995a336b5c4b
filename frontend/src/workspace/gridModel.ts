// How the run grid maps onto a run: one row per dataset row, one column per model in the run's display order.
import type { RunModelId } from "../../../src/domain/Ids.ts"
import type { Run, RunModel } from "../../../src/domain/Run.ts"
import type { CellStore, CellView } from "./cellStore.ts"

/** The model columns, left to right. */
export const modelColumns = (run: Run): ReadonlyArray<RunModel> =>
  [...run.models].sort((a, b) => a.displayOrder - b.displayOrder)

/**
 * Rows in the grid: every cell of a run has one row per dataset row (a run without a dataset has one), so the
 * run's cell total over its models is the row count even before the cells are loaded.
 */
export const gridRowCount = (run: Run): number =>
  run.models.length === 0 ? 0 : Math.ceil(run.counts.total / run.models.length)

/** The cell at grid position (row, col), if the store has it. */
export const cellAt = (
  store: CellStore,
  columns: ReadonlyArray<{ readonly id: RunModelId }>,
  row: number,
  col: number
): CellView | undefined => {
  const column = columns[col]
  return column === undefined ? undefined : store.at(row, column.id)
}
