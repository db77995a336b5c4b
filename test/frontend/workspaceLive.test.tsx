// The workspace's data layer against the real app (engine, mock models, PGlite) on a real socket: following a
// run by polling and by its event stream, re-runs, manual grades with rollback, and dataset pages.
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DatasetId, ModelConfigId, PromptId, RunId } from "../../src/domain/Ids.ts"
import type { Run } from "../../src/domain/Run.ts"
import type { ApiError } from "../../frontend/src/lib/errors.ts"
import { makeApi, type Api } from "../../frontend/src/lib/rpc.ts"
import { CellStore } from "../../frontend/src/workspace/cellStore.ts"
import { DatasetRows } from "../../frontend/src/workspace/datasetRows.ts"
import { setManualGrade } from "../../frontend/src/workspace/grading.ts"
import {
  LiveSync,
  type EventSourceLike,
  type LiveMode,
  type SyncState
} from "../../frontend/src/workspace/liveSync.ts"
import { api as rest, csvForm, testApp } from "../support/TestApp.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"
import { BaseUrl } from "../support/TestServer.ts"

/** EventSource over fetch (Bun has none): enough of the protocol for the sync — frames, ids, refusal. */
class FetchEventSource implements EventSourceLike {
  readyState = 0
  onerror: ((event: Event) => void) | null = null
  readonly url: string
  private readonly listeners = new Map<string, Set<(event: MessageEvent) => void>>()
  private readonly abort = new AbortController()
  received = 0

  constructor(url: string) {
    this.url = url
    void this.read().catch(() => {
      if (this.readyState === 2) return
      this.readyState = 2
      this.onerror?.(new Event("error"))
    })
  }

  addEventListener(type: string, listener: (event: MessageEvent) => void) {
    const set = this.listeners.get(type) ?? new Set()
    set.add(listener)
    this.listeners.set(type, set)
  }

  close() {
    this.readyState = 2
    this.abort.abort()
  }

  private async read() {
    const response = await fetch(this.url, { signal: this.abort.signal })
    if (!response.ok || response.body === null) {
      this.readyState = 2
      this.onerror?.(new Event("error"))
      return
    }
    this.readyState = 1
    const decoder = new TextDecoder()
    let buffer = ""
    const reader = response.body.getReader()
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      buffer += decoder.decode(next.value, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const frame = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        let id = ""
        let type = "message"
        let data = ""
        for (const line of frame.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4)
          else if (line.startsWith("event: ")) type = line.slice(7)
          else if (line.startsWith("data: ")) data = line.slice(6)
        }
        if (data === "") continue
        this.received++
        const event = new MessageEvent(type, { data, lastEventId: id })
        this.listeners.get(type)?.forEach((listener) => listener(event))
      }
    }
  }
}

const waitFor = async (what: string, check: () => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

interface Fixture {
  readonly api: Api
  readonly baseUrl: string
  readonly promptId: PromptId
  readonly datasetId: DatasetId
  readonly model: (name: string) => Promise<ModelConfigId>
}

const ROWS = 24

const fixture = async (baseUrl: string): Promise<Fixture> => {
  const api = makeApi(baseUrl, async () => undefined)
  const prompt = await api.call((client) =>
    client.prompts.create({
      name: `Echo ${crypto.randomUUID()}`,
      type: "generator",
      systemText: "",
      userTemplate: "Say {{text}}",
      defaultParams: {}
    })
  )
  const csv = ["text", ...Array.from({ length: ROWS }, (_, i) => `row ${i}`)].join("\n")
  const upload = await rest(baseUrl).post("/api/v1/datasets", csvForm(csv))
  expect(upload.status).toBe(201)
  const model = async (name: string) =>
    (await api.call((client) => client.models.create({ provider: "mock", model: name, label: name }))).id
  return { api, baseUrl, promptId: prompt.id, datasetId: upload.body.id as DatasetId, model }
}

const follow = (
  f: Fixture,
  runId: RunId,
  mode: LiveMode,
  sources: Array<FetchEventSource> = [],
  streamUrl: (url: string) => string = (url) => url
) => {
  const errors: Array<ApiError> = []
  const store = new CellStore()
  const states: Array<SyncState> = []
  let changes = 0
  const sync = new LiveSync({
    api: f.api,
    runId,
    store,
    mode,
    loadRun: () => f.api.call((client) => client.runs.get({ id: runId })),
    onError: (error) => errors.push(error),
    onCellsChanged: () => changes++,
    onState: (state) => states.push(state),
    openEventSource: (url) => {
      const source = new FetchEventSource(streamUrl(url))
      sources.push(source)
      return source
    },
    pollIntervalMs: 100
  })
  return { store, sync, states, errors, changes: () => changes }
}

/** The cells as the server has them now, by id. */
const serverCells = async (f: Fixture, runId: RunId) => {
  const page = await f.api.call((client) => client.cells.list({ runId, limit: 1000 }))
  return new Map(page.items.map((cell) => [cell.id, cell]))
}

const createRun = (f: Fixture, modelIds: ReadonlyArray<ModelConfigId>): Promise<Run> =>
  f.api.call((client) =>
    client.runs.create({
      promptId: f.promptId,
      datasetId: f.datasetId,
      modelIds,
      graderPromptId: null,
      graderModelId: null
    })
  )

layer(testApp(pgliteLayer), { excludeTestServices: true, timeout: 120_000 })("workspace data layer", (it) => {
  const withFixture = (test: (f: Fixture) => Promise<void>) =>
    Effect.gen(function* () {
      const baseUrl = yield* BaseUrl
      yield* Effect.promise(async () => {
        const f = await fixture(baseUrl)
        try {
          await test(f)
        } finally {
          await f.api.dispose()
        }
      })
    })

  it.effect("polling follows a run to its end, then stops", () =>
    withFixture(async (f) => {
      const run = await createRun(f, [await f.model("poll-a?latency=20"), await f.model("poll-b?latency=5")])
      const live = follow(f, run.id, "polling")
      await live.sync.start()
      await waitFor("the sync to stop", () => live.sync.state === "idle")
      expect(live.states).toContain("polling")
      expect(live.errors).toEqual([])

      const server = await serverCells(f, run.id)
      expect(live.store.size).toBe(ROWS * 2)
      for (const [id, cell] of server) {
        const view = live.store.get(id)
        expect(view?.status).toBe("succeeded")
        expect(view?.outputRaw).toBe(cell.outputRaw)
        expect(view?.updatedAt.epochMillis).toBe(cell.updatedAt.epochMillis)
      }
      const [a, b] = run.models
      expect(live.store.counts(a!.id)).toMatchObject({ total: ROWS, succeeded: ROWS })
      expect(live.store.at(ROWS - 1, b!.id)?.outputRaw).toContain(`row ${ROWS - 1}`)
      live.sync.dispose()
    })
  )

  it.effect("the event stream drives fetches, resumes after a re-run and closes when the run is done", () =>
    withFixture(async (f) => {
      const run = await createRun(f, [await f.model("sse-a?latency=3000")])
      const sources: Array<FetchEventSource> = []
      const live = follow(f, run.id, "realtime", sources)
      await live.sync.start()
      await waitFor("the sync to stop", () => live.sync.state === "idle")
      expect(live.states).toEqual(["streaming", "idle"])
      expect(live.errors).toEqual([])
      expect(sources).toHaveLength(1)
      expect(new URL(sources[0]!.url).searchParams.has("after")).toBe(true)
      expect(sources[0]!.received).toBeGreaterThan(0)
      expect(sources[0]!.readyState).toBe(2)
      expect(live.store.counts()).toMatchObject({ total: ROWS, succeeded: ROWS })

      // re-run one cell of the finished run: following starts again and sees it through
      const target = live.store.at(3, run.models[0]!.id)!
      await f.api.call((client) => client.runs.rerunCell({ id: run.id, cellId: target.id }))
      live.sync.resume()
      await waitFor("the re-run cell to finish", () => {
        const cell = live.store.get(target.id)
        return cell !== undefined && cell.updatedAt.epochMillis > target.updatedAt.epochMillis
      })
      await waitFor(
        "the sync to stop again",
        () => live.sync.state === "idle" && live.store.activeCount === 0
      )
      expect(sources).toHaveLength(2)
      expect(live.store.get(target.id)?.status).toBe("succeeded")
      const server = await serverCells(f, run.id)
      expect(live.store.get(target.id)?.updatedAt.epochMillis).toBe(
        server.get(target.id)!.updatedAt.epochMillis
      )
      live.sync.dispose()
    })
  )

  it.effect("a refused stream falls back to polling", () =>
    withFixture(async (f) => {
      const run = await createRun(f, [await f.model("refused?latency=10")])
      // a stream the server refuses (a run that is not there): the sync polls instead
      const live = follow(f, run.id, "realtime", [], (url) =>
        url.replace(run.id, "00000000-0000-4000-8000-000000000000")
      )
      await live.sync.start()
      await waitFor("the sync to stop", () => live.sync.state === "idle")
      expect(live.states).toEqual(["streaming", "polling", "idle"])
      expect(live.errors.map((e) => e.code)).toEqual(["stream_closed"])
      expect(live.store.counts()).toMatchObject({ total: ROWS, succeeded: ROWS })
      live.sync.dispose()
    })
  )

  it.effect("a stream that stalls without closing still ends in the run's final state", () =>
    withFixture(async (f) => {
      const run = await createRun(f, [await f.model("stalled?latency=300")])
      const store = new CellStore()
      const errors: Array<ApiError> = []
      let opened = 0
      // connected, silent: no event ever arrives and no error either
      const silent: EventSourceLike = {
        readyState: 1,
        onerror: null,
        addEventListener: () => {},
        close: () => {}
      }
      const sync = new LiveSync({
        api: f.api,
        runId: run.id,
        store,
        mode: "realtime",
        loadRun: () => f.api.call((client) => client.runs.get({ id: run.id })),
        onError: (error) => errors.push(error),
        openEventSource: () => {
          opened++
          return silent
        },
        streamSafetyMs: 200
      })
      await sync.start()
      await waitFor("the sync to stop", () => sync.state === "idle")
      expect(opened).toBe(1)
      expect(errors).toEqual([])
      expect(store.counts()).toMatchObject({ total: ROWS, succeeded: ROWS })
      sync.dispose()
    })
  )

  it.effect(
    "a manual grade shows at once, is kept when the server takes it and rolled back when it refuses",
    () =>
      withFixture(async (f) => {
        const done = await createRun(f, [await f.model("grade-fast")])
        const live = follow(f, done.id, "polling")
        await live.sync.start()
        await waitFor("the run to finish", () => live.sync.state === "idle")

        const cell = live.store.at(0, done.models[0]!.id)!
        const errors: Array<ApiError> = []
        const pending = setManualGrade(f.api, live.store, done.id, cell.id, "fail", (e) => errors.push(e))
        expect(live.store.get(cell.id)).toMatchObject({ manualGrade: "fail", gradePending: true })
        const grade = await pending
        expect(grade?.manualGrade).toBe("fail")
        expect(live.store.get(cell.id)).toMatchObject({ manualGrade: "fail", gradePending: false })
        live.sync.resume()
        await waitFor("the graded snapshot", () => live.store.get(cell.id)!.updatedAt > cell.updatedAt)
        expect(live.store.get(cell.id)?.manualGrade).toBe("fail")
        expect(errors).toEqual([])

        // a cell still running has no output to grade: the server refuses, the toggle goes back
        const slow = await createRun(f, [await f.model("grade-slow?latency=60000")])
        const slowLive = follow(f, slow.id, "polling")
        await slowLive.sync.start()
        const running = slowLive.store.at(0, slow.models[0]!.id)!
        const refused = setManualGrade(f.api, slowLive.store, slow.id, running.id, "pass", (e) =>
          errors.push(e)
        )
        expect(slowLive.store.get(running.id)).toMatchObject({ manualGrade: "pass", gradePending: true })
        expect(await refused).toBeUndefined()
        expect(slowLive.store.get(running.id)).toMatchObject({ manualGrade: null, gradePending: false })
        expect(errors.map((e) => e.code)).toEqual(["cell_not_gradable"])
        expect(errors[0]!.message).toMatch(/Only a succeeded cell/)
        await f.api.call((client) => client.runs.cancel({ id: slow.id }))
        await waitFor("the canceled run to stop", () => slowLive.sync.state === "idle")
        expect(slowLive.store.counts()).toMatchObject({ total: ROWS, canceled: ROWS })
        slowLive.sync.dispose()
        live.sync.dispose()
      })
  )

  it.effect("dataset rows arrive a page at a time", () =>
    withFixture(async (f) => {
      const errors: Array<ApiError> = []
      const rows = new DatasetRows(f.api, f.datasetId, (e) => errors.push(e), 10)
      let heard = 0
      rows.subscribe(() => heard++)
      expect(rows.row(0)).toBeUndefined()
      await rows.ensure(5, 14)
      expect(heard).toBe(2)
      expect(rows.headers).toEqual(["text"])
      expect(rows.row(14)).toEqual({ text: "row 14" })
      expect(rows.row(20)).toBeUndefined()
      await rows.ensure(8, 12)
      expect(heard).toBe(2)
      await rows.ensure(15, 30)
      expect(rows.row(ROWS - 1)).toEqual({ text: `row ${ROWS - 1}` })
      expect(errors).toEqual([])
    })
  )
})
