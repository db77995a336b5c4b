// The run workspace's cells, outside React: merged from polls and event-triggered fetches in any order, an older
// snapshot never overwriting a newer one, with optimistic manual grades laid over the server's state.
import type { Cell, Grade } from "../../../src/domain/Cell.ts"
import type { CellGrade } from "../../../src/domain/Grade.ts"
import type { RunCellId, RunModelId } from "../../../src/domain/Ids.ts"
import type { CellStatus } from "../../../src/domain/Run.ts"

/** A cell as the grid shows it: the server's snapshot with a pending manual grade applied. */
export interface CellView extends Omit<Cell, "manualGrade"> {
  readonly manualGrade: Grade | null
  /** The grade that counts: manual where set, else automatic. */
  readonly effectiveGrade: Grade | null
  /** A manual grade was sent and the server has not answered yet. */
  readonly gradePending: boolean
}

export type StatusCounts = Record<CellStatus, number> & { total: number }

const emptyCounts = (): StatusCounts => ({
  total: 0,
  queued: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  canceled: 0
})

const STATUS_RANK: Record<CellStatus, number> = {
  queued: 0,
  running: 1,
  succeeded: 2,
  failed: 2,
  canceled: 2
}

/**
 * How far a cell's life has gone within one timestamp. `updatedAt` comes in milliseconds while the server
 * orders by microseconds, so two versions of a cell can share a timestamp (a mock model answers within the
 * millisecond it was claimed): the one further along its attempt wins.
 */
const progress = (cell: Cell) => cell.attempt * 4 + STATUS_RANK[cell.status]

/** Whether `incoming` should replace `existing`: newer, or as new and further along; same version: no. */
export const isNewer = (incoming: Cell, existing: Cell): boolean => {
  const a = incoming.updatedAt.epochMillis
  const b = existing.updatedAt.epochMillis
  return a > b || (a === b && progress(incoming) > progress(existing))
}

interface PendingGrade {
  readonly seq: number
  readonly value: Grade | null
  /** The stored snapshot's time when the grade was sent: a later snapshot already has it. */
  readonly base: number
  readonly confirmed: boolean
}

const viewOf = (cell: Cell, pending: PendingGrade | undefined): CellView => {
  const manualGrade = pending ? pending.value : cell.manualGrade
  return {
    ...cell,
    manualGrade,
    effectiveGrade: manualGrade ?? cell.grade,
    gradePending: pending !== undefined && !pending.confirmed
  }
}

export interface GradeTicket {
  readonly cellId: RunCellId
  readonly seq: number
}

export class CellStore {
  private readonly cells = new Map<RunCellId, Cell>()
  private readonly views = new Map<RunCellId, CellView>()
  /** runModelId → cell id by row index. */
  private readonly grid = new Map<RunModelId, Array<RunCellId | undefined>>()
  private readonly countsByModel = new Map<RunModelId, StatusCounts>()
  private readonly pending = new Map<RunCellId, PendingGrade>()
  private readonly listeners = new Set<() => void>()
  private seq = 0
  private active = 0
  private rows = 0
  private revision = 0

  /**
   * Takes what is newer than what the store holds; answers how many cells changed. Listeners hear once per
   * call, so a page of a thousand cells re-renders the grid once.
   */
  merge(cells: Iterable<Cell>): number {
    let changed = 0
    for (const cell of cells) {
      const existing = this.cells.get(cell.id)
      if (existing !== undefined && !isNewer(cell, existing)) continue
      this.cells.set(cell.id, cell)
      if (existing === undefined) this.place(cell)
      this.count(existing, cell)
      const pending = this.pending.get(cell.id)
      if (
        pending?.confirmed &&
        (cell.updatedAt.epochMillis > pending.base || cell.manualGrade === pending.value)
      ) {
        this.pending.delete(cell.id)
      }
      this.views.set(cell.id, viewOf(cell, this.pending.get(cell.id)))
      changed++
    }
    if (changed > 0) this.emit()
    return changed
  }

  get(id: RunCellId): CellView | undefined {
    return this.views.get(id)
  }

  at(rowIndex: number, runModelId: RunModelId): CellView | undefined {
    const id = this.grid.get(runModelId)?.[rowIndex]
    return id === undefined ? undefined : this.views.get(id)
  }

  /** Cells per status for one model (all models without one), as the store has them now. */
  counts(runModelId?: RunModelId): StatusCounts {
    if (runModelId !== undefined) return { ...(this.countsByModel.get(runModelId) ?? emptyCounts()) }
    const total = emptyCounts()
    for (const counts of this.countsByModel.values()) {
      for (const key of Object.keys(total) as Array<keyof StatusCounts>) total[key] += counts[key]
    }
    return total
  }

  /** Cells queued or running. */
  get activeCount(): number {
    return this.active
  }

  /** One more than the highest row index seen. */
  get rowCount(): number {
    return this.rows
  }

  get size(): number {
    return this.cells.size
  }

  /** Shows `value` at once; settle the ticket with `confirmGrade` or `rollbackGrade` when the server answers. */
  setPendingGrade(cellId: RunCellId, value: Grade | null): GradeTicket {
    const seq = ++this.seq
    const cell = this.cells.get(cellId)
    this.pending.set(cellId, { seq, value, base: cell?.updatedAt.epochMillis ?? 0, confirmed: false })
    this.refresh(cellId)
    return { cellId, seq }
  }

  /**
   * The server took the grade. Its answer stays laid over the stored snapshot until a snapshot with it arrives
   * (a poll already in flight may still bring the older one).
   */
  confirmGrade(ticket: GradeTicket, grade: CellGrade) {
    const pending = this.pending.get(ticket.cellId)
    if (pending?.seq !== ticket.seq) return
    const cell = this.cells.get(ticket.cellId)
    if (
      cell !== undefined &&
      cell.updatedAt.epochMillis > pending.base &&
      cell.manualGrade === grade.manualGrade
    ) {
      this.pending.delete(ticket.cellId)
    } else {
      this.pending.set(ticket.cellId, { ...pending, value: grade.manualGrade, confirmed: true })
    }
    this.refresh(ticket.cellId)
  }

  /** The server refused the grade: back to what it last said (unless a later grade was sent meanwhile). */
  rollbackGrade(ticket: GradeTicket) {
    if (this.pending.get(ticket.cellId)?.seq !== ticket.seq) return
    this.pending.delete(ticket.cellId)
    this.refresh(ticket.cellId)
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Changes on every change, for useSyncExternalStore. */
  getRevision = () => this.revision

  private place(cell: Cell) {
    let column = this.grid.get(cell.runModelId)
    if (column === undefined) {
      column = []
      this.grid.set(cell.runModelId, column)
    }
    column[cell.rowIndex] = cell.id
    if (cell.rowIndex + 1 > this.rows) this.rows = cell.rowIndex + 1
  }

  private count(before: Cell | undefined, after: Cell) {
    let counts = this.countsByModel.get(after.runModelId)
    if (counts === undefined) {
      counts = emptyCounts()
      this.countsByModel.set(after.runModelId, counts)
    }
    if (before === undefined) counts.total++
    else {
      counts[before.status]--
      if (STATUS_RANK[before.status] < 2) this.active--
    }
    counts[after.status]++
    if (STATUS_RANK[after.status] < 2) this.active++
  }

  private refresh(cellId: RunCellId) {
    const cell = this.cells.get(cellId)
    if (cell === undefined) return
    this.views.set(cellId, viewOf(cell, this.pending.get(cellId)))
    this.emit()
  }

  private emit() {
    this.revision++
    this.listeners.forEach((listener) => listener())
  }
}
