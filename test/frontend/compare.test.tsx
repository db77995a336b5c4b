// The runs list's lead metric, and run-vs-run compare: the pure comparison (matching, changed outputs, grade flips, metric deltas, filters), the
// side-by-side output diff, and the whole loading path against the real app (engine, mock models, PGlite).
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect } from "effect"
import { renderToStaticMarkup } from "react-dom/server"
import { describe, it } from "vitest"
import { Cell } from "../../src/domain/Cell.ts"
import type { Metrics } from "../../src/domain/Grade.ts"
import type {
  DatasetId,
  ModelConfigId,
  PromptId,
  PromptVersionId,
  RunCellId,
  RunId,
  RunModelId
} from "../../src/domain/Ids.ts"
import { type ActiveMetric, Run, type RunModel } from "../../src/domain/Run.ts"
import { queuedCell } from "../support/CellFixture.ts"
import { makeApi, type Api } from "../../frontend/src/lib/rpc.ts"
import { formatDelta } from "../../frontend/src/runs/CompareMetrics.tsx"
import { LeadMetric } from "../../frontend/src/runs/RunBits.tsx"
import {
  compareRuns,
  deltaDirection,
  effectiveGrade,
  filterPairs,
  metricDeltas,
  type RunSide
} from "../../frontend/src/runs/compare.ts"
import { loadAllCells, loadComparison } from "../../frontend/src/runs/data.ts"
import { MAX_WORD_TOKENS, sideBySide, type Segment } from "../../frontend/src/runs/outputDiff.ts"
import { api as rest, csvForm, testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

const uuid = (prefix: string, n: number) => `00000000-0000-4000-${prefix}-${String(n).padStart(12, "0")}`
const T0 = Date.parse("2026-11-28T10:00:00.000Z")
const counts = { total: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 }

const CONFIG = {
  alpha: uuid("8001", 1) as ModelConfigId,
  beta: uuid("8001", 2) as ModelConfigId,
  gamma: uuid("8001", 3) as ModelConfigId
}

const runModel = (run: number, config: keyof typeof CONFIG, displayOrder: number): RunModel => ({
  // each run has its own run-model ids: only the model configuration is shared
  id: uuid(`900${run}`, displayOrder) as RunModelId,
  modelConfigId: CONFIG[config],
  displayOrder,
  provider: "mock",
  model: config,
  label: config,
  counts
})

const run = (
  n: number,
  models: ReadonlyArray<RunModel>,
  fields: { promptId?: number; versionId?: number; datasetId?: number | null } = {}
) =>
  new Run({
    id: uuid("7000", n) as RunId,
    promptId: uuid("6000", fields.promptId ?? 1) as PromptId,
    promptVersionId: uuid("6001", fields.versionId ?? n) as PromptVersionId,
    datasetId: fields.datasetId === null ? null : (uuid("5000", fields.datasetId ?? 1) as DatasetId),
    graderPromptVersionId: null,
    graderModelConfigId: null,
    status: "completed",
    activeMetric: "combined_pass_rate",
    error: null,
    models,
    counts,
    createdAt: DateTime.unsafeMake(T0 + n),
    startedAt: null,
    completedAt: null
  })

let nextCell = 1
type CellFields = Partial<ConstructorParameters<typeof Cell>[0]>

/** A succeeded cell of `owner` for `model` at `rowIndex`, with an output, usage and latency. */
const cell = (owner: Run, model: RunModel, rowIndex: number, fields: CellFields = {}) =>
  queuedCell({
    id: uuid("4000", nextCell++) as RunCellId,
    runId: owner.id,
    runModelId: model.id,
    rowIndex,
    status: "succeeded",
    attempt: 1,
    outputRaw: `answer ${rowIndex}`,
    tokensIn: 10,
    tokensOut: 5,
    costUsd: 0,
    latencyMs: 100,
    updatedAt: DateTime.unsafeMake(T0),
    ...fields
  })

const metrics = (fields: Partial<Metrics> = {}): Metrics => ({
  counts,
  autoGraded: 0,
  autoPassed: 0,
  autoPassRate: null,
  manualGraded: 0,
  manualPassed: 0,
  manualPassRate: null,
  combinedGraded: 0,
  combinedPassed: 0,
  combinedPassRate: null,
  meanLatencyMs: null,
  p95LatencyMs: null,
  tokensIn: 0,
  tokensOut: 0,
  graderTokensIn: 0,
  graderTokensOut: 0,
  costUsd: 0,
  ...fields
})

describe("compareRuns: matching", () => {
  it("pairs cells on (row index, model configuration), whatever the run-model ids and display order", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const aBeta = runModel(1, "beta", 1)
    // B lists the same models the other way round
    const bBeta = runModel(2, "beta", 0)
    const bAlpha = runModel(2, "alpha", 1)
    const a = run(1, [aAlpha, aBeta])
    const b = run(2, [bBeta, bAlpha])
    const cellsA = [0, 1].flatMap((row) => [
      cell(a, aAlpha, row, { outputRaw: `alpha ${row}` }),
      cell(a, aBeta, row, { outputRaw: `beta ${row}` })
    ])
    const cellsB = [0, 1].flatMap((row) => [
      cell(b, bBeta, row, { outputRaw: `beta ${row}` }),
      cell(b, bAlpha, row, { outputRaw: row === 1 ? "alpha changed" : `alpha ${row}` })
    ])
    const result = compareRuns({ run: a, cells: cellsA }, { run: b, cells: cellsB })

    expect(result.models.map((model) => model.label)).toEqual(["alpha", "beta"])
    expect(result.pairs.map((pair) => [pair.rowIndex, pair.model.label])).toEqual([
      [0, "alpha"],
      [0, "beta"],
      [1, "alpha"],
      [1, "beta"]
    ])
    for (const pair of result.pairs) {
      expect(pair.a?.outputRaw?.startsWith(pair.model.label)).toBe(true)
      expect(pair.b?.runModelId).toBe(pair.model.label === "alpha" ? bAlpha.id : bBeta.id)
    }
    expect(result.pairs.filter((pair) => pair.outputChanged).map((pair) => pair.key)).toEqual([
      `1:${CONFIG.alpha}`
    ])
    expect(result.totals).toMatchObject({ compared: 4, changedOutputs: 1, toFail: 0, toPass: 0, pending: 0 })
    expect(result.perModel.map((entry) => [entry.model.label, entry.changedOutputs])).toEqual([
      ["alpha", 1],
      ["beta", 0]
    ])
    expect(result.samePrompt).toBe(true)
    expect(result.samePromptVersion).toBe(false)
    expect(result.sameDataset).toBe(true)
  })

  it("compares only the models both runs used, and ignores the others' cells", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const aGamma = runModel(1, "gamma", 1)
    const bAlpha = runModel(2, "alpha", 0)
    const bBeta = runModel(2, "beta", 1)
    const a = run(1, [aAlpha, aGamma])
    const b = run(2, [bAlpha, bBeta])
    const result = compareRuns(
      { run: a, cells: [cell(a, aAlpha, 0), cell(a, aGamma, 0, { outputRaw: "only A" })] },
      { run: b, cells: [cell(b, bAlpha, 0), cell(b, bBeta, 0, { outputRaw: "only B" })] }
    )
    expect(result.models.map((model) => model.modelConfigId)).toEqual([CONFIG.alpha])
    expect(result.modelsOnlyInA.map((model) => model.modelConfigId)).toEqual([CONFIG.gamma])
    expect(result.modelsOnlyInB.map((model) => model.modelConfigId)).toEqual([CONFIG.beta])
    expect(result.pairs).toHaveLength(1)
    expect(result.totals).toMatchObject({ compared: 1, changedOutputs: 0, onlyInA: 0, onlyInB: 0 })
    expect(filterPairs(result.pairs, "all")).toEqual([])
    // with different model sets there is no like-for-like whole-run figure
    expect(result.overall).toEqual([])
  })

  it("matches rows of different datasets by index, counting the rows only one run has", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const bAlpha = runModel(2, "alpha", 0)
    const a = run(1, [aAlpha], { datasetId: 1 })
    const b = run(2, [bAlpha], { datasetId: 2 })
    const result = compareRuns(
      { run: a, cells: [0, 1, 2].map((row) => cell(a, aAlpha, row)) },
      { run: b, cells: [0, 1].map((row) => cell(b, bAlpha, row, { outputRaw: `other ${row}` })) }
    )
    expect(result.sameDataset).toBe(false)
    expect(result.totals).toMatchObject({ compared: 2, changedOutputs: 2, onlyInA: 1, onlyInB: 0 })
    const unmatched = result.pairs.find((pair) => pair.rowIndex === 2)!
    expect(unmatched.b).toBeNull()
    expect(unmatched.outputChanged).toBe(false)
    expect(filterPairs(result.pairs, "all").map((pair) => pair.rowIndex)).toEqual([0, 1, 2])
    expect(filterPairs(result.pairs, "changed").map((pair) => pair.rowIndex)).toEqual([0, 1])

    const noDataset = run(3, [runModel(3, "alpha", 0)], { datasetId: null })
    expect(compareRuns({ run: a, cells: [] }, { run: noDataset, cells: [] }).sameDataset).toBe(false)
  })

  it("treats a failure as an outcome: succeeded vs failed is a change, the same failure is not", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const bAlpha = runModel(2, "alpha", 0)
    const a = run(1, [aAlpha])
    const b = run(2, [bAlpha])
    const failed = {
      status: "failed" as const,
      outputRaw: null,
      errorCode: "timeout",
      errorMessage: "took too long"
    }
    const result = compareRuns(
      { run: a, cells: [cell(a, aAlpha, 0), cell(a, aAlpha, 1, failed), cell(a, aAlpha, 2, failed)] },
      {
        run: b,
        cells: [
          cell(b, bAlpha, 0, failed),
          cell(b, bAlpha, 1, failed),
          cell(b, bAlpha, 2, { ...failed, errorCode: "rate_limited" })
        ]
      }
    )
    expect(result.pairs.map((pair) => pair.outputChanged)).toEqual([true, false, true])
  })

  it("leaves pairs with a cell still queued or running out of the counts", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const bAlpha = runModel(2, "alpha", 0)
    const a = run(1, [aAlpha])
    const b = run(2, [bAlpha])
    const result = compareRuns(
      { run: a, cells: [cell(a, aAlpha, 0, { grade: "pass" }), cell(a, aAlpha, 1, { grade: "pass" })] },
      {
        run: b,
        cells: [
          cell(b, bAlpha, 0, { status: "running", outputRaw: null }),
          cell(b, bAlpha, 1, { status: "queued", outputRaw: null })
        ]
      }
    )
    expect(result.pairs.every((pair) => pair.pending && !pair.outputChanged && !pair.differs)).toBe(true)
    expect(result.totals).toMatchObject({ compared: 0, changedOutputs: 0, pending: 2 })
  })
})

describe("compareRuns: grade flips", () => {
  it("flips on effective grades: a manual grade overrides the grader's", () => {
    expect(effectiveGrade(null)).toBeNull()
    const aAlpha = runModel(1, "alpha", 0)
    const bAlpha = runModel(2, "alpha", 0)
    const a = run(1, [aAlpha])
    const b = run(2, [bAlpha])
    const grades: ReadonlyArray<[CellFields, CellFields]> = [
      [{ grade: "pass" }, { grade: "fail" }], // 0: pass → fail
      [{ grade: "fail" }, { grade: "pass" }], // 1: fail → pass
      [{ grade: "pass" }, { grade: "pass", manualGrade: "fail" }], // 2: pass → fail by hand
      [{ grade: "fail", manualGrade: "pass" }, { grade: "pass" }], // 3: pass → pass, no flip
      [{ grade: "pass" }, { grade: null }], // 4: graded → ungraded: differs, not a flip
      [{ grade: "fail", manualGrade: "pass" }, { grade: "fail" }] // 5: pass (manual) → fail
    ]
    const result = compareRuns(
      { run: a, cells: grades.map(([fields], row) => cell(a, aAlpha, row, fields)) },
      { run: b, cells: grades.map(([, fields], row) => cell(b, bAlpha, row, fields)) }
    )
    expect(result.pairs.map((pair) => pair.flip)).toEqual([
      "to_fail",
      "to_pass",
      "to_fail",
      null,
      null,
      "to_fail"
    ])
    expect(result.pairs.map((pair) => [pair.gradeA, pair.gradeB])).toEqual([
      ["pass", "fail"],
      ["fail", "pass"],
      ["pass", "fail"],
      ["pass", "pass"],
      ["pass", null],
      ["pass", "fail"]
    ])
    expect(result.totals).toMatchObject({ compared: 6, changedOutputs: 0, toFail: 3, toPass: 1 })
    expect(filterPairs(result.pairs, "to_fail").map((pair) => pair.rowIndex)).toEqual([0, 2, 5])
    expect(filterPairs(result.pairs, "to_pass").map((pair) => pair.rowIndex)).toEqual([1])
    expect(filterPairs(result.pairs, "changed")).toEqual([])
    // every grade change is a difference, the un-graded one included; the same grade is not
    expect(filterPairs(result.pairs, "all").map((pair) => pair.rowIndex)).toEqual([0, 1, 2, 4, 5])
  })
})

describe("compareRuns: metric deltas", () => {
  it("takes per-model figures from each run's metrics, by its own run-model id", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const bAlpha = runModel(2, "alpha", 0)
    const a = run(1, [aAlpha])
    const b = run(2, [bAlpha])
    const report = (owner: Run, model: RunModel, figures: Partial<Metrics>): RunSide["metrics"] => ({
      runId: owner.id,
      activeMetric: "combined_pass_rate",
      overall: metrics(figures),
      models: [{ runModelId: model.id, label: model.label, metrics: metrics(figures) }]
    })
    const result = compareRuns(
      {
        run: a,
        cells: [],
        metrics: report(a, aAlpha, {
          combinedPassRate: 0.5,
          meanLatencyMs: 200,
          p95LatencyMs: 400,
          tokensIn: 100,
          tokensOut: 50,
          costUsd: 0.02
        })
      },
      {
        run: b,
        cells: [],
        metrics: report(b, bAlpha, {
          combinedPassRate: 0.75,
          meanLatencyMs: 150,
          p95LatencyMs: 500,
          tokensIn: 100,
          tokensOut: 50,
          costUsd: 0.03
        })
      }
    )
    const deltas = result.perModel[0]!.metrics
    expect(deltas.map((delta) => [delta.key, delta.a, delta.b, delta.delta, deltaDirection(delta)])).toEqual([
      ["passRate", 0.5, 0.75, 0.25, "better"],
      ["meanLatencyMs", 200, 150, -50, "better"],
      ["p95LatencyMs", 400, 500, 100, "worse"],
      ["tokens", 150, 150, 0, "same"],
      ["costUsd", 0.02, 0.03, expect.closeTo(0.01, 10), "worse"]
    ])
    // same models on both sides: whole-run deltas too
    expect(result.overall.map((delta) => delta.key)).toEqual(deltas.map((delta) => delta.key))
    expect(formatDelta(deltas[0]!)).toBe("+25.0 pts")
    expect(formatDelta(deltas[1]!)).toBe("−50 ms (−25%)")
    expect(formatDelta(deltas[3]!)).toBe("±0")
  })

  it("has no delta where a side has nothing to measure", () => {
    const [passRate, latency] = metricDeltas(metrics({ combinedPassRate: 0.9, meanLatencyMs: 10 }), metrics())
    expect(passRate).toMatchObject({ a: 0.9, b: null, delta: null })
    expect(deltaDirection(passRate!)).toBe("same")
    expect(latency).toMatchObject({ a: 10, b: null, delta: null })
    expect(formatDelta(latency!)).toBe("")
  })

  it("has no metric deltas for a run whose metrics are not loaded", () => {
    const aAlpha = runModel(1, "alpha", 0)
    const a = run(1, [aAlpha])
    const b = run(2, [runModel(2, "alpha", 0)])
    const result = compareRuns({ run: a, cells: [], metrics: undefined }, { run: b, cells: [] })
    expect(result.perModel[0]!.metrics).toEqual([])
    expect(result.overall).toEqual([])
  })
})

describe("runs list: each run's lead metric", () => {
  const lead = (metric: ActiveMetric, fields: Partial<Metrics> = {}) =>
    renderToStaticMarkup(<LeadMetric metric={metric} metrics={metrics(fields)} />)
  const graded = {
    combinedGraded: 4,
    combinedPassed: 3,
    combinedPassRate: 0.75,
    autoGraded: 4,
    autoPassed: 1,
    autoPassRate: 0.25
  }

  it("shows the figure of the run's active metric, not always the combined pass rate", () => {
    expect(lead("combined_pass_rate", graded)).toContain("75.0%")
    expect(lead("combined_pass_rate", graded)).toContain("3/4 passed, combined")
    expect(lead("auto_pass_rate", graded)).toContain("25.0%")
    expect(lead("auto_pass_rate", graded)).toContain("1/4 passed, automatic")
    expect(lead("manual_pass_rate", graded)).toContain("No cell has a manual grade")
    const latency = lead("latency", { ...graded, meanLatencyMs: 420, p95LatencyMs: 12_500 })
    expect(latency).toContain("420 ms")
    expect(latency).toContain("p95 12.5 s")
    expect(latency).not.toContain("%")
    expect(lead("tokens", { tokensIn: 1200, tokensOut: 300 })).toContain("1,500")
    expect(lead("tokens", { tokensIn: 1200, tokensOut: 300 })).toContain("1,200 in / 300 out")
    expect(lead("cost", { costUsd: 0.1234 })).toContain("$0.12")
  })
})

const joined = (segments: ReadonlyArray<Segment>) => segments.map((segment) => segment.text).join("")
const changed = (segments: ReadonlyArray<Segment>) =>
  segments.filter((segment) => segment.changed).map((segment) => segment.text)

describe("side-by-side output diff", () => {
  it("marks the words each side does not share, and each side still reads as its text", () => {
    const a = "The cat sat on the mat."
    const b = "The dog sat on the mat today."
    const diff = sideBySide(a, b)
    expect(joined(diff.a)).toBe(a)
    expect(joined(diff.b)).toBe(b)
    expect(changed(diff.a)).toEqual(["cat", "mat."])
    expect(changed(diff.b)).toEqual(["dog", "mat today."])
  })

  it("keeps line breaks, and a change of whitespace alone is a change", () => {
    const a = "first line\nsecond line"
    const b = "first line\n\nsecond  line"
    const diff = sideBySide(a, b)
    expect(joined(diff.a)).toBe(a)
    expect(joined(diff.b)).toBe(b)
    expect(changed(diff.a)).toEqual(["\n", " "])
    expect(changed(diff.b)).toEqual(["\n\n", "  "])
    // a word that looks like an encoded whitespace token is still a word
    const tricky = sideBySide('say "\\n" now', "say \n now")
    expect(changed(tricky.a)).toEqual([' "\\n" '])
    expect(changed(tricky.b)).toEqual([" \n "])
  })

  it("handles empty sides and identical texts", () => {
    expect(sideBySide("", "")).toEqual({ a: [], b: [] })
    expect(sideBySide("", "new")).toEqual({ a: [], b: [{ text: "new", changed: true }] })
    expect(sideBySide("same text", "same text")).toEqual({
      a: [{ text: "same text", changed: false }],
      b: [{ text: "same text", changed: false }]
    })
  })

  it("compares whole lines when an output is too long to diff word by word", () => {
    const lines = Array.from({ length: MAX_WORD_TOKENS / 4 }, (_, i) => `line ${i} of text`)
    const a = lines.join("\n")
    const b = [...lines.slice(0, 10), "an inserted line", ...lines.slice(10)].join("\n")
    const diff = sideBySide(a, b)
    expect(joined(diff.a)).toBe(a)
    expect(joined(diff.b)).toBe(b)
    expect(changed(diff.a)).toEqual([])
    expect(changed(diff.b)).toEqual(["\nan inserted line"])
  })
})

// ---- against the real app ----

const ROWS = 505 // × 2 models: more cells than one page of cells.list

interface Fixture {
  readonly api: Api
  readonly promptId: PromptId
  readonly graderId: PromptId
  readonly datasetId: DatasetId
  readonly models: ReadonlyArray<ModelConfigId>
}

const fixture = async (baseUrl: string): Promise<Fixture> => {
  const api = makeApi(baseUrl, async () => undefined)
  const prompt = await api.call((client) =>
    client.prompts.create({
      name: "Echo",
      type: "generator",
      systemText: "",
      userTemplate: "Say {{text}}",
      defaultParams: {}
    })
  )
  const grader = await api.call((client) =>
    client.prompts.create({
      name: "Judge",
      type: "grader",
      systemText: "You are a grader.",
      userTemplate: "Input {{input}} gave {{output}}",
      defaultParams: {}
    })
  )
  const csv = ["text", ...Array.from({ length: ROWS }, (_, i) => `row ${i}`)].join("\n")
  const upload = await rest(baseUrl).post("/api/v1/datasets", csvForm(csv))
  expect(upload.status).toBe(201)
  const models = await Promise.all(
    ["cmp-a", "cmp-b"].map(
      async (name) =>
        (await api.call((client) => client.models.create({ provider: "mock", model: name, label: name }))).id
    )
  )
  return { api, promptId: prompt.id, graderId: grader.id, datasetId: upload.body.id as DatasetId, models }
}

const runToEnd = async (f: Fixture, modelIds: ReadonlyArray<ModelConfigId>): Promise<Run> => {
  const created = await f.api.call((client) =>
    client.runs.create({
      promptId: f.promptId,
      datasetId: f.datasetId,
      modelIds,
      graderPromptId: f.graderId,
      graderModelId: null
    })
  )
  const deadline = Date.now() + 90_000
  for (;;) {
    const current = await f.api.call((client) => client.runs.get({ id: created.id }))
    if (current.status !== "queued" && current.status !== "running") return current
    if (Date.now() > deadline) throw new Error(`run ${created.id} did not finish`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const compareLoaded = async (f: Fixture, a: RunId, b: RunId) => {
  const data = await loadComparison(f.api, a, b)
  return compareRuns(data.a, data.b)
}

layer(testApp(pgliteLayer), { excludeTestServices: true, timeout: 240_000 })(
  "compare against the app",
  (it) => {
    it.effect(
      "loads every cell, then finds no change between runs of one version and a flip set by hand",
      () =>
        Effect.gen(function* () {
          const baseUrl = yield* BaseUrl
          yield* Effect.promise(async () => {
            const f = await fixture(baseUrl)
            try {
              const first = await runToEnd(f, f.models)
              const second = await runToEnd(f, [...f.models].reverse())
              expect(first.status).toBe("completed")
              expect(second.status).toBe("completed")

              const cells = await loadAllCells(f.api, first.id)
              expect(cells).toHaveLength(ROWS * 2)
              expect(new Set(cells.map((c) => c.id)).size).toBe(ROWS * 2)

              const data = await loadComparison(f.api, first.id, second.id)
              const same = compareRuns(data.a, data.b)
              expect(same.samePromptVersion).toBe(true)
              expect(same.models.map((model) => model.modelConfigId)).toEqual(f.models)
              // the mock answers and grades deterministically: one prompt version, the same cells
              expect(same.totals).toMatchObject({
                compared: ROWS * 2,
                changedOutputs: 0,
                toFail: 0,
                toPass: 0,
                pending: 0,
                onlyInA: 0,
                onlyInB: 0
              })
              const graded = data.a.cells.filter((c) => c.grade !== null)
              expect(graded.length).toBe(ROWS * 2)
              expect(new Set(graded.map((c) => c.grade))).toEqual(new Set(["pass", "fail"]))
              for (const entry of same.perModel) {
                const passRate = entry.metrics.find((delta) => delta.key === "passRate")!
                expect(passRate.a).not.toBeNull()
                expect(passRate.delta).toBe(0)
              }

              // overrule the grader on one cell of B, each way: one regression and one fix
              const passed = data.b.cells.find((c) => c.grade === "pass")!
              const failed = data.b.cells.find((c) => c.grade === "fail")!
              await f.api.call((client) =>
                client.grades.set({ runId: second.id, cellId: passed.id, value: "fail" })
              )
              await f.api.call((client) =>
                client.grades.set({ runId: second.id, cellId: failed.id, value: "pass" })
              )
              const after = await compareLoaded(f, first.id, second.id)
              expect(after.totals).toMatchObject({ changedOutputs: 0, toFail: 1, toPass: 1 })
              expect(filterPairs(after.pairs, "to_fail").map((pair) => pair.b?.id)).toEqual([passed.id])
              expect(filterPairs(after.pairs, "to_pass").map((pair) => pair.b?.id)).toEqual([failed.id])
              // each model's pass-rate delta (from the two runs' metrics) is its net flips over its graded cells
              after.perModel.forEach((entry, i) => {
                const passRate = entry.metrics.find((delta) => delta.key === "passRate")!
                expect(passRate.a).toBe(
                  same.perModel[i]!.metrics.find((delta) => delta.key === "passRate")!.a
                )
                expect(passRate.delta).toBeCloseTo((entry.toPass - entry.toFail) / ROWS, 10)
              })

              // a new prompt version changes every output
              await f.api.call((client) =>
                client.prompts.update({ id: f.promptId, changes: { userTemplate: "Now say {{text}}" } })
              )
              const third = await runToEnd(f, [f.models[0]!])
              const edited = await compareLoaded(f, first.id, third.id)
              expect(edited.samePromptVersion).toBe(false)
              expect(edited.modelsOnlyInA.map((model) => model.modelConfigId)).toEqual([f.models[1]])
              expect(edited.totals).toMatchObject({ compared: ROWS, changedOutputs: ROWS })
            } finally {
              await f.api.dispose()
            }
          })
        })
    )
  }
)
