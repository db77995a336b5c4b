// Keeps a CellStore up to date with a run: a full load, then either the run's event stream (each burst of events
// fetches what changed since the last fetch) or polling `updatedSince` every 500 ms, until the run is finished
// and no cell is queued or running. `resume` starts following again (after a re-run).
import type { DateTime } from "effect"
import { CellEventType, MAX_CELL_PAGE_SIZE } from "../../../src/domain/Cell.ts"
import type { RunId } from "../../../src/domain/Ids.ts"
import type { Run } from "../../../src/domain/Run.ts"
import { toApiError, type ApiError } from "../lib/errors.ts"
import type { Api } from "../lib/rpc.ts"
import type { CellStore } from "./cellStore.ts"

/** The part of EventSource the sync uses (so tests can hand in their own). */
export interface EventSourceLike {
  readonly readyState: number
  onerror: ((event: Event) => void) | null
  addEventListener(type: string, listener: (event: MessageEvent) => void): void
  close(): void
}

export type OpenEventSource = (url: string) => EventSourceLike

const CLOSED = 2

export type LiveMode = "realtime" | "polling"

/** `streaming`/`polling`: following the run; `idle`: the run is finished (or the sync disposed). */
export type SyncState = "loading" | "streaming" | "polling" | "idle"

export interface LiveSyncOptions {
  readonly api: Api
  readonly runId: RunId
  readonly store: CellStore
  readonly mode: LiveMode
  /** The run as it is now: following stops once it is finished and the store has no queued or running cell. */
  readonly loadRun: () => Promise<Run>
  readonly onError: (error: ApiError) => void
  /** After a fetch that changed cells. */
  readonly onCellsChanged?: () => void
  readonly onState?: (state: SyncState) => void
  readonly openEventSource?: OpenEventSource
  readonly pollIntervalMs?: number
  /** The shortest gap between two fetches that events ask for: a burst of events makes one fetch. */
  readonly streamFetchGapMs?: number
  /** While streaming, a fetch at least this often anyway: a stream that stalls without closing loses nothing. */
  readonly streamSafetyMs?: number
}

const isFinished = (run: Run) =>
  run.status === "completed" || run.status === "failed" || run.status === "canceled"

/** When the store is quiet but the run not yet marked finished: look again after this long. */
const SETTLE_CHECK_MS = 1_000
const MAX_RETRY_MS = 10_000

export class LiveSync {
  private since: DateTime.Utc | undefined
  private lastEventId: string | undefined
  private source: EventSourceLike | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerDue = 0
  private inFlight: Promise<void> | undefined
  private wanted = false
  private lastFetchEnd = 0
  private loaded = false
  private following = false
  private disposed = false
  private failures = 0
  private mode: LiveMode
  private current: SyncState = "loading"

  constructor(private readonly options: LiveSyncOptions) {
    this.mode = options.mode
  }

  get state(): SyncState {
    return this.current
  }

  /** Loads every cell, then follows the run while it has work left. */
  async start(): Promise<void> {
    this.setState("loading")
    await this.fetch()
    if (this.disposed) return
    this.loaded = true
    this.following = true
    this.follow()
    void this.afterFetch()
  }

  /** Follows the run again (after a re-run queued cells of a finished run). */
  resume() {
    // before the first load is done, following starts anyway and sees the re-run's run status
    if (this.disposed || !this.loaded) return
    if (this.following) {
      this.request()
      return
    }
    this.following = true
    this.follow()
    void this.fetch()
  }

  dispose() {
    this.disposed = true
    this.stopFollowing()
    this.setState("idle")
  }

  /** One sweep: every page of the cells changed since the last sweep. */
  private async sweep(): Promise<void> {
    const { api, runId, store } = this.options
    let cursor: string | undefined
    let changed = 0
    let serverTime: DateTime.Utc | undefined
    do {
      const page = await api.call((client) =>
        client.cells.list({
          runId,
          limit: MAX_CELL_PAGE_SIZE,
          ...(this.since === undefined ? {} : { updatedSince: this.since }),
          ...(cursor === undefined ? {} : { cursor })
        })
      )
      if (this.disposed) return
      changed += store.merge(page.items)
      serverTime = page.serverTime
      if (this.lastEventId === undefined || BigInt(page.lastEventId) > BigInt(this.lastEventId)) {
        this.lastEventId = page.lastEventId
      }
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    this.since = serverTime
    if (changed > 0) this.options.onCellsChanged?.()
  }

  /** Runs a sweep unless one is running (then one more runs after it); failures are reported, then retried. */
  private fetch(): Promise<void> {
    if (this.inFlight) {
      this.wanted = true
      return this.inFlight
    }
    this.wanted = false
    this.inFlight = this.sweep()
      .then(
        () => {
          this.failures = 0
        },
        (error: unknown) => {
          this.failures++
          if (!this.disposed) this.options.onError(toApiError(error))
        }
      )
      .finally(() => {
        this.inFlight = undefined
        this.lastFetchEnd = Date.now()
        if (!this.disposed && this.following) void this.afterFetch()
      })
    return this.inFlight
  }

  /** What follows a sweep: the next poll, a fetch that events asked for meanwhile, or the end. */
  private async afterFetch() {
    if (this.failures > 0) {
      this.schedule(Math.min(MAX_RETRY_MS, 500 * 2 ** this.failures))
      return
    }
    if (this.options.store.activeCount === 0) {
      let run: Run
      try {
        run = await this.options.loadRun()
      } catch (error) {
        this.options.onError(toApiError(error))
        this.schedule(MAX_RETRY_MS)
        return
      }
      // a fetch started or asked for meanwhile decides instead, when it is done
      if (this.disposed || !this.following || this.inFlight || this.timer !== undefined) return
      if (isFinished(run) && this.options.store.activeCount === 0 && !this.wanted) {
        this.stopFollowing()
        this.setState("idle")
        return
      }
      if (this.mode === "realtime" && !this.wanted) {
        this.schedule(SETTLE_CHECK_MS)
        return
      }
    }
    if (this.mode === "polling") this.schedule(this.options.pollIntervalMs ?? 500)
    else if (this.wanted) this.request()
    else this.schedule(this.options.streamSafetyMs ?? 5_000)
  }

  /** A fetch as soon as the gap since the last one allows (sooner than one already planned). */
  private request() {
    if (this.inFlight) {
      this.wanted = true
      return
    }
    const gap = this.options.streamFetchGapMs ?? 250
    const wait = Math.max(0, this.lastFetchEnd + gap - Date.now())
    if (this.timer !== undefined && this.timerDue <= Date.now() + wait) return
    this.schedule(wait)
  }

  private schedule(ms: number) {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerDue = Date.now() + ms
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (!this.disposed && this.following) void this.fetch()
    }, ms)
  }

  private follow() {
    if (this.mode === "realtime" && this.openStream()) {
      this.setState("streaming")
      return
    }
    this.mode = "polling"
    this.setState("polling")
  }

  /** Opens the event stream after the last event the sweeps saw; false when EventSource is unavailable. */
  private openStream(): boolean {
    const open =
      this.options.openEventSource ??
      (typeof EventSource === "undefined" ? undefined : (url: string) => new EventSource(url))
    if (open === undefined) return false
    const { api, runId } = this.options
    void api.token().then(
      (token) => {
        if (this.disposed || !this.following || this.mode !== "realtime") return
        const url = new URL(`/api/v1/runs/${runId}/events`, api.baseUrl)
        if (this.lastEventId !== undefined) url.searchParams.set("after", this.lastEventId)
        if (token !== undefined) url.searchParams.set("access_token", token)
        const source = open(url.href)
        this.source = source
        const onEvent = (event: MessageEvent) => {
          if (event.lastEventId) this.lastEventId = event.lastEventId
          this.request()
        }
        for (const type of CellEventType.literals) source.addEventListener(type, onEvent)
        source.onerror = () => {
          // EventSource reconnects by itself (with Last-Event-ID) unless the server refused the stream
          if (source.readyState !== CLOSED || this.source !== source) return
          this.options.onError(
            toApiError({ code: "stream_closed", message: "The live event stream closed; polling instead." })
          )
          this.source = undefined
          this.mode = "polling"
          this.setState("polling")
          this.request()
        }
      },
      (error: unknown) => this.options.onError(toApiError(error))
    )
    return true
  }

  private stopFollowing() {
    this.following = false
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.source?.close()
    this.source = undefined
  }

  private setState(state: SyncState) {
    if (state === this.current) return
    this.current = state
    this.options.onState?.(state)
  }
}
