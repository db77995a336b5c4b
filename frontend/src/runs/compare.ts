// Run-vs-run comparison, cell by cell: pure functions over two runs, their cells and their metrics, so the
// screen only renders what this module decides (and the rules are tested without a browser).
import type { Cell } from "../../../src/domain/Cell.ts"
import type { Metrics, RunMetricsReport } from "../../../src/domain/Grade.ts"
import type { ModelConfigId } from "../../../src/domain/Ids.ts"
import type { Run, RunModel } from "../../../src/domain/Run.ts"

export type GradeValue = "pass" | "fail"

/** The grade that counts: a person's verdict where there is one, else the grader's. */
export const effectiveGrade = (cell: Cell | null): GradeValue | null =>
  cell === null ? null : (cell.manualGrade ?? cell.grade)

/** A model both runs used, matched by its model configuration. */
export interface ComparedModel {
  readonly modelConfigId: ModelConfigId
  readonly label: string
  readonly a: RunModel
  readonly b: RunModel
}

export type Flip = "to_fail" | "to_pass"

/** One dataset row × model, in A and in B (null: that run has no such row). */
export interface CellPair {
  readonly key: string
  readonly rowIndex: number
  readonly model: ComparedModel
  readonly a: Cell | null
  readonly b: Cell | null
  /** A cell of the pair is still queued or running: it is shown but not counted. */
  readonly pending: boolean
  /** Both settled and their outcomes (output text, or failure) differ. */
  readonly outputChanged: boolean
  readonly gradeA: GradeValue | null
  readonly gradeB: GradeValue | null
  readonly flip: Flip | null
  /** Worth a line in the table of differences: unmatched, changed output or a different grade. */
  readonly differs: boolean
}

export type MetricKey = "passRate" | "meanLatencyMs" | "p95LatencyMs" | "tokens" | "costUsd"

export interface MetricDelta {
  readonly key: MetricKey
  readonly a: number | null
  readonly b: number | null
  /** b − a; null when either side has no value. */
  readonly delta: number | null
  /** Which direction is an improvement. */
  readonly better: "higher" | "lower"
}

export interface ModelComparison {
  readonly model: ComparedModel
  /** Pairs present in both runs whose cells have settled. */
  readonly compared: number
  readonly changedOutputs: number
  readonly toFail: number
  readonly toPass: number
  /** Empty when a run's metrics are not loaded. */
  readonly metrics: ReadonlyArray<MetricDelta>
}

export interface Totals {
  readonly compared: number
  readonly changedOutputs: number
  readonly toFail: number
  readonly toPass: number
  readonly pending: number
  /** Row × model pairs only one run has (different datasets). */
  readonly onlyInA: number
  readonly onlyInB: number
}

export interface RunComparison {
  readonly samePrompt: boolean
  readonly samePromptVersion: boolean
  /** False also when exactly one of the runs has no dataset: rows are then matched by index alone. */
  readonly sameDataset: boolean
  readonly models: ReadonlyArray<ComparedModel>
  readonly modelsOnlyInA: ReadonlyArray<RunModel>
  readonly modelsOnlyInB: ReadonlyArray<RunModel>
  /** Every pair of the common models, by row then by A's model order. */
  readonly pairs: ReadonlyArray<CellPair>
  readonly perModel: ReadonlyArray<ModelComparison>
  /** Whole-run metric deltas, when both runs used the same models (else they would not compare like for like). */
  readonly overall: ReadonlyArray<MetricDelta>
  readonly totals: Totals
}

export interface RunSide {
  readonly run: Run
  readonly cells: ReadonlyArray<Cell>
  readonly metrics?: RunMetricsReport | undefined
}

const settled = (cell: Cell) => cell.status !== "queued" && cell.status !== "running"

/** What a cell came to, as one comparable string: its output, or how it failed. */
const outcomeOf = (cell: Cell): string => {
  if (cell.status === "succeeded") return `ok:${cell.outputRaw ?? ""}`
  if (cell.status === "failed") return `failed:${cell.errorCode ?? ""}:${cell.errorMessage ?? ""}`
  return cell.status
}

const byDisplayOrder = (models: ReadonlyArray<RunModel>) =>
  [...models].sort((x, y) => x.displayOrder - y.displayOrder)

/** Models of both runs, matched by model configuration, in A's display order. */
const matchModels = (a: Run, b: Run) => {
  const inB = new Map(b.models.map((model) => [model.modelConfigId, model]))
  const inA = new Set(a.models.map((model) => model.modelConfigId))
  const models: Array<ComparedModel> = []
  const modelsOnlyInA: Array<RunModel> = []
  for (const model of byDisplayOrder(a.models)) {
    const other = inB.get(model.modelConfigId)
    if (other) models.push({ modelConfigId: model.modelConfigId, label: model.label, a: model, b: other })
    else modelsOnlyInA.push(model)
  }
  const modelsOnlyInB = byDisplayOrder(b.models).filter((model) => !inA.has(model.modelConfigId))
  return { models, modelsOnlyInA, modelsOnlyInB }
}

/** Cells keyed by `rowIndex:modelConfigId`; cells of a model the run does not list are ignored. */
const cellsByKey = (run: Run, cells: ReadonlyArray<Cell>) => {
  const configOf = new Map(run.models.map((model) => [model.id as string, model.modelConfigId]))
  const keyed = new Map<string, Cell>()
  for (const cell of cells) {
    const config = configOf.get(cell.runModelId)
    if (config !== undefined) keyed.set(`${cell.rowIndex}:${config}`, cell)
  }
  return keyed
}

const pairOf = (
  key: string,
  rowIndex: number,
  model: ComparedModel,
  a: Cell | null,
  b: Cell | null
): CellPair => {
  const pending = (a !== null && !settled(a)) || (b !== null && !settled(b))
  const both = a !== null && b !== null && !pending
  const outputChanged = both && outcomeOf(a) !== outcomeOf(b)
  const gradeA = effectiveGrade(a)
  const gradeB = effectiveGrade(b)
  const flip: Flip | null =
    both && gradeA === "pass" && gradeB === "fail"
      ? "to_fail"
      : both && gradeA === "fail" && gradeB === "pass"
        ? "to_pass"
        : null
  const differs = a === null || b === null || outputChanged || (!pending && gradeA !== gradeB)
  return { key, rowIndex, model, a, b, pending, outputChanged, gradeA, gradeB, flip, differs }
}

const passRate = (metrics: Metrics) => metrics.combinedPassRate

const metricValues: ReadonlyArray<{
  readonly key: MetricKey
  readonly better: "higher" | "lower"
  readonly of: (metrics: Metrics) => number | null
}> = [
  { key: "passRate", better: "higher", of: passRate },
  { key: "meanLatencyMs", better: "lower", of: (metrics) => metrics.meanLatencyMs },
  { key: "p95LatencyMs", better: "lower", of: (metrics) => metrics.p95LatencyMs },
  { key: "tokens", better: "lower", of: (metrics) => metrics.tokensIn + metrics.tokensOut },
  { key: "costUsd", better: "lower", of: (metrics) => metrics.costUsd }
]

/** Pass rate (effective grades), latency, generation tokens and cost of A and B side by side, with B − A. */
export const metricDeltas = (a: Metrics, b: Metrics): ReadonlyArray<MetricDelta> =>
  metricValues.map(({ key, better, of }) => {
    const valueA = of(a)
    const valueB = of(b)
    return {
      key,
      a: valueA,
      b: valueB,
      delta: valueA === null || valueB === null ? null : valueB - valueA,
      better
    }
  })

/** A delta's verdict: an improvement, a regression, or no change (or nothing to compare). */
export const deltaDirection = (delta: MetricDelta): "better" | "worse" | "same" => {
  if (delta.delta === null || delta.delta === 0) return "same"
  return delta.delta > 0 === (delta.better === "higher") ? "better" : "worse"
}

const modelMetrics = (report: RunMetricsReport | undefined, model: RunModel) =>
  report?.models.find((entry) => entry.runModelId === model.id)?.metrics

/**
 * Compares B against A: cells are matched on (row index, model configuration); only models both runs used are
 * compared, and rows of different datasets are matched by index alone.
 */
export const compareRuns = (a: RunSide, b: RunSide): RunComparison => {
  const { models, modelsOnlyInA, modelsOnlyInB } = matchModels(a.run, b.run)
  const cellsA = cellsByKey(a.run, a.cells)
  const cellsB = cellsByKey(b.run, b.cells)
  const rows = new Set<number>()
  for (const cell of [...a.cells, ...b.cells]) rows.add(cell.rowIndex)
  const rowOrder = [...rows].sort((x, y) => x - y)

  const pairs: Array<CellPair> = []
  for (const rowIndex of rowOrder) {
    for (const model of models) {
      const key = `${rowIndex}:${model.modelConfigId}`
      const cellA = cellsA.get(key) ?? null
      const cellB = cellsB.get(key) ?? null
      if (cellA !== null || cellB !== null) pairs.push(pairOf(key, rowIndex, model, cellA, cellB))
    }
  }

  const perModel = models.map((model): ModelComparison => {
    const own = pairs.filter((pair) => pair.model === model && pair.a && pair.b && !pair.pending)
    const metricsA = modelMetrics(a.metrics, model.a)
    const metricsB = modelMetrics(b.metrics, model.b)
    return {
      model,
      compared: own.length,
      changedOutputs: own.filter((pair) => pair.outputChanged).length,
      toFail: own.filter((pair) => pair.flip === "to_fail").length,
      toPass: own.filter((pair) => pair.flip === "to_pass").length,
      metrics: metricsA && metricsB ? metricDeltas(metricsA, metricsB) : []
    }
  })

  const sum = (of: (entry: ModelComparison) => number) => perModel.reduce((n, entry) => n + of(entry), 0)
  const totals: Totals = {
    compared: sum((entry) => entry.compared),
    changedOutputs: sum((entry) => entry.changedOutputs),
    toFail: sum((entry) => entry.toFail),
    toPass: sum((entry) => entry.toPass),
    pending: pairs.filter((pair) => pair.pending).length,
    onlyInA: pairs.filter((pair) => pair.b === null).length,
    onlyInB: pairs.filter((pair) => pair.a === null).length
  }

  const sameModels = modelsOnlyInA.length === 0 && modelsOnlyInB.length === 0
  const overall =
    sameModels && a.metrics && b.metrics ? metricDeltas(a.metrics.overall, b.metrics.overall) : []

  return {
    samePrompt: a.run.promptId === b.run.promptId,
    samePromptVersion: a.run.promptVersionId === b.run.promptVersionId,
    sameDataset: a.run.datasetId === b.run.datasetId,
    models,
    modelsOnlyInA,
    modelsOnlyInB,
    pairs,
    perModel,
    overall,
    totals
  }
}

export type PairFilter = "all" | "changed" | "to_fail" | "to_pass"

/** The table's rows: every difference, or just changed outputs, or one direction of grade flips. */
export const filterPairs = (pairs: ReadonlyArray<CellPair>, filter: PairFilter): ReadonlyArray<CellPair> => {
  switch (filter) {
    case "all":
      return pairs.filter((pair) => pair.differs)
    case "changed":
      return pairs.filter((pair) => pair.outputChanged)
    case "to_fail":
      return pairs.filter((pair) => pair.flip === "to_fail")
    case "to_pass":
      return pairs.filter((pair) => pair.flip === "to_pass")
  }
}
