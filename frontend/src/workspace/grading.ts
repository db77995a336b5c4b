// A manual grade, shown at once and rolled back (with the server's message) if the server refuses it.
import type { CellGrade, ManualGradeValue } from "../../../src/domain/Grade.ts"
import type { RunCellId, RunId } from "../../../src/domain/Ids.ts"
import { toApiError, type ApiError } from "../lib/errors.ts"
import type { Api } from "../lib/rpc.ts"
import type { CellStore } from "./cellStore.ts"

export const setManualGrade = async (
  api: Api,
  store: CellStore,
  runId: RunId,
  cellId: RunCellId,
  value: ManualGradeValue,
  onError: (error: ApiError) => void
): Promise<CellGrade | undefined> => {
  const ticket = store.setPendingGrade(cellId, value === "unset" ? null : value)
  try {
    const grade = await api.call((client) => client.grades.set({ runId, cellId, value }))
    store.confirmGrade(ticket, grade)
    return grade
  } catch (error) {
    store.rollbackGrade(ticket)
    onError(toApiError(error))
    return undefined
  }
}
