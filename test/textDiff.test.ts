import { describe, expect, it } from "vitest"
import { type DiffLine, diffLines, diffStats } from "../src/domain/TextDiff.ts"

/** The two texts a diff describes: equal and deleted lines give the old one, equal and inserted the new one. */
const sides = (diff: ReadonlyArray<DiffLine>) => ({
  a: diff.filter((line) => line.op !== "insert").map((line) => line.text),
  b: diff.filter((line) => line.op !== "delete").map((line) => line.text)
})

const lcsLength = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
  let previous = new Array<number>(b.length + 1).fill(0)
  for (const lineA of a) {
    const current = [0]
    for (let j = 0; j < b.length; j++) {
      current.push(lineA === b[j] ? previous[j]! + 1 : Math.max(previous[j + 1]!, current[j]!))
    }
    previous = current
  }
  return previous[b.length]!
}

/** A small deterministic generator, so a failing case can be replayed. */
const random = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

describe("diffLines", () => {
  it("marks every line of identical texts equal", () => {
    const diff = diffLines("a\nb\nc", "a\nb\nc")
    expect(diff).toEqual([
      { op: "equal", text: "a" },
      { op: "equal", text: "b" },
      { op: "equal", text: "c" }
    ])
    expect(diffStats(diff)).toEqual({ added: 0, removed: 0, unchanged: 3 })
  })

  it("has no lines for two empty texts", () => {
    expect(diffLines("", "")).toEqual([])
  })

  it("inserts every line into an empty text and deletes every line of an emptied one", () => {
    expect(diffLines("", "x\ny")).toEqual([
      { op: "insert", text: "x" },
      { op: "insert", text: "y" }
    ])
    expect(diffLines("x\ny", "")).toEqual([
      { op: "delete", text: "x" },
      { op: "delete", text: "y" }
    ])
  })

  it("deletes all then inserts all for disjoint texts", () => {
    expect(diffLines("a\nb", "c\nd\ne")).toEqual([
      { op: "delete", text: "a" },
      { op: "delete", text: "b" },
      { op: "insert", text: "c" },
      { op: "insert", text: "d" },
      { op: "insert", text: "e" }
    ])
  })

  it("keeps shared lines and puts deletions before insertions within a change", () => {
    const diff = diffLines(
      "You are helpful.\nAnswer briefly.\nUse English.",
      "You are helpful.\nAnswer in detail.\nUse English.\nCite sources."
    )
    expect(diff).toEqual([
      { op: "equal", text: "You are helpful." },
      { op: "delete", text: "Answer briefly." },
      { op: "insert", text: "Answer in detail." },
      { op: "equal", text: "Use English." },
      { op: "insert", text: "Cite sources." }
    ])
    expect(diffStats(diff)).toEqual({ added: 2, removed: 1, unchanged: 2 })
  })

  it("shows a change of the final newline and of line endings", () => {
    expect(diffLines("a", "a\n")).toEqual([
      { op: "equal", text: "a" },
      { op: "insert", text: "" }
    ])
    expect(diffLines("a\nb", "a\r\nb")).toEqual([
      { op: "delete", text: "a" },
      { op: "insert", text: "a\r" },
      { op: "equal", text: "b" }
    ])
  })

  it("handles repeated lines", () => {
    const diff = diffLines("x\nx\nx", "x\nx")
    expect(diffStats(diff)).toEqual({ added: 0, removed: 1, unchanged: 2 })
  })

  it("describes both texts with as many equal lines as their longest common subsequence", () => {
    const next = random(42)
    for (let round = 0; round < 300; round++) {
      const line = () => "abcde"[Math.floor(next() * 5)]!
      const a = Array.from({ length: Math.floor(next() * 30) }, line)
      const b = Array.from({ length: Math.floor(next() * 30) }, line)
      const diff = diffLines(a.join("\n"), b.join("\n"))
      const described = sides(diff)
      // "".split would give one empty line: the empty text has none
      expect(described.a).toEqual(a.length === 0 ? [] : a)
      expect(described.b).toEqual(b.length === 0 ? [] : b)
      expect(diffStats(diff).unchanged).toBe(lcsLength(a, b))
    }
  })

  it("diffs 3000-line texts quickly, disjoint or lightly edited", () => {
    const original = Array.from({ length: 3000 }, (_, i) => `line ${i}: ${"x".repeat(i % 40)}`)
    const disjoint = Array.from({ length: 3000 }, (_, i) => `other ${i}`)
    const edited = original.map((line, i) => (i % 97 === 0 ? `${line} (edited)` : line))
    edited.splice(1500, 0, "inserted")
    const next = random(7)
    const shuffled = original.map((line) => (next() < 0.5 ? line : `${line}!`))

    const started = performance.now()
    const toDisjoint = diffLines(original.join("\n"), disjoint.join("\n"))
    const toEdited = diffLines(original.join("\n"), edited.join("\n"))
    const toShuffled = diffLines(original.join("\n"), shuffled.join("\n"))
    const elapsed = performance.now() - started

    expect(diffStats(toDisjoint)).toEqual({ added: 3000, removed: 3000, unchanged: 0 })
    expect(diffStats(toEdited)).toEqual({ added: 32, removed: 31, unchanged: 2969 })
    expect(sides(toEdited)).toEqual({ a: original, b: edited })
    expect(sides(toShuffled)).toEqual({ a: original, b: shuffled })
    expect(diffStats(toShuffled).unchanged).toBe(shuffled.filter((line, i) => line === original[i]).length)
    expect(elapsed).toBeLessThan(2_000)
  })

  it("stays minimal and bounded on 3000 unrelated lines drawn from a few values", () => {
    const next = random(3)
    const values = ["", "}", "  return x", "{", "// note", "end"]
    const a = Array.from({ length: 3000 }, () => values[Math.floor(next() * values.length)]!)
    const b = Array.from({ length: 3000 }, () => values[Math.floor(next() * values.length)]!)
    const started = performance.now()
    const diff = diffLines(a.join("\n"), b.join("\n"))
    const elapsed = performance.now() - started
    expect(sides(diff)).toEqual({ a, b })
    expect(diffStats(diff).unchanged).toBe(lcsLength(a, b))
    expect(elapsed).toBeLessThan(3_000)
  })
})

describe("diffStats", () => {
  it("counts inserted, deleted and equal entries", () => {
    expect(
      diffStats([
        { op: "insert", text: "a" },
        { op: "insert", text: "b" },
        { op: "delete", text: "c" },
        { op: "equal", text: "d" }
      ])
    ).toEqual({ added: 2, removed: 1, unchanged: 1 })
    expect(diffStats([])).toEqual({ added: 0, removed: 0, unchanged: 0 })
  })
})
