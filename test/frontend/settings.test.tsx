// Settings: the model form's checks (by the server's own schema), the models and keys stores against the real app
// (PGlite) on a real socket — conflicts shown with the server's message, deletes rolled back when refused, keys
// never echoed — the settings page driven like a user, and the browser's live-updates setting. The page renders
// into a happy-dom document installed by hand (test/support/HappyDom.ts): the server shares this process.
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Either } from "effect"
import { afterAll, beforeAll, describe, it } from "vitest"
import type { ModelConfigId } from "../../src/domain/Ids.ts"
import { ModelConfig } from "../../src/domain/Model.ts"
import { makeApi, type Api } from "../../frontend/src/lib/rpc.ts"
import { paramsDraftOf } from "../../frontend/src/prompts/promptDraft.ts"
import {
  blankDraft,
  changesOf,
  draftOf,
  validateDraft,
  type ModelDraft
} from "../../frontend/src/settings/modelForm.ts"
import { installDom } from "../support/HappyDom.ts"
import { localSession } from "../support/LocalSession.ts"
import { testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

const draft = (fields: Partial<ModelDraft>): ModelDraft => ({ ...blankDraft(), ...fields })
const errorsOf = (value: ModelDraft) => {
  const result = validateDraft(value)
  if (Either.isRight(result)) throw new Error(`expected errors, got ${JSON.stringify(result.right)}`)
  return result.left
}
const payloadOf = (value: ModelDraft) => {
  const result = validateDraft(value)
  if (Either.isLeft(result)) throw new Error(`expected a payload, got ${JSON.stringify(result.left)}`)
  return result.right
}

describe("model form", () => {
  it("fills defaults: blank prices are free, blank limits none, a blank label is the model name", () => {
    expect(
      payloadOf(
        draft({
          provider: "openai-compatible",
          model: " llama3.1:8b ",
          baseUrl: " http://127.0.0.1:11434/v1 "
        })
      )
    ).toEqual({
      provider: "openai-compatible",
      model: "llama3.1:8b",
      baseUrl: "http://127.0.0.1:11434/v1",
      params: {},
      inputPricePerMTok: 0,
      outputPricePerMTok: 0,
      requestsPerMinute: null,
      tokensPerMinute: null,
      maxConcurrency: null,
      isDefault: false
    })
    const full = payloadOf(
      draft({
        provider: "openai",
        model: "gpt-4.1",
        label: "GPT 4.1 (team)",
        inputPricePerMTok: "2",
        outputPricePerMTok: "8.5",
        requestsPerMinute: "500",
        tokensPerMinute: "30000",
        maxConcurrency: "8",
        isDefault: true,
        params: { ...paramsDraftOf({}), temperature: "0.2", max_tokens: "512", stop: "END\n###" }
      })
    )
    expect(full).toMatchObject({
      label: "GPT 4.1 (team)",
      baseUrl: null,
      inputPricePerMTok: 2,
      outputPricePerMTok: 8.5,
      requestsPerMinute: 500,
      tokensPerMinute: 30000,
      maxConcurrency: 8,
      isDefault: true,
      params: { temperature: 0.2, max_tokens: 512, stop: ["END", "###"] }
    })
    // a base URL is optional for the providers that have their own
    expect(payloadOf(draft({ provider: "mock", model: "mock-2" })).baseUrl).toBeNull()
  })

  it("names every invalid input, with the schema's bounds in words", () => {
    const errors = errorsOf(
      draft({
        provider: "openai-compatible",
        model: "  ",
        label: "x".repeat(201),
        baseUrl: "",
        inputPricePerMTok: "abc",
        outputPricePerMTok: "-1",
        requestsPerMinute: "1.5",
        tokensPerMinute: "0",
        maxConcurrency: "10001",
        params: { ...paramsDraftOf({}), temperature: "3", top_p: "x" }
      })
    )
    expect(errors.fields).toEqual({
      model: "Required, up to 200 characters",
      label: "Up to 200 characters",
      baseUrl: "An OpenAI-compatible endpoint needs its base URL",
      inputPricePerMTok: "Not a number",
      outputPricePerMTok: "A price from 0 to 100,000 dollars",
      requestsPerMinute: "A whole number from 1 to 100,000,000",
      tokensPerMinute: "A whole number from 1 to 100,000,000",
      maxConcurrency: "A whole number from 1 to 10,000"
    })
    expect(Object.keys(errors.params).sort()).toEqual(["temperature", "top_p"])
    expect(errorsOf(draft({ provider: "openai", model: "m", baseUrl: "ftp://example.com" })).fields).toEqual({
      baseUrl: "An http(s) URL, e.g. http://127.0.0.1:11434/v1"
    })
  })

  it("turns an edit into the changes alone", () => {
    const at = DateTime.unsafeMake(0)
    const model = new ModelConfig({
      id: "00000000-0000-4000-8000-000000000001" as ModelConfigId,
      provider: "openai-compatible",
      model: "qwen2.5",
      label: "Qwen",
      baseUrl: "http://127.0.0.1:11434/v1",
      params: { temperature: 0.5, stop: ["a"] },
      inputPricePerMTok: 0.1,
      outputPricePerMTok: 0.2,
      requestsPerMinute: 60,
      tokensPerMinute: null,
      maxConcurrency: null,
      isDefault: false,
      createdAt: at,
      updatedAt: at
    })
    const unchanged = draftOf(model)
    expect(changesOf(model, payloadOf(unchanged))).toEqual({})
    expect(
      changesOf(
        model,
        payloadOf({
          ...unchanged,
          label: "",
          requestsPerMinute: "",
          tokensPerMinute: "1000",
          outputPricePerMTok: "0.25",
          params: { ...unchanged.params, temperature: "" }
        })
      )
    ).toEqual({
      label: "qwen2.5",
      requestsPerMinute: null,
      tokensPerMinute: 1000,
      outputPricePerMTok: 0.25,
      params: { stop: ["a"] }
    })
  })
})

const SECRET = "sk-test-secret-0123456789-wxyz"

layer(testApp(pgliteLayer, { ASSAY_ENCRYPTION_KEY: "ab".repeat(32) }), {
  excludeTestServices: true,
  timeout: 120_000
})("settings against the app", (it) => {
  // one document for the file: Testing Library binds `screen` to the document it first sees
  let removeDom: (() => Promise<void>) | undefined
  beforeAll(() => {
    removeDom = installDom("http://127.0.0.1/settings")
  })
  afterAll(() => removeDom?.())

  const withDom = (test: (api: Api) => Promise<void>) =>
    Effect.gen(function* () {
      const baseUrl = yield* BaseUrl
      yield* Effect.promise(async () => {
        const api = makeApi(baseUrl, async () => undefined)
        const { cleanup } = await import("@testing-library/react")
        try {
          await test(api)
        } finally {
          cleanup()
          await api.dispose()
        }
      })
    })

  it.effect(
    "models store: create in order, conflict with the server's message, refused delete rolled back",
    () =>
      withDom(async (api) => {
        const { act, renderHook, render, waitFor } = await import("@testing-library/react")
        const { SessionContextProvider } = await import("../../frontend/src/lib/session.tsx")
        const { Toasts } = await import("../../frontend/src/lib/toast.tsx")
        const { useModels } = await import("../../frontend/src/settings/stores.ts")
        render(<Toasts />)
        const { result } = renderHook(() => useModels(), {
          wrapper: ({ children }) => (
            <SessionContextProvider value={localSession(api)}>{children}</SessionContextProvider>
          )
        })
        await waitFor(() => expect(result.current.models).toBeDefined())
        const start = result.current.models!.length

        const zed = await act(() =>
          result.current.create(payloadOf(draft({ provider: "mock", model: "zed-mock", label: "Zed" })))
        )
        const alpha = await act(() =>
          result.current.create(
            payloadOf(
              draft({ provider: "mock", model: "alpha-mock", label: "alpha", inputPricePerMTok: "1.25" })
            )
          )
        )
        expect(alpha.inputPricePerMTok).toBe(1.25)
        const server = await api.call((client) => client.models.list({}))
        // the list follows the server's order without a reload
        expect(result.current.models!.map((model) => model.id)).toEqual(server.map((model) => model.id))
        expect(server).toHaveLength(start + 2)

        // the same provider + model + base URL again: the server's conflict, toasted with its message
        const duplicate = await act(() =>
          result.current
            .create(payloadOf(draft({ provider: "mock", model: "zed-mock", label: "Zed again" })))
            .then(
              () => undefined,
              (error: { code: string }) => error
            )
        )
        expect(duplicate?.code).toBe("model_exists")
        expect(document.querySelector('.toast[data-code="model_exists"]')?.textContent).toContain(
          "A model with this provider, model name and base URL already exists."
        )
        expect(result.current.models).toHaveLength(start + 2)

        // a model a run uses cannot go: it disappears at once, then comes back where it was
        const prompt = await api.call((client) =>
          client.prompts.create({ name: "Hello", type: "generator", userTemplate: "Hello" })
        )
        await api.call((client) =>
          client.runs.create({
            promptId: prompt.id,
            datasetId: null,
            modelIds: [zed.id],
            graderPromptId: null,
            graderModelId: null
          })
        )
        const order = result.current.models!.map((model) => model.id)
        let removal: Promise<void> | undefined
        act(() => {
          removal = result.current.remove(zed.id)
        })
        expect(result.current.models!.some((model) => model.id === zed.id)).toBe(false)
        const refused = await act(() =>
          removal!.then(
            () => undefined,
            (error: { code: string }) => error
          )
        )
        expect(refused?.code).toBe("model_in_use")
        expect(result.current.models!.map((model) => model.id)).toEqual(order)
        expect(document.querySelector('.toast[data-code="model_in_use"]')?.textContent).toContain(
          "This model is used by a run"
        )

        // an unused one goes, for good
        await act(() => result.current.remove(alpha.id))
        expect(result.current.models!.some((model) => model.id === alpha.id)).toBe(false)
        expect(
          (await api.call((client) => client.models.list({}))).some((model) => model.id === alpha.id)
        ).toBe(false)

        // an edit saves only what changed; the defaults seed is idempotent
        const edited = await act(() => result.current.update(zed.id, { outputPricePerMTok: 3 }))
        expect(edited.outputPricePerMTok).toBe(3)
        expect(result.current.models!.find((model) => model.id === zed.id)?.outputPricePerMTok).toBe(3)
        const seeded = await act(() => result.current.seedDefaults())
        expect(await act(() => result.current.seedDefaults())).toHaveLength(seeded.length)
        expect(result.current.models).toHaveLength(seeded.length)
      })
  )

  it.effect("keys: saved and shown masked, never echoed; deleted; the page adds a model and a key", () =>
    withDom(async (api) => {
      const { fireEvent, render, screen, waitFor, within } = await import("@testing-library/react")
      const { SessionContextProvider } = await import("../../frontend/src/lib/session.tsx")
      const { Toasts } = await import("../../frontend/src/lib/toast.tsx")
      const { SettingsPage } = await import("../../frontend/src/settings/SettingsPage.tsx")
      render(
        <SessionContextProvider value={localSession(api)}>
          <SettingsPage />
          <Toasts />
        </SessionContextProvider>
      )
      await screen.findByRole("button", { name: "Edit Mock (deterministic)" })

      // add a model through the form: first refused in place, then saved
      fireEvent.click(screen.getByRole("button", { name: "Add model" }))
      const form = screen.getByRole("form", { name: "Add a model" })
      fireEvent.change(within(form).getByLabelText("Model name"), { target: { value: "llama3.1:8b" } })
      fireEvent.change(within(form).getByLabelText("Output price"), { target: { value: "-2" } })
      fireEvent.click(within(form).getByRole("button", { name: "Add model" }))
      expect(within(form).getByText("An OpenAI-compatible endpoint needs its base URL")).toBeTruthy()
      expect(within(form).getByText("A price from 0 to 100,000 dollars")).toBeTruthy()
      fireEvent.change(within(form).getByLabelText("Base URL"), {
        target: { value: "http://127.0.0.1:11434/v1" }
      })
      fireEvent.change(within(form).getByLabelText("Output price"), { target: { value: "0.6" } })
      fireEvent.change(within(form).getByLabelText("Temperature"), { target: { value: "0.3" } })
      fireEvent.click(within(form).getByRole("button", { name: "Add model" }))
      await screen.findByRole("button", { name: "Edit llama3.1:8b" })
      const created = (await api.call((client) => client.models.list({}))).find(
        (model) => model.model === "llama3.1:8b"
      )
      expect(created).toMatchObject({
        provider: "openai-compatible",
        baseUrl: "http://127.0.0.1:11434/v1",
        outputPricePerMTok: 0.6,
        params: { temperature: 0.3 }
      })

      // a key: the input empties, the row shows the server's mask, the key is nowhere in the page
      fireEvent.click(screen.getByRole("button", { name: "Set OpenAI key" }))
      const input = screen.getByLabelText("OpenAI API key") as HTMLInputElement
      expect(input.type).toBe("password")
      fireEvent.change(input, { target: { value: SECRET } })
      fireEvent.click(screen.getByRole("button", { name: "Save" }))
      await screen.findByText("Saved the OpenAI key.")
      const [stored] = await api.call((client) => client.apiKeys.list({}))
      expect(stored?.provider).toBe("openai")
      expect(screen.getByText(stored!.masked)).toBeTruthy()
      expect(stored!.masked).not.toContain(SECRET.slice(0, 10))
      expect(document.body.innerHTML).not.toContain(SECRET)
      expect(screen.queryByLabelText("OpenAI API key")).toBeNull()

      // too short: refused in the page, nothing sent
      fireEvent.click(screen.getByRole("button", { name: "Replace OpenAI key" }))
      fireEvent.change(screen.getByLabelText("OpenAI API key"), { target: { value: "short" } })
      fireEvent.click(screen.getByRole("button", { name: "Save" }))
      expect(screen.getByRole("alert").textContent).toBe("A key has at least 8 characters.")
      fireEvent.click(screen.getByRole("button", { name: "Cancel" }))

      // delete, confirmed
      const row = screen.getByText(stored!.masked).closest("tr")!
      fireEvent.click(within(row).getByRole("button", { name: "Delete" }))
      fireEvent.click(
        within(screen.getByRole("dialog", { name: "Delete" })).getByRole("button", { name: "Delete" })
      )
      await screen.findByText("Deleted the OpenAI key.")
      await waitFor(async () => expect(await api.call((client) => client.apiKeys.list({}))).toEqual([]))
      expect(screen.getByRole("button", { name: "Set OpenAI key" })).toBeTruthy()
    })
  )

  it.effect("live updates: the choice is stored in the browser and every reader follows it", () =>
    withDom(async () => {
      const { act, fireEvent, render, renderHook, screen } = await import("@testing-library/react")
      const settings = await import("../../frontend/src/lib/settings.ts")
      const { LiveUpdatesSection } = await import("../../frontend/src/settings/LiveUpdatesSection.tsx")
      const reader = renderHook(() => settings.useSettings())
      render(<LiveUpdatesSection />)
      const realtime = screen.getByRole("radio", { name: /Realtime/ }) as HTMLInputElement
      const polling = screen.getByRole("radio", { name: /Polling/ }) as HTMLInputElement
      const initial = settings.getSettings().liveUpdates
      expect((initial === "realtime" ? realtime : polling).checked).toBe(true)

      fireEvent.click(initial === "realtime" ? polling : realtime)
      const flipped = initial === "realtime" ? "polling" : "realtime"
      expect(reader.result.current.liveUpdates).toBe(flipped)
      expect(JSON.parse(window.localStorage.getItem("assay.settings")!)).toEqual({ liveUpdates: flipped })

      act(() => settings.updateSettings({ liveUpdates: "realtime" }))
      expect(realtime.checked).toBe(true)
      expect(reader.result.current.liveUpdates).toBe("realtime")
    })
  )
})
