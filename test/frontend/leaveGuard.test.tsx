// Leaving a page with unsaved edits inside the app: the router asks first (a link, `navigate`, the back button)
// while a page holds a guard, as the prompt editor does with unsaved changes. A page of its own file: the page
// renders into a happy-dom document installed by hand (test/support/HappyDom.ts), once per file.
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { makeApi } from "../../frontend/src/lib/rpc.ts"
import { installDom } from "../support/HappyDom.ts"
import { localSession } from "../support/LocalSession.ts"
import { testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

layer(testApp(pgliteLayer), {
  excludeTestServices: true,
  timeout: 120_000
})("leaving unsaved edits", (it) => {
  it.effect("asks before a link or the back button leaves unsaved edits, and stays when told to", () =>
    Effect.gen(function* () {
      const baseUrl = yield* BaseUrl
      yield* Effect.promise(async () => {
        const removeDom = installDom(`${baseUrl}/prompts`)
        const { act, cleanup, configure, fireEvent, render, screen, waitFor } =
          await import("@testing-library/react")
        const { navigate, useLocation } = await import("../../frontend/src/lib/router.tsx")
        const { SessionContextProvider } = await import("../../frontend/src/lib/session.tsx")
        const { Toasts } = await import("../../frontend/src/lib/toast.tsx")
        const { PromptPage } = await import("../../frontend/src/prompts/PromptPage.tsx")
        const saveState = () => document.querySelector(".pr-save-state")?.textContent
        configure({ asyncUtilTimeout: 15_000 })
        const api = makeApi(baseUrl, async () => undefined)
        const asked: Array<string> = []
        let answer = false
        window.confirm = (message?: string) => {
          asked.push(String(message))
          return answer
        }
        const Where = () => <output aria-label="Location">{useLocation().pathname}</output>
        const shown = () => screen.getByLabelText("Location").textContent
        try {
          const created = await api.call((client) =>
            client.prompts.create({ name: "Guarded", type: "generator", userTemplate: "Hi {{name}}" })
          )
          const here = `/prompts/${created.id}`
          navigate(here)
          render(
            <SessionContextProvider value={localSession(api)}>
              <Where />
              <PromptPage id={created.id} />
              <Toasts />
            </SessionContextProvider>
          )
          const template = (await screen.findByLabelText("Template")) as HTMLTextAreaElement
          fireEvent.change(template, { target: { value: "Hi {{name}}!" } })

          // a link: asked, told to stay; the page and its edit stay
          fireEvent.click(screen.getByRole("link", { name: "Prompts" }))
          expect(asked).toEqual(["This prompt has unsaved changes. Leave without saving them?"])
          expect(window.location.pathname).toBe(here)
          expect(template.value).toBe("Hi {{name}}!")

          // the back button (the browser changes the address, then tells the page): asked, the address restored
          await act(async () => {
            window.history.pushState(null, "", "/prompts")
            window.dispatchEvent(new Event("popstate"))
          })
          expect(asked).toHaveLength(2)
          expect(window.location.pathname).toBe(here)
          expect(shown()).toBe(here)

          // saved: nothing to lose, nothing asked
          fireEvent.keyDown(window, { key: "s", ctrlKey: true })
          await waitFor(() => expect(saveState()).toBe("Saved"))
          // (its effects, the guard's removal among them, run after the render that shows "Saved")
          await act(async () => {})
          await act(async () => fireEvent.click(screen.getByRole("link", { name: "Prompts" })))
          expect(asked).toHaveLength(2)
          expect(shown()).toBe("/prompts")

          // edited again and told to leave: it leaves
          await act(async () => navigate(here))
          fireEvent.change(template, { target: { value: "Hello {{name}}" } })
          answer = true
          await act(async () => fireEvent.click(screen.getByRole("link", { name: "Prompts" })))
          expect(asked).toHaveLength(3)
          expect(shown()).toBe("/prompts")
        } finally {
          await act(async () => cleanup())
          await api.dispose()
          await removeDom()
        }
      })
    })
  )
})
