// What the browser test stands on: the web app built by the project's own script, the real server (`bun
// src/main.ts serve`, embedded PGlite in a fresh data dir, mock models) as a child process, and Debian's Chromium
// driven by playwright-core. Nothing here is mocked.
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium, type Browser, type ConsoleMessage, type Page } from "playwright-core"

export const root = fileURLToPath(new URL("../..", import.meta.url))
const bun = path.join(root, "node_modules", ".bin", "bun")

/** Debian's package (stack-notes); `npx playwright install` cannot work on these machines. */
export const chromiumPath = process.env.ASSAY_CHROMIUM ?? "/usr/bin/chromium"

/** In CI (`CI=true`, or `ASSAY_E2E=required` from .ci/run) a missing Chromium fails the suite instead of skipping it. */
export const e2eRequired = process.env.CI === "true" || process.env.ASSAY_E2E === "required"

/** Where screenshots go: `ASSAY_SCREENSHOTS` (docs/screenshots for the README's), else test/.tmp/screenshots. */
export const screenshotDir = path.resolve(
  root,
  process.env.ASSAY_SCREENSHOTS ?? path.join("test", ".tmp", "screenshots")
)

/** Screenshots of failed steps: never committed. */
export const failureDir = path.join(root, "test", ".tmp", "e2e-failures")

interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const run = (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ readonly exit: Exit; readonly output: string }>((resolve, reject) => {
    const child = spawn(bun, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("error", reject)
    child.on("exit", (code, signal) => resolve({ exit: { code, signal }, output }))
  })

/** `bun scripts/build-web.ts`: what `npm start` serves (it writes frontend/dist, always a production build). */
export const buildWebApp = async () => {
  const { exit, output } = await run([path.join(root, "scripts", "build-web.ts")], root, process.env)
  if (exit.code !== 0) throw new Error(`the web build failed (exit ${exit.code}):\n${output}`)
  return output.trim()
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

export interface AppServer {
  readonly url: string
  readonly dataDir: string
  /** Everything the server printed so far (for failure messages). */
  readonly log: () => string
  readonly stop: () => Promise<Exit>
}

const HEALTH_TIMEOUT_MS = 150_000

/**
 * The real server on a free port with embedded PGlite in a fresh temporary data dir. Its working directory is that
 * temp dir, so a developer's ./.env does not leak in.
 */
export const startServer = async (): Promise<AppServer> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "assay-e2e-"))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ASSAY_HOST: "127.0.0.1",
    ASSAY_PORT: String(port),
    ASSAY_DATA_DIR: path.join(dataDir, "data"),
    ASSAY_AUTH_MODE: "local",
    ASSAY_LOG_FORMAT: "json",
    LOG_LEVEL: "warning"
  }
  const child: ChildProcess = spawn(bun, [path.join(root, "src", "main.ts"), "serve"], {
    cwd: dataDir,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<Exit>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })))
  let exit: Exit | undefined
  void exited.then((value) => (exit = value))

  const stop = async () => {
    if (exit === undefined) {
      child.kill("SIGTERM")
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000)
      await exited
      clearTimeout(killer)
    }
    fs.rmSync(dataDir, { recursive: true, force: true })
    return exit!
  }

  // PGlite's first start (initdb + migrations) takes 5-20 s on two cores, nearer a minute when they are busy.
  const deadline = Date.now() + HEALTH_TIMEOUT_MS
  for (;;) {
    if (exit !== undefined) {
      await stop()
      throw new Error(`the server exited (${exit.code ?? exit.signal}) before answering /healthz:\n${output}`)
    }
    const healthy = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false
    )
    if (healthy) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`the server did not answer /healthz within ${HEALTH_TIMEOUT_MS / 1000} s:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { url, dataDir, log: () => output, stop }
}

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run"
    ]
  })

/**
 * Every console error, uncaught page error, 5xx answer and error toast in a page, so the test fails on them (the
 * app shows every backend failure as a toast, so an unexpected one is a failed step even when the UI recovers). A
 * step that provokes an error on purpose wraps itself in `allowing(patterns, step)`: matching errors are accepted
 * while it runs, and only then.
 */
export class BrowserErrors {
  private readonly seen: Array<string> = []
  private allowed: ReadonlyArray<RegExp> = []

  private record(text: string) {
    if (!this.allowed.some((pattern) => pattern.test(text))) this.seen.push(text)
  }

  async watch(page: Page) {
    page.on("console", (message: ConsoleMessage) => {
      if (message.type() === "error")
        this.record(`console error: ${message.text()} (${message.location().url})`)
    })
    page.on("pageerror", (error) => this.record(`page error: ${error.stack ?? error.message}`))
    page.on("response", (response) => {
      if (response.status() >= 500) this.record(`${response.status()} from ${response.url()}`)
    })
    await page.exposeBinding("__assayErrorToast", (_source, text: string) =>
      this.record(`error toast: ${text}`)
    )
    await page.addInitScript(() => {
      const report = (window as unknown as { __assayErrorToast: (text: string) => void }).__assayErrorToast
      new MutationObserver((mutations) => {
        for (const mutation of mutations)
          for (const node of mutation.addedNodes)
            if (node instanceof HTMLElement && node.matches(".toast-error")) report(node.textContent ?? "")
      }).observe(document, { childList: true, subtree: true })
    })
  }

  async allowing<A>(patterns: ReadonlyArray<RegExp>, step: () => Promise<A>): Promise<A> {
    const before = this.allowed
    this.allowed = [...before, ...patterns]
    try {
      return await step()
    } finally {
      this.allowed = before
    }
  }

  /** The errors so far, emptied. */
  take(): ReadonlyArray<string> {
    return this.seen.splice(0)
  }
}
