// The prompt editor: its placeholder tokenizer against the server's template rules, the draft → update logic,
// and the editor page driven like a user against the real app (PGlite) on a real socket. The page renders into a
// happy-dom document installed by hand (test/support/HappyDom.ts): the server shares this process.
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Either } from "effect"
import { describe, it } from "vitest"
import { ModelParams } from "../../src/domain/ModelParams.ts"
import { Prompt } from "../../src/domain/Prompt.ts"
import { parseTemplate, placeholders } from "../../src/domain/Template.ts"
import type { PromptId } from "../../src/domain/Ids.ts"
import { makeApi } from "../../frontend/src/lib/rpc.ts"
import { SessionContextProvider } from "../../frontend/src/lib/session.tsx"
import { Toasts } from "../../frontend/src/lib/toast.tsx"
import { numberLines } from "../../frontend/src/prompts/DiffView.tsx"
import { PromptPage } from "../../frontend/src/prompts/PromptPage.tsx"
import {
  changesOf,
  draftOf,
  isDirty,
  parseParams,
  templateIssuesOf,
  type Draft
} from "../../frontend/src/prompts/promptDraft.ts"
import { analyzeTemplate } from "../../frontend/src/prompts/templateTokens.ts"
import { ApiError } from "../../frontend/src/lib/errors.ts"
import { installDom } from "../support/HappyDom.ts"
import { localSession } from "../support/LocalSession.ts"
import { testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

const marked = (text: string) =>
  analyzeTemplate(text).tokens.map((token) =>
    token.kind === "text" ? token.text : token.kind === "placeholder" ? `[${token.text}]` : `<${token.text}>`
  )

describe("placeholder tokenizer", () => {
  it("marks placeholders, escapes and malformed braces as the server reads them", () => {
    expect(marked("Hi {{ name }}, {{user.first-name}}!")).toEqual([
      "Hi ",
      "[{{ name }}]",
      ", ",
      "[{{user.first-name}}]",
      "!"
    ])
    // an escaped {{ is text; a doubled backslash is a literal one before a real placeholder
    expect(marked("\\{{a}} \\\\{{b}}")).toEqual(["\\{{a}} \\\\", "[{{b}}]"])
    // a bad name spans to its }}; an unclosed {{ is just the braces, and scanning goes on after each
    expect(marked("{{ 1st }} {{ok}} {{ }} {{a {{b}}")).toEqual([
      "<{{ 1st }}>",
      " ",
      "[{{ok}}]",
      " ",
      "<{{ }}>",
      " ",
      "<{{>",
      "a ",
      "[{{b}}]"
    ])
    expect(marked("tail {{")).toEqual(["tail ", "<{{>"])
    expect(marked("")).toEqual([])
  })

  it("agrees with the server's parser on every template of a random sample", () => {
    const pieces = ["{{", "}}", "\\", "a", "b.c", "1", " ", "\n", "{", "}", "é", "x-y"]
    let seed = 7
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648
    }
    for (let n = 0; n < 3000; n++) {
      const length = Math.floor(random() * 14)
      const text = Array.from({ length }, () => pieces[Math.floor(random() * pieces.length)]).join("")
      const analysis = analyzeTemplate(text)
      // the tokens cover the text exactly, in order
      expect(analysis.tokens.map((token) => token.text).join(""), text).toBe(text)
      let at = 0
      for (const token of analysis.tokens) {
        expect(token.start, text).toBe(at)
        expect(token.end - token.start, text).toBe(token.text.length)
        at = token.end
      }
      // the same placeholders and the same issues as the server finds
      expect(analysis.placeholders, text).toEqual(placeholders(text))
      const parsed = parseTemplate(text)
      expect(analysis.issues, text).toEqual(Either.isLeft(parsed) ? parsed.left : [])
      // every marked placeholder is, on its own, exactly one placeholder of that name
      for (const token of analysis.tokens)
        if (token.kind === "placeholder") {
          const alone = parseTemplate(token.text)
          expect(Either.isRight(alone) && alone.right, text).toEqual([
            { _tag: "Placeholder", name: token.name, start: 0, end: token.text.length }
          ])
        }
    }
  })
})

const prompt = (fields: Partial<ConstructorParameters<typeof Prompt>[0]> = {}) =>
  new Prompt({
    id: "00000000-0000-4000-8000-00000000abcd" as PromptId,
    name: "P",
    type: "generator",
    systemText: "sys",
    userTemplate: "Hi {{name}}",
    defaultParams: {},
    placeholders: ["name"],
    lineage: 1,
    latestVersion: null,
    createdAt: DateTime.unsafeMake(0),
    updatedAt: DateTime.unsafeMake(0),
    ...fields
  })

describe("prompt draft", () => {
  it("turns the parameter inputs into ModelParams, blank meaning unset, with the schema's limits", () => {
    const base = draftOf(prompt()).params
    expect(parseParams({ ...base, temperature: "0.5", max_tokens: " 256 ", stop: "END\n\n###" })).toEqual(
      Either.right({ temperature: 0.5, max_tokens: 256, stop: ["END", "###"] })
    )
    const bad = parseParams({ ...base, temperature: "3", top_k: "1.5", seed: "x", stop: "a\nb\nc\nd\ne" })
    expect(Either.isLeft(bad)).toBe(true)
    const errors = Either.isLeft(bad) ? bad.left : {}
    expect(Object.keys(errors).sort()).toEqual(["seed", "stop", "temperature", "top_k"])
    expect(errors.seed).toBe("Not a number")
    expect(errors.temperature).toMatch(/2/)
    // the input shows what the server stores and reads back the same
    const params: ModelParams = { temperature: 0.7, top_p: 0.9, stop: ["\n\n"] }
    expect(Either.getOrThrow(parseParams(draftOf(prompt({ defaultParams: params })).params))).toEqual({
      temperature: 0.7,
      top_p: 0.9
    })
  })

  it("sends only what changed, and is clean again when the draft matches the saved prompt", () => {
    const saved = prompt({ defaultParams: { temperature: 0.2, max_tokens: 100 } })
    const draft = draftOf(saved)
    expect(isDirty(saved, draft)).toBe(false)
    expect(changesOf(saved, draft).changes).toEqual({})
    // "0.20" is the same number: not a change
    expect(isDirty(saved, { ...draft, params: { ...draft.params, temperature: "0.20" } })).toBe(false)

    const edited: Draft = {
      ...draft,
      userTemplate: "Bye {{name}}",
      params: { ...draft.params, top_p: "0.5" }
    }
    expect(isDirty(saved, edited)).toBe(true)
    expect(changesOf(saved, edited).changes).toEqual({
      userTemplate: "Bye {{name}}",
      defaultParams: { temperature: 0.2, max_tokens: 100, top_p: 0.5 }
    })
    // an invalid input is unsaved, and its error is reported instead of a parameter change
    const invalid = { ...draft, params: { ...draft.params, max_tokens: "many" } }
    expect(isDirty(saved, invalid)).toBe(true)
    expect(changesOf(saved, invalid)).toEqual({ changes: {}, paramErrors: { max_tokens: "Not a number" } })
  })

  it("reads the template issues out of an invalid_template failure, by part", () => {
    const error = new ApiError("invalid_template", "Invalid template: ...", {
      issues: [
        { part: "system", line: 1, column: 3, offset: 2, message: "unclosed" },
        { part: "template", line: 2, column: 1, offset: 9, message: "empty" }
      ]
    })
    expect(templateIssuesOf(error)).toEqual({
      system: [{ part: "system", line: 1, column: 3, offset: 2, message: "unclosed" }],
      template: [{ part: "template", line: 2, column: 1, offset: 9, message: "empty" }]
    })
    expect(templateIssuesOf(new ApiError("prompt_not_found", "No prompt"))).toEqual({
      system: [],
      template: []
    })
  })

  it("numbers diff lines as in the old and the new text", () => {
    expect(
      numberLines([
        { op: "equal", text: "a" },
        { op: "delete", text: "b" },
        { op: "insert", text: "B" },
        { op: "insert", text: "C" },
        { op: "equal", text: "d" }
      ]).map((line) => [line.op, line.oldNumber, line.newNumber])
    ).toEqual([
      ["equal", 1, 1],
      ["delete", 2, null],
      ["insert", null, 2],
      ["insert", null, 3],
      ["equal", 3, 4]
    ])
  })
})

const saveState = () => document.querySelector(".pr-save-state")?.textContent

layer(testApp(pgliteLayer), {
  excludeTestServices: true,
  timeout: 120_000
})("prompt editor page", (it) => {
  it.effect("edits, rejects a bad template with its line and column, saves, freezes and diffs versions", () =>
    Effect.gen(function* () {
      const baseUrl = yield* BaseUrl
      yield* Effect.promise(async () => {
        const removeDom = installDom(`${baseUrl}/prompts`)
        const { act, cleanup, configure, fireEvent, render, screen, waitFor, within } =
          await import("@testing-library/react")
        // a shared 2-core machine: the server may take seconds to answer
        configure({ asyncUtilTimeout: 15_000 })
        const saveShortcut = () => fireEvent.keyDown(window, { key: "s", ctrlKey: true })
        const api = makeApi(baseUrl, async () => undefined)
        try {
          const created = await api.call((client) =>
            client.prompts.create({ name: "Greeter", type: "generator", userTemplate: "Hello {{name}}" })
          )
          render(
            <SessionContextProvider value={localSession(api)}>
              <PromptPage id={created.id} />
              <Toasts />
            </SessionContextProvider>
          )
          const template = (await screen.findByLabelText("Template")) as HTMLTextAreaElement
          expect(template.value).toBe("Hello {{name}}")
          expect(saveState()).toBe("Saved")

          // a malformed placeholder on line 2: the editor marks it, the server refuses it with its position
          fireEvent.change(template, { target: { value: "Hello {{name}}\nFrom {{ 2nd }} in {{city}}" } })
          expect(screen.getByText("Unsaved changes")).toBeTruthy()
          expect(
            within(screen.getByRole("list", { name: "Placeholders" })).getAllByRole("listitem")
          ).toHaveLength(2)
          saveShortcut()
          const issue = await screen.findByText(/rejected by the server/)
          expect(issue.closest("li")!.textContent).toMatch(/^Line 2, column 6 invalid placeholder name "2nd"/)
          expect(await screen.findByText(/^Invalid template: template line 2, column 6/)).toBeTruthy()
          const unchanged = await api.call((client) => client.prompts.get({ id: created.id }))
          expect(unchanged.userTemplate).toBe("Hello {{name}}")

          // fixed and saved with the shortcut, parameters too
          fireEvent.change(template, { target: { value: "Hello {{name}}\nFrom {{city}}" } })
          expect(screen.queryByText(/rejected by the server/)).toBeNull()
          fireEvent.change(screen.getByLabelText("Temperature"), { target: { value: "0.4" } })
          saveShortcut()
          await waitFor(() => expect(saveState()).toBe("Saved"))
          const saved = await api.call((client) => client.prompts.get({ id: created.id }))
          expect(saved.userTemplate).toBe("Hello {{name}}\nFrom {{city}}")
          expect(saved.defaultParams).toEqual({ temperature: 0.4 })
          expect(saved.placeholders).toEqual(["name", "city"])

          // two versions; the second freeze saves the pending edit first; the diff shows what changed
          fireEvent.click(screen.getByRole("button", { name: "Freeze version" }))
          await screen.findByText("Frozen as v1.")
          fireEvent.change(template, { target: { value: "Hi {{name}}\nFrom {{city}}" } })
          fireEvent.change(screen.getByLabelText("Temperature"), { target: { value: "0.9" } })
          fireEvent.click(screen.getByRole("button", { name: "Freeze version" }))
          await screen.findByText("Frozen as v2.")
          const diff = await screen.findByRole("table", { name: "Template diff" })
          const rows = within(diff)
            .getAllByRole("row")
            .map((row) => Array.from(row.querySelectorAll("td"), (cell) => cell.textContent))
          expect(rows).toEqual([
            ["1", "", "-", "Hello {{name}}"],
            ["", "1", "+", "Hi {{name}}"],
            ["2", "2", " ", "From {{city}}"]
          ])
          expect(screen.getByText("0.4").className).toBe("pr-diff-removed")
          expect(screen.getByText("0.9").className).toBe("pr-diff-added")
          const versions = await api.call((client) => client.prompts.versions({ id: created.id }))
          expect(versions.map((version) => version.body.defaultParams.temperature)).toEqual([0.9, 0.4])

          // freezing again without changes makes no new version
          fireEvent.click(screen.getByRole("button", { name: "Freeze version" }))
          await screen.findByText("Nothing changed since v2: no new version.")
          expect(
            within(screen.getByRole("list", { name: "Version history" })).getAllByRole("listitem")
          ).toHaveLength(2)
        } finally {
          await act(async () => cleanup())
          await api.dispose()
          await removeDom()
        }
      })
    })
  )
})
