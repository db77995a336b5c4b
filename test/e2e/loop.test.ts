// The whole prompt refinement loop in a real Chromium against the real server (issue 5): one script, driven by
// roles, labels and text the way a user reads the screens. Skipped with a note where Chromium is missing, except in
// CI, where a missing Chromium fails.
import * as fs from "node:fs"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  BrowserErrors,
  buildWebApp,
  chromiumPath,
  e2eRequired,
  launchChromium,
  screenshotDir,
  startServer,
  type AppServer
} from "./harness.ts"

const chromiumFound = fs.existsSync(chromiumPath)

if (!chromiumFound && !e2eRequired) {
  console.warn(
    `[e2e] skipped: no Chromium at ${chromiumPath} (install Debian's chromium package, or set ASSAY_CHROMIUM)`
  )
}

describe.runIf(!chromiumFound && e2eRequired)("browser test prerequisites", () => {
  it("has Chromium", () => {
    throw new Error(
      `No Chromium at ${chromiumPath}: the browser test is required here (CI). ` +
        "Install it with `apt-get install chromium` (.ci/run does) or point ASSAY_CHROMIUM at one."
    )
  })
})

describe.runIf(chromiumFound)("the refinement loop in the browser", () => {
  let server: AppServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  const errors = new BrowserErrors()
  const timings: Array<string> = []

  const step = async (name: string, body: () => Promise<void>) => {
    const started = performance.now()
    await body()
    timings.push(`${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    expect(errors.take(), `browser errors during "${name}"`).toEqual([])
  }

  beforeAll(async () => {
    const started = performance.now()
    await buildWebApp()
    server = await startServer()
    browser = await launchChromium()
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: server.url })
    // every wait below is for a condition; this bounds each one
    context.setDefaultTimeout(20_000)
    page = await context.newPage()
    errors.watch(page)
    fs.mkdirSync(screenshotDir, { recursive: true })
    timings.push(`build + server + browser: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }, 180_000)

  afterAll(async () => {
    await context?.close()
    await browser?.close()
    await server?.stop()
    console.log(`[e2e] ${timings.join("; ")}`)
  })

  it("walks the loop: prompt, dataset, run, grade, re-run, edit, compare", async () => {
    await step("the app shell loads", async () => {
      await page.goto("/")
      const nav = page.getByRole("navigation", { name: "Main" })
      for (const section of ["Prompts", "Datasets", "Runs", "Settings"]) {
        await nav.getByRole("link", { name: section, exact: true }).waitFor()
      }
      await nav.getByText("local mode").waitFor()
    })
  }, 300_000)
})
