// @vitest-environment happy-dom
import { DateTime } from "effect"
import { renderToStaticMarkup } from "react-dom/server"
import { describe, expect, it } from "vitest"
import type { ModelConfigId, PromptId, PromptVersionId, RunId, RunModelId } from "../../src/domain/Ids.ts"
import { Run, type RunModel } from "../../src/domain/Run.ts"
import { CellStore } from "../../frontend/src/workspace/cellStore.ts"
import { AutoGrade } from "../../frontend/src/workspace/RunGrid.tsx"
import { pagesFor } from "../../frontend/src/workspace/datasetRows.ts"
import { cellId, queuedCell } from "../support/CellFixture.ts"
import { countOf, outputKind, outputText } from "../../frontend/src/workspace/format.ts"
import { cellAt, gridRowCount, modelColumns } from "../../frontend/src/workspace/gridModel.ts"
import {
  commandFor,
  focusReducer,
  initialFocus,
  isTypingTarget,
  type GridBounds,
  type GridCommand,
  type GridFocus
} from "../../frontend/src/workspace/keyboard.ts"

const bounds: GridBounds = { rows: 5, cols: 3, pageRows: 2 }

const press = (focus: GridFocus, key: string, target: EventTarget | null = document.body) => {
  const command = commandFor({ key, target }, bounds)
  return command === null ? focus : focusReducer(focus, command, bounds)
}

describe("keyboard: keys to commands", () => {
  it("maps arrows and vim keys to moves, p/f/u to grades, Enter/Escape to the drawer", () => {
    const expected: Record<string, GridCommand> = {
      ArrowDown: { type: "move", rows: 1, cols: 0 },
      j: { type: "move", rows: 1, cols: 0 },
      ArrowUp: { type: "move", rows: -1, cols: 0 },
      k: { type: "move", rows: -1, cols: 0 },
      ArrowRight: { type: "move", rows: 0, cols: 1 },
      l: { type: "move", rows: 0, cols: 1 },
      ArrowLeft: { type: "move", rows: 0, cols: -1 },
      h: { type: "move", rows: 0, cols: -1 },
      PageDown: { type: "move", rows: 2, cols: 0 },
      End: { type: "moveTo", row: 4 },
      p: { type: "grade", value: "pass" },
      f: { type: "grade", value: "fail" },
      u: { type: "grade", value: "unset" },
      Enter: { type: "open" },
      Escape: { type: "close" }
    }
    for (const [key, command] of Object.entries(expected)) {
      expect(commandFor({ key, target: document.body }, bounds), key).toEqual(command)
    }
    expect(commandFor({ key: "x", target: document.body }, bounds)).toBeNull()
    expect(commandFor({ key: "p", ctrlKey: true, target: document.body }, bounds)).toBeNull()
    expect(commandFor({ key: "j", metaKey: true, target: document.body }, bounds)).toBeNull()
  })

  it("never fires while typing in a field", () => {
    const input = document.createElement("input")
    const textarea = document.createElement("textarea")
    const select = document.createElement("select")
    const editable = document.createElement("div")
    editable.contentEditable = "true"
    document.body.append(input, textarea, select, editable)
    for (const target of [input, textarea, select]) {
      expect(isTypingTarget(target)).toBe(true)
      for (const key of ["j", "p", "f", "u", "ArrowDown", "Enter"]) {
        expect(commandFor({ key, target }, bounds), `${key} in ${target.tagName}`).toBeNull()
      }
    }
    expect(isTypingTarget(document.body)).toBe(false)
  })

  it("leaves Enter to a focused button, but grades and moves from it", () => {
    const button = document.createElement("button")
    expect(commandFor({ key: "Enter", target: button }, bounds)).toBeNull()
    expect(commandFor({ key: "p", target: button }, bounds)).toEqual({ type: "grade", value: "pass" })
    expect(commandFor({ key: "j", target: button }, bounds)).toEqual({ type: "move", rows: 1, cols: 0 })
  })
})

describe("keyboard: focus", () => {
  it("moves within the grid and stops at its edges", () => {
    let focus = initialFocus
    focus = press(focus, "k")
    expect(focus).toBe(initialFocus)
    focus = press(press(press(focus, "j"), "j"), "l")
    expect(focus).toEqual({ row: 2, col: 1, drawerOpen: false })
    focus = press(press(press(focus, "l"), "l"), "ArrowRight")
    expect(focus.col).toBe(2)
    focus = press(focus, "PageDown")
    expect(focus.row).toBe(4)
    focus = press(focus, "PageDown")
    expect(focus.row).toBe(4)
    focus = press(focus, "Home")
    expect(focus).toEqual({ row: 0, col: 2, drawerOpen: false })
    focus = press(focus, "h")
    expect(focus.col).toBe(1)
  })

  it("opens and closes the drawer, keeps it open while moving, and grading does not move", () => {
    let focus = press(initialFocus, "Enter")
    expect(focus.drawerOpen).toBe(true)
    focus = press(focus, "j")
    expect(focus).toEqual({ row: 1, col: 0, drawerOpen: true })
    expect(press(focus, "p")).toBe(focus)
    focus = press(focus, "Escape")
    expect(focus.drawerOpen).toBe(false)
    expect(press(focus, "Escape")).toBe(focus)
  })

  it("opens nothing in an empty grid", () => {
    const empty = { rows: 0, cols: 2, pageRows: 10 }
    expect(focusReducer(initialFocus, { type: "open" }, empty).drawerOpen).toBe(false)
    expect(focusReducer(initialFocus, { type: "move", rows: 3, cols: 5 }, empty)).toEqual({
      row: 0,
      col: 1,
      drawerOpen: false
    })
  })
})

const T = DateTime.unsafeMake(Date.parse("2026-11-28T10:00:00Z"))
const RUN = "00000000-0000-4000-8000-00000000aaaa" as RunId
const runModel = (n: number, displayOrder: number): RunModel => ({
  id: `00000000-0000-4000-8000-0000000000${n}0` as RunModelId,
  modelConfigId: `00000000-0000-4000-8000-0000000001${n}0` as ModelConfigId,
  displayOrder,
  provider: "mock",
  model: `mock-${n}`,
  label: `Mock ${n}`,
  counts: { total: 3, queued: 3, running: 0, succeeded: 0, failed: 0, canceled: 0 }
})

const runWith = (models: ReadonlyArray<RunModel>, total: number) =>
  new Run({
    id: RUN,
    promptId: "00000000-0000-4000-8000-0000000000f1" as PromptId,
    promptVersionId: "00000000-0000-4000-8000-0000000000f2" as PromptVersionId,
    datasetId: null,
    graderPromptVersionId: null,
    graderModelConfigId: null,
    status: "running",
    activeMetric: "latency",
    error: null,
    models,
    counts: { total, queued: total, running: 0, succeeded: 0, failed: 0, canceled: 0 },
    createdAt: T,
    startedAt: null,
    completedAt: null
  })

const cellOf = (id: number, runModelId: RunModelId, rowIndex: number) =>
  queuedCell({ id: cellId(id), runId: RUN, runModelId, rowIndex, updatedAt: T })

describe("grid: rows and columns", () => {
  it("orders model columns by display order and maps (row, col) to the cell of that row and model", () => {
    const second = runModel(2, 1)
    const first = runModel(1, 0)
    const run = runWith([second, first], 6)
    const columns = modelColumns(run)
    expect(columns.map((c) => c.label)).toEqual(["Mock 1", "Mock 2"])
    expect(gridRowCount(run)).toBe(3)

    const store = new CellStore()
    store.merge([0, 1, 2].flatMap((row) => [cellOf(row, first.id, row), cellOf(10 + row, second.id, row)]))
    for (const row of [0, 1, 2]) {
      expect(cellAt(store, columns, row, 0)?.runModelId).toBe(first.id)
      expect(cellAt(store, columns, row, 1)?.runModelId).toBe(second.id)
      expect(cellAt(store, columns, row, 1)?.rowIndex).toBe(row)
    }
    expect(cellAt(store, columns, 3, 0)).toBeUndefined()
    expect(cellAt(store, columns, 0, 2)).toBeUndefined()
  })

  it("a run with no model has no rows", () => {
    expect(gridRowCount(runWith([], 0))).toBe(0)
  })

  it("fetches the dataset pages that cover the visible rows", () => {
    expect(pagesFor(0, 0, 200)).toEqual([0])
    expect(pagesFor(150, 260, 200)).toEqual([0, 1])
    expect(pagesFor(400, 400, 200)).toEqual([2])
    expect(pagesFor(9_990, 10_020, 200)).toEqual([49, 50])
    expect(pagesFor(5, 4, 200)).toEqual([])
  })
})

describe("grid: what a cell shows", () => {
  it("the parsed output when there is one, JSON compact in the grid and pretty in the drawer", () => {
    const json = { outputRaw: '```json\n{"a":1}\n```', outputParsed: { kind: "json", value: { a: 1 } } }
    expect(outputText(json)).toBe('{"a":1}')
    expect(outputText(json, true)).toBe('{\n  "a": 1\n}')
    expect(outputKind(json)).toBe("json")
    const tagged = {
      outputRaw: "<response>hi</response>",
      outputParsed: { kind: "response_tag", value: "hi" }
    }
    expect(outputText(tagged)).toBe("hi")
    expect(outputKind(tagged)).toBe("response tag")
  })

  it("the raw output when nothing was parsed, nothing before there is an output", () => {
    expect(outputText({ outputRaw: "plain", outputParsed: null })).toBe("plain")
    expect(outputKind({ outputParsed: null })).toBeNull()
    expect(outputText({ outputRaw: null, outputParsed: null })).toBeNull()
  })

  it("counts with the right noun", () => {
    expect(countOf(1, "row")).toBe("1 row")
    expect(countOf(10_000, "row")).toBe("10,000 rows")
  })
})

describe("a grid cell's automatic grade", () => {
  const markup = (fields: {
    grade: "pass" | "fail" | null
    gradeReason: string | null
    gradeError: string | null
  }) => renderToStaticMarkup(<AutoGrade cell={fields} />)

  it("shows the grade with its reason on hover", () => {
    expect(markup({ grade: "pass", gradeReason: "cites the source", gradeError: null })).toBe(
      '<span class="auto-grade pass" title="cites the source">auto pass</span>'
    )
  })

  it("shows that grading failed, with why on hover, rather than nothing", () => {
    expect(markup({ grade: null, gradeReason: null, gradeError: "The grader's reply has no grade." })).toBe(
      '<span class="auto-grade error" title="The grader&#x27;s reply has no grade.">grading failed</span>'
    )
    expect(markup({ grade: null, gradeReason: null, gradeError: null })).toBe("")
  })
})
