import { DateTime } from "effect"
import { describe, expect, it } from "vitest"
import { Cell } from "../../src/domain/Cell.ts"
import { CellGrade } from "../../src/domain/Grade.ts"
import type { RunId, RunModelId } from "../../src/domain/Ids.ts"
import { CellStore, isNewer } from "../../frontend/src/workspace/cellStore.ts"
import { cellId, queuedCell } from "../support/CellFixture.ts"

const RUN = "00000000-0000-4000-8000-00000000aaaa" as RunId
const MODEL_A = "00000000-0000-4000-8000-0000000000a1" as RunModelId
const MODEL_B = "00000000-0000-4000-8000-0000000000b1" as RunModelId
const T0 = Date.parse("2026-11-28T10:00:00.000Z")

const idOf = cellId

const cell = (
  n: number,
  fields: Partial<Omit<ConstructorParameters<typeof Cell>[0], "updatedAt">> & { at?: number } = {}
) => {
  const { at = 0, ...rest } = fields
  return queuedCell({
    id: idOf(n),
    runId: RUN,
    runModelId: MODEL_A,
    rowIndex: n,
    updatedAt: DateTime.unsafeMake(T0 + at),
    ...rest
  })
}

const succeeded = (n: number, at: number, extra: Parameters<typeof cell>[1] = {}) =>
  cell(n, { status: "succeeded", attempt: 1, outputRaw: `out ${n}`, at, ...extra })

describe("cell store: versions", () => {
  it("a newer snapshot replaces an older one, never the other way round", () => {
    const store = new CellStore()
    expect(store.merge([cell(1, { at: 0 })])).toBe(1)
    expect(store.merge([succeeded(1, 50)])).toBe(1)
    // a poll that left before the result was written arrives late
    expect(store.merge([cell(1, { status: "running", attempt: 1, at: 10 })])).toBe(0)
    expect(store.get(idOf(1))?.status).toBe("succeeded")
    expect(store.get(idOf(1))?.outputRaw).toBe("out 1")
  })

  it("the same version twice is one change (polls overlap by the server's watermark)", () => {
    const store = new CellStore()
    let heard = 0
    store.subscribe(() => heard++)
    expect(store.merge([succeeded(1, 5), succeeded(2, 5)])).toBe(2)
    expect(store.merge([succeeded(1, 5), succeeded(2, 5)])).toBe(0)
    expect(heard).toBe(1)
  })

  it("within one millisecond the version further along wins, in either arrival order", () => {
    const running = cell(1, { status: "running", attempt: 1, at: 7 })
    const done = succeeded(1, 7)
    expect(isNewer(done, running)).toBe(true)
    expect(isNewer(running, done)).toBe(false)
    for (const order of [
      [running, done],
      [done, running]
    ]) {
      const store = new CellStore()
      order.forEach((snapshot) => store.merge([snapshot]))
      expect(store.get(idOf(1))?.status).toBe("succeeded")
    }
  })

  it("a re-run (attempt back to 0, later time) replaces the finished cell", () => {
    const store = new CellStore()
    store.merge([cell(1, { status: "failed", attempt: 4, errorCode: "server_error", at: 10 })])
    store.merge([cell(1, { status: "queued", attempt: 0, at: 2_000 })])
    expect(store.get(idOf(1))?.status).toBe("queued")
    expect(store.get(idOf(1))?.errorCode).toBeNull()
    expect(store.activeCount).toBe(1)
  })

  it("indexes cells by row × model and counts statuses per model as they change", () => {
    const store = new CellStore()
    store.merge([
      cell(0),
      cell(1),
      cell(2),
      cell(10, { runModelId: MODEL_B, rowIndex: 0 }),
      cell(11, { runModelId: MODEL_B, rowIndex: 1 }),
      cell(12, { runModelId: MODEL_B, rowIndex: 2 })
    ])
    expect(store.rowCount).toBe(3)
    expect(store.at(1, MODEL_B)?.id).toBe(idOf(11))
    expect(store.at(2, MODEL_A)?.id).toBe(idOf(2))
    expect(store.at(3, MODEL_A)).toBeUndefined()
    expect(store.activeCount).toBe(6)

    store.merge([
      cell(0, { status: "running", attempt: 1, at: 1 }),
      succeeded(1, 2),
      cell(11, { runModelId: MODEL_B, rowIndex: 1, status: "failed", attempt: 4, at: 3 })
    ])
    expect(store.counts(MODEL_A)).toEqual({
      total: 3,
      queued: 1,
      running: 1,
      succeeded: 1,
      failed: 0,
      canceled: 0
    })
    expect(store.counts(MODEL_B)).toMatchObject({ total: 3, queued: 2, failed: 1 })
    expect(store.counts()).toMatchObject({ total: 6, queued: 3, running: 1, succeeded: 1, failed: 1 })
    expect(store.activeCount).toBe(4)
  })

  it("merges a poll's page and a later event-triggered fetch of the same cells in any order", () => {
    // what a poll and a fetch after events each saw, for cells 0..3 over time
    const history = [0, 1, 2, 3].map((n) => [
      cell(n, { at: 0 }),
      cell(n, { status: "running", attempt: 1, at: 100 + n }),
      succeeded(n, 200 + n, { tokensIn: n, costUsd: 0.001 * n, latencyMs: 10 * n })
    ])
    const snapshots = history.flat()
    // a fixed shuffle, so the test fails the same way every time
    const order = [7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6]
    const store = new CellStore()
    store.merge(order.filter((i) => i % 2 === 0).map((i) => snapshots[i]!))
    store.merge(order.filter((i) => i % 2 === 1).map((i) => snapshots[i]!))
    for (const n of [0, 1, 2, 3]) {
      expect(store.get(idOf(n))).toMatchObject({ status: "succeeded", tokensIn: n, latencyMs: 10 * n })
    }
    expect(store.counts(MODEL_A)).toMatchObject({ total: 4, succeeded: 4, queued: 0, running: 0 })
    expect(store.activeCount).toBe(0)
  })
})

const gradeOf = (n: number, manualGrade: "pass" | "fail" | null) =>
  new CellGrade({
    runId: RUN,
    cellId: idOf(n),
    status: "succeeded",
    autoGrade: "fail",
    manualGrade,
    grade: manualGrade ?? "fail",
    history: []
  })

describe("cell store: optimistic manual grades", () => {
  it("shows a grade at once and rolls it back on refusal", () => {
    const store = new CellStore()
    store.merge([succeeded(1, 10, { grade: "fail" })])
    const ticket = store.setPendingGrade(idOf(1), "pass")
    expect(store.get(idOf(1))).toMatchObject({
      manualGrade: "pass",
      effectiveGrade: "pass",
      gradePending: true
    })
    store.rollbackGrade(ticket)
    expect(store.get(idOf(1))).toMatchObject({
      manualGrade: null,
      effectiveGrade: "fail",
      gradePending: false
    })
  })

  it("keeps a confirmed grade over an older snapshot that arrives after it", () => {
    const store = new CellStore()
    store.merge([succeeded(1, 10)])
    const ticket = store.setPendingGrade(idOf(1), "fail")
    store.confirmGrade(ticket, gradeOf(1, "fail"))
    // a poll sent before the grade: same version as the store's, so not even merged
    store.merge([succeeded(1, 10)])
    expect(store.get(idOf(1))).toMatchObject({ manualGrade: "fail", gradePending: false })
    // the snapshot with the grade takes over; a later unset from elsewhere then shows
    store.merge([succeeded(1, 900, { manualGrade: "fail" })])
    store.merge([succeeded(1, 1_900, { manualGrade: null })])
    expect(store.get(idOf(1))?.manualGrade).toBeNull()
  })

  it("a refusal of an earlier grade does not undo a later one", () => {
    const store = new CellStore()
    store.merge([succeeded(1, 10)])
    const first = store.setPendingGrade(idOf(1), "pass")
    const second = store.setPendingGrade(idOf(1), "fail")
    store.rollbackGrade(first)
    expect(store.get(idOf(1))).toMatchObject({ manualGrade: "fail", gradePending: true })
    store.confirmGrade(first, gradeOf(1, "pass"))
    expect(store.get(idOf(1))?.manualGrade).toBe("fail")
    store.confirmGrade(second, gradeOf(1, "fail"))
    expect(store.get(idOf(1))).toMatchObject({ manualGrade: "fail", gradePending: false })
  })

  it("unset falls back to the automatic grade", () => {
    const store = new CellStore()
    store.merge([succeeded(1, 10, { grade: "pass", manualGrade: "fail" })])
    expect(store.get(idOf(1))?.effectiveGrade).toBe("fail")
    store.setPendingGrade(idOf(1), null)
    expect(store.get(idOf(1))).toMatchObject({ manualGrade: null, effectiveGrade: "pass" })
  })
})
