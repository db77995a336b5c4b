import { Effect } from "effect"
import { api, csvForm, signToken } from "./TestApp.ts"

/** The REST client of test/support/TestApp.ts. */
export type Http = ReturnType<typeof api>

export interface CountsJson {
  readonly total: number
  readonly queued: number
  readonly running: number
  readonly succeeded: number
  readonly failed: number
  readonly canceled: number
}

export interface RunModelJson {
  readonly id: string
  readonly modelConfigId: string
  readonly label: string
  readonly counts: CountsJson
}

export interface RunJson {
  readonly id: string
  readonly status: "queued" | "running" | "completed" | "failed" | "canceled"
  readonly counts: CountsJson
  readonly models: ReadonlyArray<RunModelJson>
  readonly createdAt: string
  readonly startedAt: string | null
  readonly completedAt: string | null
}

export interface CellJson {
  readonly id: string
  readonly runId: string
  readonly runModelId: string
  readonly rowIndex: number
  readonly status: "queued" | "running" | "succeeded" | "failed" | "canceled"
  readonly attempt: number
  readonly outputRaw: string | null
  readonly outputParsed: unknown
  readonly grade: "pass" | "fail" | null
  readonly gradeReason: string | null
  readonly errorCode: string | null
  readonly errorMessage: string | null
  readonly startedAt: string | null
  readonly finishedAt: string | null
}

export interface EventJson {
  readonly id: string
  readonly type: string
  readonly payload: Record<string, unknown>
  readonly createdAt: string
}

export interface CellDetailJson extends CellJson {
  readonly maxAttempts: number
  readonly renderedPrompt: unknown
  readonly graderOutputRaw: string | null
  readonly gradeError: string | null
  readonly events: ReadonlyArray<EventJson>
}

export interface ModelJson {
  readonly id: string
  readonly provider: string
  readonly model: string
  readonly label: string
}

/** A model to create: the body of POST /api/v1/models. */
export interface ModelBody {
  readonly provider: "mock" | "openai" | "anthropic" | "openai-compatible"
  readonly model: string
  readonly label?: string
  readonly baseUrl?: string
  readonly requestsPerMinute?: number
  readonly maxConcurrency?: number
}

/** Calls the API and dies with what it answered unless the status is `expected`. */
export const call = <A>(
  http: Http,
  method: "get" | "post" | "put",
  route: string,
  expected: number,
  body?: unknown
): Effect.Effect<A> =>
  Effect.promise(() =>
    method === "get" ? http.get(route) : method === "post" ? http.post(route, body) : http.put(route, body)
  ).pipe(
    Effect.flatMap((response) =>
      response.status === expected
        ? Effect.succeed(response.body as A)
        : Effect.dieMessage(
            `${method.toUpperCase()} ${route}: expected ${expected}, got ${response.status} ${JSON.stringify(response.body)}`
          )
    )
  )

/** A client for a fresh user (a random `sub`), so that no test sees another's prompts, models or gates. */
export const freshUser = (baseUrl: string) =>
  Effect.map(
    Effect.promise(() => signToken({ sub: crypto.randomUUID() })),
    (token) => api(baseUrl, token)
  )

export const createModel = (http: Http, body: ModelBody) =>
  call<ModelJson>(http, "post", "/api/v1/models", 201, body)

export const putApiKey = (http: Http, provider: "openai" | "anthropic" | "openai-compatible", key: string) =>
  call<unknown>(http, "put", `/api/v1/api-keys/${provider}`, 200, { key })

/** `count` distinct topics; none is a suffix of another, so `prompt.endsWith(topic)` picks one row. */
export const topics = (count: number, prefix = "row") =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, "0")}`)

export interface RunSetup {
  /** The generator's user template; it may use `{{topic}}`. */
  readonly template: string
  readonly topics: ReadonlyArray<string>
  /** Model ids, in display order. */
  readonly modelIds: ReadonlyArray<string>
  /** A grader prompt's user template, and the model that grades (absent: each cell's own model). */
  readonly grader?: { readonly template: string; readonly modelId?: string }
}

export interface StartedRun {
  readonly run: RunJson
  readonly promptId: string
  readonly datasetId: string
}

/**
 * Creates the prompt, uploads the topics as a one-column CSV and starts the run. The run is canceled when the
 * test's scope closes, if it is still going, so that a failed test leaves no work for the next one.
 */
export const startRun = (http: Http, setup: RunSetup) =>
  Effect.gen(function* () {
    const prompt = yield* call<{ id: string }>(http, "post", "/api/v1/prompts", 201, {
      name: `Generator ${crypto.randomUUID().slice(0, 8)}`,
      type: "generator",
      userTemplate: setup.template
    })
    const csv = `topic\n${setup.topics.join("\n")}\n`
    const dataset = yield* call<{ id: string }>(
      http,
      "post",
      "/api/v1/datasets",
      201,
      csvForm(csv, "topics.csv")
    )
    const grader =
      setup.grader === undefined
        ? null
        : yield* call<{ id: string }>(http, "post", "/api/v1/prompts", 201, {
            name: `Grader ${crypto.randomUUID().slice(0, 8)}`,
            type: "grader",
            userTemplate: setup.grader.template
          })
    const run = yield* call<RunJson>(http, "post", "/api/v1/runs", 201, {
      promptId: prompt.id,
      datasetId: dataset.id,
      modelIds: setup.modelIds,
      ...(grader === null ? {} : { graderPromptId: grader.id }),
      ...(setup.grader?.modelId === undefined ? {} : { graderModelId: setup.grader.modelId })
    })
    yield* Effect.addFinalizer(() =>
      getRun(http, run.id).pipe(
        Effect.flatMap((current) =>
          isFinished(current) ? Effect.void : call(http, "post", `/api/v1/runs/${run.id}/cancel`, 200)
        ),
        Effect.catchAllCause(() => Effect.void)
      )
    )
    return { run, promptId: prompt.id, datasetId: dataset.id } satisfies StartedRun
  })

export const getRun = (http: Http, runId: string) => call<RunJson>(http, "get", `/api/v1/runs/${runId}`, 200)

/** Polls `check` every 25 ms until it answers a value; dies naming `what` (and the last value seen) past the timeout. */
export const waitUntil = <A>(
  what: string,
  check: Effect.Effect<A>,
  done: (value: A) => boolean,
  timeoutMs: number
): Effect.Effect<A> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    let value = yield* check
    while (!done(value)) {
      if (Date.now() > deadline)
        return yield* Effect.dieMessage(
          `timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(value)}`
        )
      yield* Effect.sleep("25 millis")
      value = yield* check
    }
    return value
  })

/** Polls the run until `predicate` holds; dies with the run's last state past `timeoutMs`. */
export const waitForRun = (
  http: Http,
  runId: string,
  predicate: (run: RunJson) => boolean,
  timeoutMs: number
) => waitUntil(`run ${runId}`, getRun(http, runId), predicate, timeoutMs)

/** A run that no longer changes by itself. */
export const isFinished = (run: RunJson) =>
  run.status === "completed" || run.status === "failed" || run.status === "canceled"

/** Every cell of the run (all pages), grouped by run model, then by row. */
export const allCells = (http: Http, runId: string) =>
  Effect.gen(function* () {
    const cells: Array<CellJson> = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
      const page = yield* call<{ items: ReadonlyArray<CellJson>; nextCursor: string | null }>(
        http,
        "get",
        `/api/v1/runs/${runId}/cells?limit=1000${query}`,
        200
      )
      cells.push(...page.items)
      cursor = page.nextCursor
    } while (cursor !== null)
    return cells.sort((a, b) => a.runModelId.localeCompare(b.runModelId) || a.rowIndex - b.rowIndex)
  })

export const cellDetail = (http: Http, runId: string, cellId: string) =>
  call<CellDetailJson>(http, "get", `/api/v1/runs/${runId}/cells/${cellId}`, 200)

/** The one cell of `runModelId` (or of the only model) at `rowIndex`. */
export const cellAt = (cells: ReadonlyArray<CellJson>, rowIndex: number, runModelId?: string) => {
  const found = cells.filter(
    (c) => c.rowIndex === rowIndex && (runModelId === undefined || c.runModelId === runModelId)
  )
  if (found.length !== 1) throw new Error(`expected one cell at row ${rowIndex}, found ${found.length}`)
  return found[0]!
}

/** The cell's events by id (the order they happened in), whatever order the API listed them in. */
export const byId = (events: ReadonlyArray<EventJson>) =>
  [...events].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0))

export const eventTypes = (detail: CellDetailJson) => byId(detail.events).map((e) => e.type)

/** Milliseconds between two ISO timestamps. */
export const msBetween = (from: string, to: string) => Date.parse(to) - Date.parse(from)
