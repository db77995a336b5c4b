import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { GradeParseError, type GradeOptions, parseGrade, parseOutput } from "../src/execution/OutputParser.ts"

const grade = (reply: string, options?: GradeOptions) => Either.getOrThrow(parseGrade(reply, options))

const gradeError = (reply: string, options?: GradeOptions) => {
  const result = parseGrade(reply, options)
  if (Either.isRight(result))
    throw new Error(`expected a GradeParseError, got ${JSON.stringify(result.right)}`)
  return result.left
}

describe("parseOutput", () => {
  it("takes the trimmed content of the first response tag, in any case", () => {
    expect(
      parseOutput("Thinking...\n<response>\n  Paris \n</response> and <response>Lyon</response>")
    ).toEqual({
      kind: "response_tag",
      value: "Paris"
    })
    expect(parseOutput("<RESPONSE>yes</Response>")).toEqual({ kind: "response_tag", value: "yes" })
    expect(parseOutput("<response></response>")).toEqual({ kind: "response_tag", value: "" })
  })

  it("keeps the tag's content as text even when it is JSON", () => {
    expect(parseOutput('<response>{"a": 1}</response>')).toEqual({ kind: "response_tag", value: '{"a": 1}' })
  })

  it("prefers the response tag to JSON around it", () => {
    expect(parseOutput('{"note": "<response>x</response>"}')).toEqual({ kind: "response_tag", value: "x" })
  })

  it("ignores an unclosed response tag", () => {
    expect(parseOutput("<response>never closed")).toEqual({ kind: "text", value: "<response>never closed" })
  })

  it("reads a whole output that is a JSON object or array", () => {
    expect(parseOutput('  {"answer": 42, "items": [1, 2]}\n')).toEqual({
      kind: "json",
      value: { answer: 42, items: [1, 2] }
    })
    expect(parseOutput('[1, {"b": null}]')).toEqual({ kind: "json", value: [1, { b: null }] })
  })

  it("reads one fenced block, marked json or not, that is the whole output", () => {
    expect(parseOutput('```json\n{"a": 1}\n```')).toEqual({ kind: "json", value: { a: 1 } })
    expect(parseOutput("\n```JSON \r\n[true]\r\n```\n")).toEqual({ kind: "json", value: [true] })
    expect(parseOutput('```\n{"a": [1,\n 2]}\n```')).toEqual({ kind: "json", value: { a: [1, 2] } })
  })

  it("keeps bare JSON scalars as text", () => {
    for (const raw of ["42", '"hello"', "true", "null", "```json\n42\n```"]) {
      expect(parseOutput(raw)).toEqual({ kind: "text", value: raw })
    }
  })

  it("keeps as text a fence with prose around it, another language, or broken JSON", () => {
    const cases = [
      'Here it is:\n```json\n{"a": 1}\n```',
      '```python\n{"a": 1}\n```',
      '```json\n{"a": 1,}\n```',
      '```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```',
      '{"a": 1} trailing words',
      "just words"
    ]
    for (const raw of cases) expect(parseOutput(raw)).toEqual({ kind: "text", value: raw })
  })

  it("returns the raw text untrimmed", () => {
    expect(parseOutput("  spaced out \n")).toEqual({ kind: "text", value: "  spaced out \n" })
  })
})

describe("parseGrade with tags", () => {
  it("reads pass and fail in any case, with a reason", () => {
    expect(grade("<grade>pass</grade><reason> Correct answer. </reason>")).toEqual({
      grade: "pass",
      score: null,
      reason: "Correct answer."
    })
    expect(grade("Reasoning first.\n<GRADE> FAIL </GRADE>")).toEqual({
      grade: "fail",
      score: null,
      reason: null
    })
    expect(grade("<grade>Pass</grade>").grade).toBe("pass")
    expect(grade("<reason>wrong unit</reason>\n<grade>false</grade>")).toEqual({
      grade: "fail",
      score: null,
      reason: "wrong unit"
    })
    expect(grade("<grade>true</grade>").grade).toBe("pass")
  })

  it("compares a score from 0 to 1 with the threshold", () => {
    expect(grade("<grade>0.8</grade>")).toEqual({ grade: "pass", score: 0.8, reason: null })
    expect(grade("<grade>0.5</grade>").grade).toBe("pass")
    expect(grade("<grade>0.49</grade>")).toEqual({ grade: "fail", score: 0.49, reason: null })
    expect(grade("<grade>0.8</grade>", { passThreshold: 0.9 }).grade).toBe("fail")
    expect(grade("<grade>.95</grade>", { passThreshold: 0.9 })).toMatchObject({ grade: "pass", score: 0.95 })
    expect(grade("<grade>1</grade>")).toMatchObject({ grade: "pass", score: 1 })
    expect(grade("<grade>0</grade>")).toMatchObject({ grade: "fail", score: 0 })
  })

  it("divides a score above 1 and up to 10 by 10", () => {
    expect(grade("<grade>7</grade>")).toEqual({ grade: "pass", score: 0.7, reason: null })
    expect(grade("<grade>4</grade>")).toMatchObject({ grade: "fail", score: 0.4 })
    expect(grade("<grade>10</grade>")).toMatchObject({ grade: "pass", score: 1 })
    expect(grade("<grade>7</grade>", { passThreshold: 0.75 }).grade).toBe("fail")
  })

  it("lets the caller fix the scale", () => {
    expect(grade("<grade>1</grade>", { scale: 10 })).toMatchObject({ grade: "fail", score: 0.1 })
    expect(grade("<grade>0.9</grade>", { scale: 10 })).toMatchObject({ grade: "fail", score: 0.09 })
    expect(gradeError("<grade>7</grade>", { scale: 1 }).message).toContain("outside 0..1")
  })

  it("clamps the threshold into 0..1", () => {
    expect(grade("<grade>1</grade>", { passThreshold: 5 }).grade).toBe("pass")
    expect(grade("<grade>0</grade>", { passThreshold: -1 }).grade).toBe("pass")
    expect(grade("<grade>0.4</grade>", { passThreshold: Number.NaN }).grade).toBe("fail")
  })

  it("accepts several tags when they agree", () => {
    expect(grade("<grade>pass</grade> so, final: <grade>PASS</grade>").grade).toBe("pass")
  })

  it("rejects scores out of range, other words and disagreeing tags", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["<grade>-0.1</grade>", "outside 0..10"],
      ["<grade>11</grade>", "outside 0..10"],
      ["<grade>yes</grade>", 'the grade is "yes"'],
      ["<grade>no</grade>", 'the grade is "no"'],
      ["<grade>8/10</grade>", 'the grade is "8/10"'],
      ["<grade>80%</grade>", 'the grade is "80%"'],
      ["<grade></grade>", 'the grade is ""'],
      ["<grade>pass</grade><grade>fail</grade>", "2 <grade> tags that disagree"]
    ]
    for (const [reply, detail] of cases) {
      const error = gradeError(reply)
      expect(error).toBeInstanceOf(GradeParseError)
      expect(error.code).toBe("unreadable_grade")
      expect(error.message).toContain(detail)
      expect(error.message).toContain("expected <grade>pass|fail|true|false|score</grade>")
      expect(error.details.reply).toBe(reply)
    }
  })
})

describe("parseGrade with JSON", () => {
  it("reads a bare JSON object", () => {
    expect(grade('{"grade": "pass", "reason": "matches"}')).toEqual({
      grade: "pass",
      score: null,
      reason: "matches"
    })
    expect(grade('{"grade": false}')).toEqual({ grade: "fail", score: null, reason: null })
    expect(grade('{"grade": true, "reason": null}')).toEqual({ grade: "pass", score: null, reason: null })
    expect(grade('{"grade": "FAIL", "reason": "  "}')).toEqual({ grade: "fail", score: null, reason: null })
  })

  it("reads numeric grades, as numbers or strings, on both scales", () => {
    expect(grade('{"grade": 0.3}')).toEqual({ grade: "fail", score: 0.3, reason: null })
    expect(grade('{"grade": 9, "reason": "good"}')).toEqual({ grade: "pass", score: 0.9, reason: "good" })
    expect(grade('{"grade": "0.6"}')).toMatchObject({ grade: "pass", score: 0.6 })
  })

  it("reads the one fenced JSON block, ignoring the prose around it", () => {
    expect(grade('The answer is right.\n```json\n{"grade": "pass", "reason": "ok"}\n```\nDone.')).toEqual({
      grade: "pass",
      score: null,
      reason: "ok"
    })
    expect(grade('```\n{"grade": 2}\n```')).toMatchObject({ grade: "fail", score: 0.2 })
  })

  it("prefers a grade tag to JSON", () => {
    expect(grade('{"grade": "fail"}\n<grade>pass</grade>').grade).toBe("pass")
  })

  it("rejects JSON without a readable grade", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ['{"verdict": "pass"}', 'not an object with a "grade" field'],
      ['[{"grade": "pass"}]', 'not an object with a "grade" field'],
      ["true", 'not an object with a "grade" field'],
      ['{"grade": "yes"}', 'the grade is "yes"'],
      ['{"grade": null}', "the grade is null"],
      ['{"grade": 42}', "outside 0..10"],
      ['{"grade": -1}', "outside 0..10"],
      ['{"grade": "pass", "reason": 3}', "the reason is not a string"],
      ['```json\n{"grade": "pass"}\n```\n```json\n{"grade": "fail"}\n```', "2 JSON blocks"],
      ["I think it passes.", "no <grade> tag and no JSON"],
      ["", "no <grade> tag and no JSON"],
      ['{"grade": "pass"', "no <grade> tag and no JSON"]
    ]
    for (const [reply, detail] of cases) {
      const error = gradeError(reply)
      expect(error.code).toBe("unreadable_grade")
      expect(error.message).toContain(detail)
    }
  })

  it("keeps a long reply short in the error details", () => {
    const error = gradeError("x".repeat(2_000))
    expect(error.details.reply).toHaveLength(501)
  })
})
