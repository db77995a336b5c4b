// Datasets in the web app: preview paging, the upload helper in a real Chromium (XMLHttpRequest upload progress,
// the bearer token, the server's error envelope with row numbers), and the dataset page driven like a user
// against the real app (PGlite) on a real socket, in a happy-dom document installed by hand (the server shares
// this process; see test/support/HappyDom.ts).
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { describe, it } from "vitest"
import type { DatasetId, ModelConfigId } from "../../src/domain/Ids.ts"
import { intParam, offsetOfRow, pageWindow } from "../../frontend/src/datasets/paging.ts"
import { errorFacts, errorOfResponse } from "../../frontend/src/datasets/upload.ts"
import { ApiError } from "../../frontend/src/lib/errors.ts"
import { makeApi } from "../../frontend/src/lib/rpc.ts"
import { SessionContextProvider } from "../../frontend/src/lib/session.tsx"
import { Toasts } from "../../frontend/src/lib/toast.tsx"
import { chromiumPath, e2eRequired } from "../e2e/harness.ts"
import { installDom } from "../support/HappyDom.ts"
import { localSession } from "../support/LocalSession.ts"
import { api as rest, csvForm, signToken, supabaseEnv, testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

describe("preview paging", () => {
  it("aligns to pages, clamps past the end and numbers rows from 1", () => {
    expect(pageWindow(0, 50, 137)).toEqual({
      offset: 0,
      limit: 50,
      total: 137,
      first: 1,
      last: 50,
      page: 1,
      pages: 3,
      prevOffset: null,
      nextOffset: 50,
      lastOffset: 100
    })
    expect(pageWindow(120, 50, 137)).toMatchObject({
      offset: 100,
      first: 101,
      last: 137,
      page: 3,
      nextOffset: null
    })
    // an offset from an old link, past the end, shows the last page
    expect(pageWindow(5000, 50, 137)).toMatchObject({ offset: 100, prevOffset: 50 })
    expect(pageWindow(60, 25, 137)).toMatchObject({ offset: 50, first: 51, last: 75, page: 3, pages: 6 })
    // exactly full pages: no empty page after the last
    expect(pageWindow(0, 50, 100)).toMatchObject({ pages: 2, lastOffset: 50 })
    expect(pageWindow(50, 50, 100)).toMatchObject({ nextOffset: null, last: 100 })
    expect(pageWindow(0, 50, 0)).toMatchObject({ first: 0, last: 0, page: 1, pages: 1, nextOffset: null })
  })

  it("finds the page of a row number, and reads URL numbers strictly", () => {
    expect(offsetOfRow(1, 50, 137)).toBe(0)
    expect(offsetOfRow(50, 50, 137)).toBe(0)
    expect(offsetOfRow(51, 50, 137)).toBe(50)
    expect(offsetOfRow(137, 25, 137)).toBe(125)
    for (const bad of [0, 138, 1.5, Number.NaN]) expect(offsetOfRow(bad, 50, 137)).toBeNull()
    expect(intParam("40", 0)).toBe(40)
    for (const bad of [null, "", "-5", "1e3", "x"]) expect(intParam(bad, 7)).toBe(7)
  })
})

describe("upload errors", () => {
  it("reads the server's envelope and labels where in the file it went wrong", () => {
    const error = errorOfResponse(
      400,
      JSON.stringify({
        error: {
          code: "field_count_mismatch",
          message: "Row 2 (line 3) has 2 field(s); the header has 3.",
          details: { row: 2, line: 3, expected: 3, got: 2 }
        }
      })
    )
    expect([error.code, error.message]).toEqual([
      "field_count_mismatch",
      "Row 2 (line 3) has 2 field(s); the header has 3."
    ])
    expect(errorFacts(error)).toEqual([
      { label: "Row", value: "2" },
      { label: "Line", value: "3" },
      { label: "Fields expected", value: "3" },
      { label: "Fields found", value: "2" }
    ])
    expect(errorOfResponse(502, "<html>Bad gateway</html>").message).toMatch(/502/)
    expect(errorFacts(new ApiError("empty_file", "The file is empty."))).toEqual([])
  })
})

/** The upload helper bundled for the browser, exposed as `window.assayUpload`. */
const bundleUploader = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "assay-upload-"))
  const entry = path.join(dir, "entry.ts")
  const helper = path.resolve(import.meta.dirname, "../../frontend/src/datasets/upload.ts")
  fs.writeFileSync(
    entry,
    `import { uploadDataset } from ${JSON.stringify(helper)}\n(globalThis as any).assayUpload = uploadDataset\n`
  )
  const built = await Bun.build({ entrypoints: [entry], target: "browser" })
  fs.rmSync(dir, { recursive: true, force: true })
  if (!built.success) throw new Error(built.logs.join("\n"))
  return built.outputs[0]!.text()
}

interface BrowserUpload {
  readonly dataset?: { id: string; name: string; rowCount: number; headers: ReadonlyArray<string> }
  readonly error?: { code: string; message: string; details: unknown }
  readonly events: Array<{ loaded: number; total: number }>
}

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run"
]

// like the browser test: skipped without Chromium, except where it is required (CI), where that fails the suite
describe.runIf(fs.existsSync(chromiumPath) || e2eRequired)("with Chromium", () =>
  layer(testApp(pgliteLayer, supabaseEnv), { excludeTestServices: true, timeout: 120_000 })(
    "upload helper in Chromium (supabase mode)",
    (it) => {
      it.effect("reports upload progress, sends the token, and rejects with the server's row numbers", () =>
        Effect.gen(function* () {
          const baseUrl = yield* BaseUrl
          yield* Effect.promise(async () => {
            const script = await bundleUploader()
            const browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS })
            try {
              const page = await browser.newPage()
              // a page of the server's origin, so the upload is same-origin as in the app
              await page.route(`${baseUrl}/blank`, (route) =>
                route.fulfill({ contentType: "text/html", body: "<!doctype html><title>upload</title>" })
              )
              await page.goto(`${baseUrl}/blank`)
              await page.addScriptTag({ content: script })
              const upload = (csv: string, token: string | undefined, name?: string) =>
                page.evaluate(
                  async ({ baseUrl, csv, token, name }): Promise<BrowserUpload> => {
                    const events: Array<{ loaded: number; total: number }> = []
                    const file = new File([csv], "data.csv", { type: "text/csv" })
                    // eslint-disable-next-line @typescript-eslint/no-explicit-any
                    const uploadDataset = (window as any).assayUpload
                    try {
                      const dataset = await uploadDataset({
                        baseUrl,
                        file,
                        name,
                        token,
                        onProgress: (p: { loaded: number; total: number }) => events.push(p)
                      })
                      return {
                        dataset: {
                          id: dataset.id,
                          name: dataset.name,
                          rowCount: dataset.rowCount,
                          headers: dataset.headers
                        },
                        events
                      }
                    } catch (e) {
                      const error = e as { code: string; message: string; details: unknown }
                      return {
                        error: { code: error.code, message: error.message, details: error.details },
                        events
                      }
                    }
                  },
                  { baseUrl, csv, token, name }
                )

              const token = await signToken({ sub: crypto.randomUUID() })
              // ~2 MB, so the body goes out in many chunks
              const rows = Array.from({ length: 4000 }, (_, i) => `${i},"${"lorem ipsum ".repeat(40)}"`)
              const big = ["id,text", ...rows].join("\n")
              const ok = await upload(big, token, "Big one")
              expect(ok.error).toBeUndefined()
              expect(ok.dataset).toMatchObject({ name: "Big one", rowCount: 4000, headers: ["id", "text"] })
              expect(ok.events.length).toBeGreaterThan(0)
              const last = ok.events.at(-1)!
              expect(last.loaded).toBe(last.total)
              expect(last.total).toBeGreaterThan(big.length)
              for (let i = 1; i < ok.events.length; i++)
                expect(ok.events[i]!.loaded).toBeGreaterThanOrEqual(ok.events[i - 1]!.loaded)
              // the dataset belongs to the token's user
              const listed = await rest(baseUrl, token).get(`/api/v1/datasets/${ok.dataset!.id}`)
              expect(listed.status).toBe(200)

              const bad = await upload("name,city\nAda,London\nBob\nCy,Paris\n", token)
              expect(bad.dataset).toBeUndefined()
              expect(bad.error).toEqual({
                code: "field_count_mismatch",
                message: "Row 2 (line 3) has 1 field(s); the header has 2.",
                details: { row: 2, line: 3, expected: 2, got: 1 }
              })

              const anonymous = await upload("a\n1\n", undefined)
              expect(anonymous.error?.code).toBe("missing_token")
            } finally {
              await browser.close()
            }
          })
        })
      )
    }
  )
)

layer(testApp(pgliteLayer), { excludeTestServices: true, timeout: 120_000 })("dataset page", (it) => {
  it.effect("pages through rows, renames, and shows the server's refusal to delete a dataset in use", () =>
    Effect.gen(function* () {
      const baseUrl = yield* BaseUrl
      yield* Effect.promise(async () => {
        const csv = ["n,word", ...Array.from({ length: 120 }, (_, i) => `${i + 1},w${i + 1}`)].join("\n")
        const uploaded = await rest(baseUrl).post("/api/v1/datasets", csvForm(csv, "words.csv"))
        expect(uploaded.status).toBe(201)
        const id = uploaded.body.id as DatasetId

        const removeDom = installDom(`${baseUrl}/datasets/${id}`)
        const { act, cleanup, configure, fireEvent, render, screen, waitFor, within } =
          await import("@testing-library/react")
        // a shared 2-core machine: the server may take seconds to answer
        configure({ asyncUtilTimeout: 15_000 })
        const { DatasetPage } = await import("../../frontend/src/datasets/DatasetPage.tsx")
        const api = makeApi(baseUrl, async () => undefined)
        const firstRow = () => {
          const [, row] = within(screen.getByRole("table", { name: "Dataset rows" })).getAllByRole("row")
          return Array.from(row!.querySelectorAll("td"), (cell) => cell.textContent)
        }
        const shown = async (range: string, row: ReadonlyArray<string>) => {
          await screen.findByText(range)
          await waitFor(() => expect(firstRow()).toEqual(row))
        }
        try {
          render(
            <SessionContextProvider value={localSession(api)}>
              <DatasetPage id={id} />
              <Toasts />
            </SessionContextProvider>
          )
          await shown("1–50 of 120", ["1", "1", "w1"])
          expect(screen.getByText("Page 1 of 3")).toBeTruthy()
          expect((screen.getByRole("button", { name: "Previous" }) as HTMLButtonElement).disabled).toBe(true)

          fireEvent.click(screen.getByRole("button", { name: "Next" }))
          await shown("51–100 of 120", ["51", "51", "w51"])
          expect(window.location.search).toBe("?offset=50")

          // a smaller page keeps the first row in view
          fireEvent.change(screen.getByLabelText("Rows per page"), { target: { value: "25" } })
          await shown("51–75 of 120", ["51", "51", "w51"])
          expect(screen.getByText("Page 3 of 5")).toBeTruthy()

          fireEvent.change(screen.getByLabelText("Go to row"), { target: { value: "118" } })
          fireEvent.click(screen.getByRole("button", { name: "Go" }))
          await shown("101–120 of 120", ["101", "101", "w101"])
          expect((screen.getByRole("button", { name: "Next" }) as HTMLButtonElement).disabled).toBe(true)
          expect(screen.getAllByRole("row")).toHaveLength(21)

          fireEvent.change(screen.getByLabelText("Go to row"), { target: { value: "500" } })
          fireEvent.click(screen.getByRole("button", { name: "Go" }))
          await screen.findByText("There is no row 500: rows go from 1 to 120.")

          fireEvent.click(screen.getByRole("button", { name: "Rename" }))
          fireEvent.change(screen.getByLabelText("Dataset name"), { target: { value: "Words" } })
          fireEvent.click(screen.getByRole("button", { name: "Save name" }))
          await screen.findByRole("heading", { name: "Words" })
          expect((await api.call((client) => client.datasets.get({ id }))).name).toBe("Words")

          // a run uses the dataset: the server refuses the delete and the page says why
          const prompt = await api.call((client) =>
            client.prompts.create({ name: "Echo", type: "generator", userTemplate: "Say {{word}}" })
          )
          const model = await api.call((client) =>
            client.models.create({ provider: "mock", model: "echo", label: "Echo" })
          )
          await api.call((client) =>
            client.runs.create({ promptId: prompt.id, datasetId: id, modelIds: [model.id as ModelConfigId] })
          )
          fireEvent.click(screen.getByRole("button", { name: "Delete" }))
          const dialog = screen.getByRole("dialog", { name: "Delete" })
          fireEvent.click(within(dialog).getByRole("button", { name: "Delete" }))
          const toast = await screen.findByText(/run/i, { selector: ".toast-error span" })
          expect(toast.closest(".toast")!.getAttribute("data-code")).toBe("dataset_in_use")
          expect((await api.call((client) => client.datasets.get({ id }))).name).toBe("Words")
        } finally {
          await act(async () => cleanup())
          await api.dispose()
          await removeDom()
        }
      })
    })
  )
})
