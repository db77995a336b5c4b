import { describe, expect, it } from "vitest"
import { blockersOf, coverageOf } from "../../frontend/src/workspace/coverage.ts"

const prompt = { name: "Summarise", placeholders: ["topic", "text"] }
const dataset = { headers: ["id", "text", "topic"], rowCount: 3 }

describe("placeholder coverage", () => {
  it("marks each placeholder covered by a column or missing", () => {
    expect(coverageOf(["topic", "text", "lang"], ["text", "topic"], "generator")).toEqual([
      { name: "topic", source: "column" },
      { name: "text", source: "column" },
      { name: "lang", source: null }
    ])
  })

  it("lets a grader use the grader variables, and only a grader", () => {
    expect(
      coverageOf(["output", "raw_output", "input", "text"], ["text"], "grader").map((c) => c.source)
    ).toEqual(["grader variable", "grader variable", "grader variable", "column"])
    expect(coverageOf(["output"], ["text"], "generator")[0]!.source).toBeNull()
  })
})

describe("what blocks a run", () => {
  it("nothing when every placeholder is covered and 1–4 models are picked", () => {
    expect(blockersOf({ prompt, dataset, modelCount: 1, grader: null })).toEqual([])
    expect(
      blockersOf({ prompt, dataset, modelCount: 4, grader: { placeholders: ["output", "text"] } })
    ).toEqual([])
  })

  it("missing columns, with their names", () => {
    const blockers = blockersOf({
      prompt: { name: "x", placeholders: ["topic", "lang", "tone"] },
      dataset,
      modelCount: 2,
      grader: null
    })
    expect(blockers).toEqual([
      "The dataset has no column for lang, tone: pick another dataset or edit the prompt."
    ])
  })

  it("a grader placeholder that nothing provides", () => {
    expect(
      blockersOf({ prompt, dataset, modelCount: 1, grader: { placeholders: ["output", "rubric"] } })
    ).toEqual(["The grader uses rubric, which is neither a dataset column nor a grader variable."])
  })

  it("no dataset is fine for a prompt without placeholders, not for one with", () => {
    expect(
      blockersOf({ prompt: { name: "x", placeholders: [] }, dataset: null, modelCount: 1, grader: null })
    ).toEqual([])
    expect(blockersOf({ prompt, dataset: null, modelCount: 1, grader: null })).toEqual([
      "The prompt has placeholders (topic, text): pick a dataset with those columns."
    ])
  })

  it("missing picks, too many models and an empty dataset", () => {
    expect(blockersOf({ prompt: undefined, dataset: undefined, modelCount: 0, grader: null })).toEqual([
      "Pick a prompt.",
      "Pick a dataset.",
      "Pick at least one model."
    ])
    expect(blockersOf({ prompt, dataset: { ...dataset, rowCount: 0 }, modelCount: 5, grader: null })).toEqual(
      ["Pick at most 4 models (5 are picked).", "The dataset has no rows."]
    )
  })
})
