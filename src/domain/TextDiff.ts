/**
 * Line diff of two texts (two prompt versions' system text or template), by Myers' O(ND) algorithm in its
 * linear-space form (middle snake, divide and conquer), so disjoint texts of thousands of lines stay fast.
 *
 * - Texts are split on "\n"; a "\r" stays part of its line, and a trailing "\n" yields a last empty line, so a
 *   change of line endings or of the final newline shows in the diff. The empty text has no lines.
 * - One entry per line, never merged: entries map one to one onto the lines shown with line numbers.
 * - Within a change (the lines between two equal ones), every deleted line comes before every inserted one.
 */

export type DiffOp = "equal" | "insert" | "delete"

export interface DiffLine {
  readonly op: DiffOp
  readonly text: string
}

export interface DiffStats {
  readonly added: number
  readonly removed: number
  readonly unchanged: number
}

const splitLines = (text: string): ReadonlyArray<string> => (text === "" ? [] : text.split("\n"))

/** Lines become small integers, cheaper to compare than strings in the inner loop. */
const intern = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
  const ids = new Map<string, number>()
  const idOf = (line: string) => {
    let id = ids.get(line)
    if (id === undefined) {
      id = ids.size
      ids.set(line, id)
    }
    return id
  }
  return { a: Int32Array.from(a, idOf), b: Int32Array.from(b, idOf), count: ids.size }
}

/** Indices of the lines of `lines` that also occur in `other`: no other line can ever be kept. */
const sharedIndices = (lines: Int32Array, other: Int32Array, count: number) => {
  const present = new Uint8Array(count)
  for (const id of other) present[id] = 1
  const kept: Array<number> = []
  lines.forEach((id, index) => {
    if (present[id] === 1) kept.push(index)
  })
  return kept
}

type OnMatch = (aIndex: number, bIndex: number) => void

/** Reports the pairs of equal lines of a longest common subsequence of a[aLo, aHi) and b[bLo, bHi), in order. */
const matchRange = (
  a: Int32Array,
  b: Int32Array,
  aLo: number,
  aHi: number,
  bLo: number,
  bHi: number,
  onMatch: OnMatch
) => {
  while (aLo < aHi && bLo < bHi && a[aLo] === b[bLo]) onMatch(aLo++, bLo++)
  let suffix = 0
  while (aLo < aHi && bLo < bHi && a[aHi - 1] === b[bHi - 1]) {
    aHi--
    bHi--
    suffix++
  }
  if (aLo < aHi && bLo < bHi) {
    const split = middleSnake(a, b, aLo, aHi, bLo, bHi)
    if (split !== undefined) {
      matchRange(a, b, aLo, split.x, bLo, split.y, onMatch)
      matchRange(a, b, split.x, aHi, split.y, bHi, onMatch)
    }
  }
  for (let k = 0; k < suffix; k++) onMatch(aHi + k, bHi + k)
}

/**
 * Finds a point on an optimal edit path by running the search forwards from the start and backwards from the
 * end until they meet; undefined when the ranges share nothing.
 */
const middleSnake = (a: Int32Array, b: Int32Array, aLo: number, aHi: number, bLo: number, bHi: number) => {
  const n = aHi - aLo
  const m = bHi - bLo
  const maxD = Math.ceil((n + m) / 2)
  const offset = maxD
  const size = 2 * maxD + 2
  const forward = new Int32Array(size).fill(-1)
  const backward = new Int32Array(size).fill(-1)
  forward[offset + 1] = 0
  backward[offset + 1] = 0
  const delta = n - m
  // when n + m is odd the paths meet while extending forwards, otherwise while extending backwards
  const checkForward = delta % 2 !== 0
  let kForwardStart = 0
  let kForwardEnd = 0
  let kBackwardStart = 0
  let kBackwardEnd = 0
  for (let d = 0; d < maxD; d++) {
    for (let k = -d + kForwardStart; k <= d - kForwardEnd; k += 2) {
      const kOffset = offset + k
      let x =
        k === -d || (k !== d && forward[kOffset - 1]! < forward[kOffset + 1]!)
          ? forward[kOffset + 1]!
          : forward[kOffset - 1]! + 1
      let y = x - k
      while (x < n && y < m && a[aLo + x] === b[bLo + y]) {
        x++
        y++
      }
      forward[kOffset] = x
      if (x > n) kForwardEnd += 2
      else if (y > m) kForwardStart += 2
      else if (checkForward) {
        const backOffset = offset + delta - k
        if (
          backOffset >= 0 &&
          backOffset < size &&
          backward[backOffset] !== -1 &&
          x >= n - backward[backOffset]!
        ) {
          return { x: aLo + x, y: bLo + y }
        }
      }
    }
    for (let k = -d + kBackwardStart; k <= d - kBackwardEnd; k += 2) {
      const kOffset = offset + k
      let x =
        k === -d || (k !== d && backward[kOffset - 1]! < backward[kOffset + 1]!)
          ? backward[kOffset + 1]!
          : backward[kOffset - 1]! + 1
      let y = x - k
      while (x < n && y < m && a[aHi - x - 1] === b[bHi - y - 1]) {
        x++
        y++
      }
      backward[kOffset] = x
      if (x > n) kBackwardEnd += 2
      else if (y > m) kBackwardStart += 2
      else if (!checkForward) {
        const forwardOffset = offset + delta - k
        if (forwardOffset >= 0 && forwardOffset < size && forward[forwardOffset] !== -1) {
          const forwardX = forward[forwardOffset]!
          if (forwardX >= n - x) return { x: aLo + forwardX, y: bLo + forwardX - (forwardOffset - offset) }
        }
      }
    }
  }
  return undefined
}

/** The line diff from `a` to `b`: one entry per line, deletions before insertions within each change. */
export const diffLines = (a: string, b: string): ReadonlyArray<DiffLine> => {
  const linesA = splitLines(a)
  const linesB = splitLines(b)
  const ids = intern(linesA, linesB)
  // lines found in one text only are changes whatever the alignment: diffing without them is the same diff, faster
  const keptA = sharedIndices(ids.a, ids.b, ids.count)
  const keptB = sharedIndices(ids.b, ids.a, ids.count)
  const sharedA = Int32Array.from(keptA, (index) => ids.a[index]!)
  const sharedB = Int32Array.from(keptB, (index) => ids.b[index]!)
  const result: Array<DiffLine> = []
  let i = 0
  let j = 0
  const changeUntil = (aEnd: number, bEnd: number) => {
    for (; i < aEnd; i++) result.push({ op: "delete", text: linesA[i]! })
    for (; j < bEnd; j++) result.push({ op: "insert", text: linesB[j]! })
  }
  matchRange(sharedA, sharedB, 0, sharedA.length, 0, sharedB.length, (matchA, matchB) => {
    changeUntil(keptA[matchA]!, keptB[matchB]!)
    result.push({ op: "equal", text: linesA[i]! })
    i++
    j++
  })
  changeUntil(linesA.length, linesB.length)
  return result
}

/** Lines added, removed and kept by a diff. */
export const diffStats = (diff: ReadonlyArray<DiffLine>): DiffStats => {
  let added = 0
  let removed = 0
  let unchanged = 0
  for (const line of diff) {
    if (line.op === "insert") added++
    else if (line.op === "delete") removed++
    else unchanged++
  }
  return { added, removed, unchanged }
}
