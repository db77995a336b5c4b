// Keyboard control of the run grid: which key does what, and where the focus goes. Pure, so it is tested alone.
import type { ManualGradeValue } from "../../../src/domain/Grade.ts"

export interface GridFocus {
  readonly row: number
  readonly col: number
  readonly drawerOpen: boolean
}

export type GridCommand =
  | { readonly type: "move"; readonly rows: number; readonly cols: number }
  | { readonly type: "moveTo"; readonly row: number; readonly col?: number }
  | { readonly type: "grade"; readonly value: ManualGradeValue }
  | { readonly type: "open" }
  | { readonly type: "close" }

export interface GridBounds {
  readonly rows: number
  readonly cols: number
  /** Rows a PageUp/PageDown moves. */
  readonly pageRows: number
}

export const initialFocus: GridFocus = { row: 0, col: 0, drawerOpen: false }

export interface KeyInput {
  readonly key: string
  readonly ctrlKey?: boolean
  readonly metaKey?: boolean
  readonly altKey?: boolean
  readonly target?: EventTarget | null
}

/** Where typing happens: keys there belong to the field, never to the grid. */
export const isTypingTarget = (target: EventTarget | null | undefined): boolean => {
  if (target === null || target === undefined || typeof (target as Element).tagName !== "string") return false
  const element = target as HTMLElement
  const tag = element.tagName.toLowerCase()
  return tag === "input" || tag === "textarea" || tag === "select" || element.isContentEditable === true
}

/** Buttons and links answer Enter and Space themselves. */
const isActivatable = (target: EventTarget | null | undefined): boolean => {
  if (target === null || target === undefined || typeof (target as Element).tagName !== "string") return false
  const tag = (target as Element).tagName.toLowerCase()
  return tag === "button" || tag === "a" || tag === "summary"
}

/** The grid command for a key press, or null when the key is not the grid's (or the user is typing). */
export const commandFor = (input: KeyInput, bounds: GridBounds): GridCommand | null => {
  if (input.ctrlKey || input.metaKey || input.altKey) return null
  if (isTypingTarget(input.target)) return null
  switch (input.key) {
    case "ArrowDown":
    case "j":
      return { type: "move", rows: 1, cols: 0 }
    case "ArrowUp":
    case "k":
      return { type: "move", rows: -1, cols: 0 }
    case "ArrowRight":
    case "l":
      return { type: "move", rows: 0, cols: 1 }
    case "ArrowLeft":
    case "h":
      return { type: "move", rows: 0, cols: -1 }
    case "PageDown":
      return { type: "move", rows: bounds.pageRows, cols: 0 }
    case "PageUp":
      return { type: "move", rows: -bounds.pageRows, cols: 0 }
    case "Home":
      return { type: "moveTo", row: 0 }
    case "End":
      return { type: "moveTo", row: bounds.rows - 1 }
    case "p":
      return { type: "grade", value: "pass" }
    case "f":
      return { type: "grade", value: "fail" }
    case "u":
      return { type: "grade", value: "unset" }
    case "Enter":
      return isActivatable(input.target) ? null : { type: "open" }
    case "Escape":
      return { type: "close" }
    default:
      return null
  }
}

const clamp = (value: number, max: number) => Math.max(0, Math.min(max, value))

/** The focus after a command; grading leaves it where it is. */
export const focusReducer = (focus: GridFocus, command: GridCommand, bounds: GridBounds): GridFocus => {
  const lastRow = Math.max(0, bounds.rows - 1)
  const lastCol = Math.max(0, bounds.cols - 1)
  switch (command.type) {
    case "move": {
      const row = clamp(focus.row + command.rows, lastRow)
      const col = clamp(focus.col + command.cols, lastCol)
      return row === focus.row && col === focus.col ? focus : { ...focus, row, col }
    }
    case "moveTo":
      return { ...focus, row: clamp(command.row, lastRow), col: clamp(command.col ?? focus.col, lastCol) }
    case "open":
      return bounds.rows === 0 || focus.drawerOpen ? focus : { ...focus, drawerOpen: true }
    case "close":
      return focus.drawerOpen ? { ...focus, drawerOpen: false } : focus
    case "grade":
      return focus
  }
}
