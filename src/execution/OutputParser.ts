import { Either, Option, Schema } from "effect"

/**
 * Reading model outputs and grader replies.
 *
 * Outputs (`parseOutput`), first match wins:
 * 1. `response_tag`: the content of the first `<response>...</response>` (tag names in any case), trimmed.
 * 2. `json`: the whole output, trimmed, is a JSON object or array, or is exactly one fenced code block
 *    (```` ```json ```` or ```` ``` ````) holding one. Bare numbers, strings, booleans and null are not JSON
 *    outputs ("42" is text), and prose around a fence makes the output text: the prose is part of the answer.
 * 3. `text`: the raw output, untouched.
 *
 * Grader replies (`parseGrade`), first match wins:
 * 1. A `<grade>...</grade>` tag anywhere in the reply, with an optional `<reason>...</reason>`. Several grade tags
 *    must agree.
 * 2. A JSON object `{"grade": ..., "reason": "..."}`: the whole reply, or the one fenced JSON block in it (prose
 *    around the fence is the grader's reasoning and is ignored).
 * A grade is `pass` or `fail` (any case), `true` or `false`, or a score; nothing else (`yes`, `ok`, `8/10`) is read.
 * A score from 0 to 1 is compared with the pass threshold as it is; a score above 1 and up to 10 is on a ten-point
 * scale and divided by 10 first; a negative score or one above 10 is unreadable. `score` in the result is the
 * score on 0..1, null for a pass/fail verdict.
 */

export type ParsedOutput =
  | { readonly kind: "response_tag"; readonly value: string }
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "text"; readonly value: string }

export interface Grade {
  readonly grade: "pass" | "fail"
  readonly score: number | null
  readonly reason: string | null
}

export interface GradeOptions {
  /** The lowest passing score on 0..1 (default 0.5); values outside 0..1 are clamped, NaN is the default. */
  readonly passThreshold?: number
  /** "auto" (default) reads 0..1 as is and (1, 10] as a ten-point scale; 1 or 10 fixes the scale. */
  readonly scale?: "auto" | 1 | 10
}

export class GradeParseError extends Schema.TaggedError<GradeParseError>()("GradeParseError", {
  code: Schema.Literal("unreadable_grade"),
  message: Schema.String,
  details: Schema.Struct({ reply: Schema.String })
}) {}

const RESPONSE_TAG = /<response\s*>([\s\S]*?)<\/response\s*>/i
const GRADE_TAG = /<grade\s*>([\s\S]*?)<\/grade\s*>/gi
const REASON_TAG = /<reason\s*>([\s\S]*?)<\/reason\s*>/i
const FENCE = /```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n([\s\S]*?)```/g
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/

const EXPECTED =
  'expected <grade>pass|fail|true|false|score</grade> or a JSON object {"grade": "pass"|"fail"|true|false|score, "reason": "..."}'

const parseJson = (text: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(text))
  } catch {
    return Option.none()
  }
}

const isStructured = (value: unknown): value is object => typeof value === "object" && value !== null

/** Fenced blocks marked json or unmarked, whose content parses as a JSON object or array. */
const jsonFences = (text: string) =>
  Array.from(text.matchAll(FENCE)).flatMap((match) => {
    const language = match[1]!.toLowerCase()
    if (language !== "" && language !== "json") return []
    const value = parseJson(match[2]!.trim())
    return Option.isSome(value) && isStructured(value.value)
      ? [{ value: value.value, start: match.index, end: match.index + match[0].length }]
      : []
  })

/** The structured content of a model's output. */
export const parseOutput = (raw: string): ParsedOutput => {
  const tag = RESPONSE_TAG.exec(raw)
  if (tag) return { kind: "response_tag", value: tag[1]!.trim() }
  const trimmed = raw.trim()
  const whole = parseJson(trimmed)
  if (Option.isSome(whole) && isStructured(whole.value)) return { kind: "json", value: whole.value }
  const fences = jsonFences(trimmed)
  const only = fences[0]
  if (fences.length === 1 && only && only.start === 0 && only.end === trimmed.length) {
    return { kind: "json", value: only.value }
  }
  return { kind: "text", value: raw }
}

const unreadable = (reply: string, message: string) =>
  Either.left(
    new GradeParseError({
      code: "unreadable_grade",
      message,
      details: { reply: reply.length > 500 ? `${reply.slice(0, 500)}…` : reply }
    })
  )

type Verdict = { readonly pass: boolean } | { readonly score: number }

const readVerdict = (value: unknown, scale: GradeOptions["scale"]): Either.Either<Verdict, string> => {
  if (typeof value === "boolean") return Either.right({ pass: value })
  if (typeof value === "number") return readScore(value, scale)
  if (typeof value !== "string") return Either.left(`the grade is ${JSON.stringify(value) ?? typeof value}`)
  const token = value.trim().toLowerCase()
  if (token === "pass" || token === "true") return Either.right({ pass: true })
  if (token === "fail" || token === "false") return Either.right({ pass: false })
  if (NUMBER.test(token)) return readScore(Number(token), scale)
  return Either.left(`the grade is ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`)
}

const readScore = (score: number, scale: GradeOptions["scale"]): Either.Either<Verdict, string> => {
  const max = scale === 1 ? 1 : 10
  if (!Number.isFinite(score) || score < 0 || score > max) {
    return Either.left(`the score ${score} is outside 0..${max}`)
  }
  return Either.right({ score: scale === 10 || score > 1 ? score / 10 : score })
}

const readReason = (value: unknown): Either.Either<string | null, string> => {
  if (value === undefined || value === null) return Either.right(null)
  if (typeof value !== "string") return Either.left(`the reason is not a string`)
  const reason = value.trim()
  return Either.right(reason === "" ? null : reason)
}

const tagGrade = (reply: string, tags: ReadonlyArray<string>, scale: GradeOptions["scale"]) => {
  const distinct = new Set(tags.map((tag) => tag.trim().toLowerCase()))
  if (distinct.size > 1) {
    return Either.left(`the reply has ${tags.length} <grade> tags that disagree`)
  }
  const reason = REASON_TAG.exec(reply)
  return Either.all({
    verdict: readVerdict(tags[0]!, scale),
    reason: readReason(reason?.[1])
  })
}

const jsonGrade = (value: unknown, scale: GradeOptions["scale"]) => {
  if (!isStructured(value) || Array.isArray(value) || !("grade" in value)) {
    return Either.left(`the JSON is not an object with a "grade" field`)
  }
  const fields = value as { readonly grade: unknown; readonly reason?: unknown }
  return Either.all({ verdict: readVerdict(fields.grade, scale), reason: readReason(fields.reason) })
}

const replyJson = (reply: string): Either.Either<unknown, string> => {
  const whole = parseJson(reply.trim())
  if (Option.isSome(whole)) return Either.right(whole.value)
  const fences = jsonFences(reply)
  if (fences.length === 1) return Either.right(fences[0]!.value)
  if (fences.length > 1) return Either.left(`the reply has ${fences.length} JSON blocks`)
  return Either.left("the reply has no <grade> tag and no JSON")
}

/** The grader's verdict; an unreadable reply is a `GradeParseError`, never a guess and never a throw. */
export const parseGrade = (
  reply: string,
  options: GradeOptions = {}
): Either.Either<Grade, GradeParseError> => {
  const scale = options.scale ?? "auto"
  const wanted = options.passThreshold ?? 0.5
  const threshold = Number.isNaN(wanted) ? 0.5 : Math.min(1, Math.max(0, wanted))
  const tags = Array.from(reply.matchAll(GRADE_TAG), (match) => match[1]!)
  const read =
    tags.length > 0
      ? tagGrade(reply, tags, scale)
      : Either.flatMap(replyJson(reply), (json) => jsonGrade(json, scale))
  if (Either.isLeft(read)) return unreadable(reply, `Unreadable grade: ${read.left}; ${EXPECTED}`)
  const { reason, verdict } = read.right
  return Either.right(
    "pass" in verdict
      ? { grade: verdict.pass ? "pass" : "fail", score: null, reason }
      : { grade: verdict.score >= threshold ? "pass" : "fail", score: verdict.score, reason }
  )
}
