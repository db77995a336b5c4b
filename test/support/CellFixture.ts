import { DateTime } from "effect"
import { Cell } from "../../src/domain/Cell.ts"
import type { RunCellId, RunId } from "../../src/domain/Ids.ts"

type CellFields = ConstructorParameters<typeof Cell>[0]

/** A cell id from a small number, so tests can name cells 1, 2, 3. */
export const cellId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}` as RunCellId

/** A queued cell that has not run yet; `fields` sets whatever the test is about. */
export const queuedCell = (
  fields: Pick<CellFields, "id" | "runModelId" | "rowIndex"> & { readonly runId: RunId } & Partial<CellFields>
) =>
  new Cell({
    datasetRowId: null,
    status: "queued",
    stage: "generate",
    attempt: 0,
    outputRaw: null,
    outputParsed: null,
    grade: null,
    gradeScore: null,
    gradeReason: null,
    gradeError: null,
    manualGrade: null,
    tokensIn: null,
    tokensOut: null,
    costUsd: null,
    latencyMs: null,
    errorCode: null,
    errorMessage: null,
    startedAt: null,
    finishedAt: null,
    updatedAt: DateTime.unsafeMake(0),
    ...fields
  })
