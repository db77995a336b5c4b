import { Either, Schema } from "effect"

/**
 * Prompt templates: text with `{{ name }}` placeholders, filled from a dataset row (and, for graders, the output).
 *
 * - A placeholder is `{{`, optional whitespace, a name, optional whitespace, `}}`. A name starts with a letter or
 *   `_` and continues with letters, digits, `_`, `.` or `-` (`[A-Za-z_][A-Za-z0-9_.-]*`); names are case-sensitive.
 *   `{{name}}`, `{{ name }}` and `{{ user.first-name }}` are placeholders.
 * - Every `{{` must start a valid placeholder: an empty one (`{{ }}`), a bad name (`{{ 1st }}`, `{{ a b }}`) or a
 *   `{{` with no closing `}}` is an error reported with its line and column, never silently kept as text.
 * - Literal braces: a backslash right before `{{` escapes it, so `\{{` is a literal `{{` and starts no placeholder
 *   (`\{{name}}` renders as `{{name}}`). In a run of backslashes right before `{{`, each pair `\\` is one literal
 *   backslash and an odd one left over escapes the `{{`: `\\{{name}}` is a literal `\` followed by the placeholder.
 *   Backslashes anywhere else, single braces and a lone `}}` are ordinary text.
 * - Rendering inserts string values as they are and any other JSON value as `JSON.stringify` would write it. A
 *   variable that is absent, `undefined`, or has no JSON form (a function, a symbol, a cycle) is missing, and a
 *   missing variable is an error naming every missing one, never an empty string.
 * - Positions: `line` and `column` count from 1; columns and `offset` (from 0) count UTF-16 code units, as editors do.
 */

/** Variables every grader prompt may use besides the dataset's columns; they are ordinary placeholders. */
export const GRADER_VARIABLES = ["output", "raw_output", "input"] as const

export type TemplatePart =
  | { readonly _tag: "Text"; readonly text: string; readonly start: number; readonly end: number }
  | { readonly _tag: "Placeholder"; readonly name: string; readonly start: number; readonly end: number }

export const TemplateIssue = Schema.Struct({
  part: Schema.optional(Schema.Literal("system", "template")),
  line: Schema.Int,
  column: Schema.Int,
  offset: Schema.Int,
  message: Schema.String
})
export type TemplateIssue = typeof TemplateIssue.Type

/** `code` and `message` follow the domain's error envelope, so handlers can pass them on unchanged. */
export class TemplateError extends Schema.TaggedError<TemplateError>()("TemplateError", {
  code: Schema.Literal("invalid_template", "missing_variables"),
  message: Schema.String,
  details: Schema.Struct({
    issues: Schema.Array(TemplateIssue),
    missing: Schema.Array(Schema.String)
  })
}) {}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/
const NAME_RULE =
  "a name starts with a letter or _ and continues with letters, digits, _, . or -; write \\{{ for a literal {{"

const excerpt = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)

/** Maps offsets to line and column; built once per text that has issues, searched by bisection. */
const locator = (text: string) => {
  const lineStarts = [0]
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lineStarts.push(i + 1)
  return (offset: number) => {
    let low = 0
    let high = lineStarts.length - 1
    while (low < high) {
      const mid = (low + high + 1) >> 1
      if (lineStarts[mid]! <= offset) low = mid
      else high = mid - 1
    }
    return { line: low + 1, column: offset - lineStarts[low]! + 1, offset }
  }
}

/** One pass over the text: every valid part, and every issue (the pass goes on after an issue to report them all). */
const scan = (text: string) => {
  const parts: Array<TemplatePart> = []
  const issues: Array<TemplateIssue> = []
  let pending = ""
  let pendingStart = 0
  const addText = (chunk: string, at: number) => {
    if (chunk === "") return
    if (pending === "") pendingStart = at
    pending += chunk
  }
  const flush = (end: number) => {
    if (pending !== "") parts.push({ _tag: "Text", text: pending, start: pendingStart, end })
    pending = ""
  }
  let locate: ReturnType<typeof locator> | undefined
  const issue = (offset: number, message: string) => {
    locate ??= locator(text)
    issues.push({ ...locate(offset), message })
  }
  // the next "}}" and "{{" after the current placeholder's opening, cached so that scanning stays linear
  let close = 0
  let nextOpen = 0

  let i = 0
  while (i < text.length) {
    const open = text.indexOf("{{", i)
    if (open === -1) {
      addText(text.slice(i), i)
      break
    }
    let backslashes = 0
    while (open - backslashes - 1 >= i && text[open - backslashes - 1] === "\\") backslashes++
    addText(text.slice(i, open - backslashes) + "\\".repeat(Math.floor(backslashes / 2)), i)
    if (backslashes % 2 === 1) {
      addText("{{", open - 1)
      i = open + 2
      continue
    }
    flush(open)
    if (close !== -1 && close < open + 2) close = text.indexOf("}}", open + 2)
    if (nextOpen !== -1 && nextOpen < open + 2) nextOpen = text.indexOf("{{", open + 2)
    if (close === -1 || (nextOpen !== -1 && nextOpen < close)) {
      issue(open, "unclosed placeholder: this {{ has no matching }}")
      i = open + 2
      continue
    }
    const name = text.slice(open + 2, close).trim()
    if (name === "") issue(open, `empty placeholder: ${NAME_RULE}`)
    else if (!NAME.test(name)) issue(open, `invalid placeholder name ${excerpt(name)}: ${NAME_RULE}`)
    else parts.push({ _tag: "Placeholder", name, start: open, end: close + 2 })
    i = close + 2
  }
  flush(text.length)
  return { parts, issues }
}

/** The template's parts in order, or every issue that makes it invalid. */
export const parseTemplate = (
  text: string
): Either.Either<ReadonlyArray<TemplatePart>, ReadonlyArray<TemplateIssue>> => {
  const { issues, parts } = scan(text)
  return issues.length > 0 ? Either.left(issues) : Either.right(parts)
}

const uniqueNames = (parts: ReadonlyArray<TemplatePart>) => {
  const names = new Set<string>()
  for (const part of parts) if (part._tag === "Placeholder") names.add(part.name)
  return Array.from(names)
}

/** Names of the well-formed placeholders, unique, in first-seen order; `parseTemplate` reports the malformed ones. */
export const placeholders = (text: string): ReadonlyArray<string> => uniqueNames(scan(text).parts)

const valueText = (value: unknown): string | undefined => {
  switch (typeof value) {
    case "string":
      return value
    case "bigint":
      return value.toString()
    case "undefined":
    case "function":
    case "symbol":
      return undefined
  }
  try {
    return JSON.stringify(value)
  } catch {
    return undefined
  }
}

const fill = (parts: ReadonlyArray<TemplatePart>, variables: Record<string, unknown>) => {
  const values = new Map<string, string>()
  const missing: Array<string> = []
  for (const name of uniqueNames(parts)) {
    const value = Object.hasOwn(variables, name) ? valueText(variables[name]) : undefined
    if (value === undefined) missing.push(name)
    else values.set(name, value)
  }
  const output = parts
    .map((part) => (part._tag === "Text" ? part.text : (values.get(part.name) ?? "")))
    .join("")
  return { output, missing }
}

// the message stays readable; `details.issues` keeps them all
const MESSAGE_ISSUES = 5
const PART_LABEL = { system: "system prompt ", template: "template " } as const

const templateError = (issues: ReadonlyArray<TemplateIssue>, missing: ReadonlyArray<string>) =>
  issues.length > 0
    ? new TemplateError({
        code: "invalid_template",
        message: `Invalid template: ${issues
          .slice(0, MESSAGE_ISSUES)
          .map((i) => `${i.part ? PART_LABEL[i.part] : ""}line ${i.line}, column ${i.column}: ${i.message}`)
          .join(
            "; "
          )}${issues.length > MESSAGE_ISSUES ? ` (and ${issues.length - MESSAGE_ISSUES} more)` : ""}`,
        details: { issues, missing }
      })
    : new TemplateError({
        code: "missing_variables",
        message: `Missing variables: ${missing.join(", ")}`,
        details: { issues, missing }
      })

/** Fills every placeholder; fails with every issue or every missing variable, never a partial text. */
export const render = (
  text: string,
  variables: Record<string, unknown>
): Either.Either<string, TemplateError> => {
  const { issues, parts } = scan(text)
  const { missing, output } = fill(parts, variables)
  return issues.length > 0 || missing.length > 0
    ? Either.left(templateError(issues, missing))
    : Either.right(output)
}

export interface PromptText {
  readonly system: string
  readonly template: string
}

/** Renders the system text and the user template with the same variables; the errors of both are merged. */
export const renderPrompt = (
  prompt: PromptText,
  variables: Record<string, unknown>
): Either.Either<PromptText, TemplateError> => {
  const system = scan(prompt.system)
  const template = scan(prompt.template)
  const filledSystem = fill(system.parts, variables)
  const filledTemplate = fill(template.parts, variables)
  const issues = [
    ...system.issues.map((issue) => ({ ...issue, part: "system" as const })),
    ...template.issues.map((issue) => ({ ...issue, part: "template" as const }))
  ]
  const missing = Array.from(new Set([...filledSystem.missing, ...filledTemplate.missing]))
  return issues.length > 0 || missing.length > 0
    ? Either.left(templateError(issues, missing))
    : Either.right({ system: filledSystem.output, template: filledTemplate.output })
}
