import { Either } from "effect"
import { describe, expect, it } from "vitest"
import {
  GRADER_VARIABLES,
  parseTemplate,
  placeholders,
  render,
  renderPrompt,
  TemplateError
} from "../src/domain/Template.ts"

const rendered = (text: string, variables: Record<string, unknown>) =>
  Either.getOrThrow(render(text, variables))

const failure = (result: Either.Either<unknown, TemplateError>) => {
  if (Either.isRight(result)) throw new Error(`expected a TemplateError, got ${JSON.stringify(result.right)}`)
  return result.left
}

const issuesOf = (text: string) => {
  const parsed = parseTemplate(text)
  if (Either.isRight(parsed)) throw new Error(`expected issues for ${JSON.stringify(text)}`)
  return parsed.left
}

describe("placeholders", () => {
  it("reads names with or without whitespace inside the braces", () => {
    expect(placeholders("{{a}} {{ b }} {{\tc\t}} {{\n d \n}}")).toEqual(["a", "b", "c", "d"])
  })

  it("accepts dots, dashes, digits and underscores after the first character", () => {
    expect(placeholders("{{ user.first-name }} {{_x9}} {{row.col_2}}")).toEqual([
      "user.first-name",
      "_x9",
      "row.col_2"
    ])
  })

  it("lists each name once, in first-seen order, and keeps case", () => {
    expect(placeholders("{{b}} {{a}} {{ b }} {{A}} {{a}}")).toEqual(["b", "a", "A"])
  })

  it("finds none in plain text, single braces or a lone closing pair", () => {
    expect(placeholders("")).toEqual([])
    expect(placeholders('{"a": {"b": 1}} and }} and { x }')).toEqual([])
  })

  it("skips escaped openings and malformed placeholders", () => {
    expect(placeholders("\\{{a}} {{ 1x }} {{b}} {{")).toEqual(["b"])
  })

  it("treats grader variables as ordinary placeholders", () => {
    expect(GRADER_VARIABLES).toEqual(["output", "raw_output", "input"])
    expect(placeholders("{{input}} gave {{ output }} ({{raw_output}}) for {{expected}}")).toEqual([
      "input",
      "output",
      "raw_output",
      "expected"
    ])
  })
})

describe("parseTemplate", () => {
  it("splits text and placeholders with their source spans", () => {
    const parts = Either.getOrThrow(parseTemplate("Hi {{ name }}!"))
    expect(parts).toEqual([
      { _tag: "Text", text: "Hi ", start: 0, end: 3 },
      { _tag: "Placeholder", name: "name", start: 3, end: 13 },
      { _tag: "Text", text: "!", start: 13, end: 14 }
    ])
  })

  it("reports an invalid name with its line and column", () => {
    const issues = issuesOf("first line\n  {{ 1st }} ok")
    expect(issues).toHaveLength(1)
    expect(issues[0]).toMatchObject({ line: 2, column: 3, offset: 13 })
    expect(issues[0]!.message).toContain('invalid placeholder name "1st"')
  })

  it("reports names with spaces or forbidden characters", () => {
    expect(issuesOf("{{ a b }}")[0]!.message).toContain('"a b"')
    expect(issuesOf("{{a/b}}")[0]!.message).toContain('"a/b"')
    expect(issuesOf("{{-a}}")[0]!.message).toContain('"-a"')
    expect(issuesOf('{{"key": 1}}')[0]!.message).toContain("write \\{{ for a literal {{")
  })

  it("reports an empty placeholder", () => {
    const issues = issuesOf("x {{  }} y")
    expect(issues[0]).toMatchObject({ line: 1, column: 3 })
    expect(issues[0]!.message).toContain("empty placeholder")
  })

  it("reports an unclosed placeholder at the end and before another opening", () => {
    const atEnd = issuesOf("ok {{a}}\nthen {{ b")
    expect(atEnd).toEqual([
      { line: 2, column: 6, offset: 14, message: "unclosed placeholder: this {{ has no matching }}" }
    ])
    const nested = issuesOf("{{ a {{b}}")
    expect(nested).toHaveLength(1)
    expect(nested[0]).toMatchObject({ column: 1, message: expect.stringContaining("unclosed") })
    expect(placeholders("{{ a {{b}}")).toEqual(["b"])
  })

  it("reports every issue, not only the first", () => {
    const issues = issuesOf("{{}} {{ ok }}\n{{ 2 }}\n{{ c")
    expect(issues.map((i) => [i.line, i.column])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1]
    ])
  })

  it("stays fast on a long text full of openings", () => {
    const text = "{{ ".repeat(50_000)
    const started = performance.now()
    expect(issuesOf(text)).toHaveLength(50_000)
    expect(performance.now() - started).toBeLessThan(1_000)
  })
})

describe("escapes", () => {
  it("renders \\{{ as a literal {{ that starts no placeholder", () => {
    expect(rendered("\\{{name}} is {{name}}", { name: "x" })).toBe("{{name}} is x")
    expect(Either.isRight(parseTemplate("\\{{ not a name! }}"))).toBe(true)
  })

  it("renders \\\\{{ as a backslash followed by a placeholder", () => {
    expect(rendered("\\\\{{name}}", { name: "x" })).toBe("\\x")
  })

  it("halves longer runs of backslashes and escapes when one is left over", () => {
    expect(rendered("\\\\\\{{name}}", {})).toBe("\\{{name}}")
    expect(rendered("\\\\\\\\{{name}}", { name: "x" })).toBe("\\\\x")
  })

  it("leaves backslashes elsewhere untouched", () => {
    expect(rendered("a\\b \\n \\{ \\}} {{v}}\\", { v: 1 })).toBe("a\\b \\n \\{ \\}} 1\\")
  })
})

describe("render", () => {
  it("inserts strings as they are", () => {
    expect(rendered("Q: {{ question }}\nA:", { question: 'say "hi"\n{{x}}' })).toBe('Q: say "hi"\n{{x}}\nA:')
  })

  it("inserts other JSON values as JSON", () => {
    expect(
      rendered("{{n}}|{{b}}|{{z}}|{{o}}|{{l}}|{{big}}", {
        n: 4.5,
        b: false,
        z: null,
        o: { a: [1, "two"] },
        l: [],
        big: 12n
      })
    ).toBe('4.5|false|null|{"a":[1,"two"]}|[]|12')
  })

  it("fills every occurrence of a repeated placeholder", () => {
    expect(rendered("{{a}}-{{ a }}-{{a}}", { a: "x" })).toBe("x-x-x")
  })

  it("ignores variables the template does not use", () => {
    expect(rendered("plain", { unused: 1 })).toBe("plain")
  })

  it("lists every missing variable once, in order", () => {
    const error = failure(render("{{b}} {{a}} {{b}} {{present}} {{c}}", { present: "" }))
    expect(error).toBeInstanceOf(TemplateError)
    expect(error.code).toBe("missing_variables")
    expect(error.details.missing).toEqual(["b", "a", "c"])
    expect(error.details.issues).toEqual([])
    expect(error.message).toBe("Missing variables: b, a, c")
  })

  it("counts undefined, functions, cycles and inherited keys as missing", () => {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const error = failure(
      render("{{u}} {{f}} {{c}} {{constructor}} {{toString}}", { u: undefined, f: () => 1, c: cycle })
    )
    expect(error.details.missing).toEqual(["u", "f", "c", "constructor", "toString"])
  })

  it("renders an empty string variable as empty, not as missing", () => {
    expect(rendered("[{{e}}]", { e: "" })).toBe("[]")
  })

  it("fails an invalid template with its issues and still lists missing variables", () => {
    const error = failure(render("{{a}} {{ b c }}", {}))
    expect(error.code).toBe("invalid_template")
    expect(error.details.issues).toHaveLength(1)
    expect(error.details.missing).toEqual(["a"])
    expect(error.message).toContain("line 1, column 7")
  })

  it("caps the issues in the message but keeps them all in the details", () => {
    const error = failure(render("{{1}}".repeat(8), {}))
    expect(error.details.issues).toHaveLength(8)
    expect(error.message).toContain("(and 3 more)")
  })
})

describe("renderPrompt", () => {
  it("renders the system text and the template with the same variables", () => {
    const prompt = { system: "You grade {{ topic }}.", template: "{{input}} -> {{output}}" }
    expect(Either.getOrThrow(renderPrompt(prompt, { topic: "math", input: "1+1", output: 2 }))).toEqual({
      system: "You grade math.",
      template: "1+1 -> 2"
    })
  })

  it("merges the missing variables of both parts", () => {
    const error = failure(renderPrompt({ system: "{{a}} {{b}}", template: "{{b}} {{c}}" }, { x: 1 }))
    expect(error.code).toBe("missing_variables")
    expect(error.details.missing).toEqual(["a", "b", "c"])
  })

  it("merges the issues of both parts, each naming its part", () => {
    const error = failure(renderPrompt({ system: "ok\n{{ }}", template: "{{ x" }, {}))
    expect(error.code).toBe("invalid_template")
    expect(error.details.issues.map((i) => [i.part, i.line, i.column])).toEqual([
      ["system", 2, 1],
      ["template", 1, 1]
    ])
    expect(error.message).toContain("system prompt line 2, column 1")
    expect(error.message).toContain("template line 1, column 1")
  })

  it("renders an empty system text as empty", () => {
    expect(Either.getOrThrow(renderPrompt({ system: "", template: "{{a}}" }, { a: "y" }))).toEqual({
      system: "",
      template: "y"
    })
  })
})
