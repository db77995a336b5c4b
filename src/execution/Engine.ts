import { SqlClient } from "@effect/sql"
import {
  Cause,
  Chunk,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberSet,
  Option,
  Queue,
  type Redacted
} from "effect"
import * as os from "node:os"
import type { Provider } from "../domain/Model.ts"
import { mergeParams, type ModelParams } from "../domain/ModelParams.ts"
import type { PromptBody } from "../domain/Prompt.ts"
import { renderPrompt } from "../domain/Template.ts"
import { AppConfig } from "../layers/Config.ts"
import { ApiKeys } from "../services/ApiKeys.ts"
import { RunEvents } from "../services/RunEvents.ts"
import { orDieSql } from "../services/SqlFailure.ts"
import { throttled } from "../services/Throttled.ts"
import { EngineStats } from "./EngineStats.ts"
import { type CellUpdate, type ClaimedCell, JobQueue } from "./JobQueue.ts"
import { parseGrade, parseOutput } from "./OutputParser.ts"
import { type Completion, costOf, ProviderError } from "./Provider.ts"
import { type Gate, type GateOutcome, ProviderGates } from "./ProviderGate.ts"
import { adapterFor } from "./providers/index.ts"

/** What a run recorded of a model when it was created (see Runs.snapshotOf). */
interface ModelSnapshot {
  readonly provider: Provider
  readonly model: string
  readonly label: string
  readonly baseUrl: string | null
  readonly params: ModelParams
  readonly inputPricePerMTok: number
  readonly outputPricePerMTok: number
  readonly requestsPerMinute: number | null
  readonly tokensPerMinute: number | null
  readonly maxConcurrency: number | null
}

interface RunContext {
  readonly ownerId: string
  readonly prompt: PromptBody
  readonly grader: { readonly prompt: PromptBody; readonly model: ModelSnapshot | null } | null
  readonly models: ReadonlyMap<string, ModelSnapshot>
}

/** Rough token count for budgeting before the provider reports real usage. */
const estimateTokens = (text: string) => Math.ceil(text.length / 4)

const DEFAULT_MAX_TOKENS = 1024
/**
 * Adapters whose answer is bounded by the request's timeout by construction: the mock waits at most that long and
 * never touches the network. The engine's own deadline (a race of two more fibers per call) guards the network
 * adapters, whose SDK timeouts do not cover every way a response can stall; for the mock it would only cost.
 */
const SELF_TIMED: ReadonlySet<Provider> = new Set(["mock"])
const WRITERS = 3
/** Results in one write: large batches make few, cheap statements. */
const WRITE_BATCH = 500
/**
 * Results waiting for a writer, at most: a full batch for each. A cell whose result finds the backlog full waits
 * in its slot, so claiming slows down to the writers' pace instead of piling finished cells up in memory.
 */
const RESULT_BACKLOG = WRITERS * WRITE_BATCH
/** Claims on their way at once: while one waits for the database, the cells of the last one run. */
const CLAIMS_IN_FLIGHT = 2
/**
 * Cells in one claim, at most. A claim's `started` events wait for its statement to commit, and its cells start
 * (and, at the mock's speed, finish) together: with claims of 128 at the engine's top speed, 200 subscribers of a
 * run heard of events 50 ms after they were written (p99 120-230 ms); with 32, 30-40 ms (p99 60-85 ms), at about a
 * third less top speed (2,400-3,500 instead of 3,700-4,500 mock cells/s, same machine). With a real provider its
 * latency, not the claim size, bounds a run.
 */
const CLAIM_MAX = 32
/** How long the dispatcher reuses its list of run models with runnable cells (see `activeRunModelsNow`). */
const ACTIVE_RUN_MODELS_MS = 100
/** Runs are checked for their end at most this often while results keep coming (the first check goes at once). */
const FINISH_INTERVAL_MS = 50
const KEY_CACHE_MS = 10_000
/** The dispatcher's poll while cells run here, and the slowest it gets when none do. */
const POLL_MS = 200
const IDLE_POLL_MAX_MS = 1_000

interface ActiveRunModel {
  readonly id: string
  readonly run_id: string
  readonly runnable: number
}

/** One gate per provider endpoint, key (the owner's) and model. */
const gateKey = (ownerId: string, model: ModelSnapshot) =>
  `${model.provider}|${model.baseUrl ?? ""}|${ownerId}|${model.model}`

/** Jittered exponential backoff: 1 s, 2 s, 4 s… (±25 %), at most 60 s; the provider's retry-after wins. */
const backoffMs = (attempt: number, retryAfterMs: number | undefined) => {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 10 * 60_000)
  const base = Math.min(60_000, 1_000 * 2 ** Math.max(0, attempt - 1))
  return Math.round(base * (0.75 + Math.random() * 0.5))
}

const outcomeOf = (exit: Exit.Exit<Completion, ProviderError>): GateOutcome => {
  if (Exit.isSuccess(exit)) {
    return { _tag: "Success", usage: exit.value.usage, rateLimit: exit.value.rateLimit }
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return Exit.isInterrupted(exit) ? { _tag: "Canceled" } : { _tag: "Failed" }
  const error = failure.value
  const rateLimit = error.rateLimit ?? {}
  if (error.code === "rate_limited") return { _tag: "RateLimited", rateLimit }
  if (error.code === "overloaded") return { _tag: "Overloaded", rateLimit }
  return { _tag: "Failed" }
}

interface RunningCell {
  readonly runId: string
  fiber?: Fiber.RuntimeFiber<void, never>
}

const asText = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value))

export interface EngineShape {
  readonly worker: string
  /** New work exists (a run was created or re-queued): claim now rather than at the next poll. */
  readonly wake: Effect.Effect<void>
  /** Stops this process's in-flight calls of a run at once (other processes notice by heartbeat). */
  readonly abortRun: (runId: string) => Effect.Effect<void>
  /** Stops this process's calls of these cells (their leases were taken away). */
  readonly abortCells: (ids: ReadonlyArray<string>) => Effect.Effect<void>
  readonly inFlight: Effect.Effect<number>
}

/**
 * The run engine of this process: a dispatcher claims runnable cells for the gates that have room (so a
 * throttled provider holds no slot another could use), a bounded set of fibers runs them, a writer commits
 * results in batches, a heartbeat keeps leases alive (and aborts calls whose lease was lost, e.g. canceled),
 * and a sweeper returns expired leases from dead processes to the queue.
 */
export class Engine extends Effect.Service<Engine>()("assay/Engine", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const sql = yield* SqlClient.SqlClient
    const queue = yield* JobQueue
    const gates = yield* ProviderGates
    const keys = yield* ApiKeys
    const events = yield* RunEvents
    const stats = yield* EngineStats
    const worker = `${os.hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`
    const interruptCells = (ids: ReadonlyArray<string>) =>
      Effect.forEach(
        ids,
        (id) => {
          const entry = running.get(id)
          if (!entry?.fiber) return Effect.void
          running.delete(id)
          return Fiber.interruptFork(entry.fiber)
        },
        { discard: true }
      )
    const leaseMs = config.leaseMs

    const contexts = new Map<string, RunContext>()
    // cells claimed for a gate that have not acquired it yet: the gate does not know of them, the claim must
    const awaitingCells = new Map<string, string>()
    const awaitingGate = new Map<string, number>()
    const settleAwaiting = (cellId: string) => {
      const key = awaitingCells.get(cellId)
      if (key === undefined) return
      awaitingCells.delete(cellId)
      awaitingGate.set(key, (awaitingGate.get(key) ?? 1) - 1)
    }
    const gateTurn = new Map<string, number>()
    // a cell is in `running` from its claim until its result is queued; its fiber is known once forked
    const running = new Map<string, RunningCell>()
    const wake = yield* Queue.sliding<void>(1)
    const signal = Queue.offer(wake, undefined).pipe(Effect.asVoid)
    const fibers = yield* FiberSet.make<void, never>()

    // --- run contexts (immutable once a run exists) ---
    const loadContext = (runId: string) =>
      Effect.gen(function* () {
        const cached = contexts.get(runId)
        if (cached) return cached
        const [run] = yield* sql<{
          owner_id: string
          body: PromptBody
          grader_body: PromptBody | null
          grader_model_snapshot: ModelSnapshot | null
        }>`
          select r.owner_id, pv.body, gv.body as grader_body, r.grader_model_snapshot
          from assay.run r
          join assay.prompt_version pv on pv.id = r.prompt_version_id
          left join assay.prompt_version gv on gv.id = r.grader_prompt_version_id
          where r.id = ${runId}`
        const models = yield* sql<{ id: string; model_snapshot: ModelSnapshot }>`
          select id, model_snapshot from assay.run_model where run_id = ${runId}`
        const context: RunContext = {
          ownerId: run!.owner_id,
          prompt: run!.body,
          grader: run!.grader_body ? { prompt: run!.grader_body, model: run!.grader_model_snapshot } : null,
          models: new Map(models.map((m) => [m.id, m.model_snapshot]))
        }
        contexts.set(runId, context)
        return context
      }).pipe(orDieSql)

    // a run's model snapshots never change: each configures its gate once, not on every call
    const gateCache = new WeakMap<ModelSnapshot, Gate>()
    const gateFor = (ownerId: string, model: ModelSnapshot) =>
      Effect.suspend(() => {
        const cached = gateCache.get(model)
        if (cached !== undefined) return Effect.succeed(cached)
        return gates
          .get(gateKey(ownerId, model), {
            requestsPerMinute: model.requestsPerMinute ?? undefined,
            tokensPerMinute: model.tokensPerMinute ?? undefined,
            maxConcurrency: model.maxConcurrency ?? undefined
          })
          .pipe(Effect.tap((gate) => Effect.sync(() => gateCache.set(model, gate))))
      })

    // Keys change rarely; resolving one per call would cost a query per cell. The lookup itself is shared: the
    // cells that start together at the beginning of a run wait for one query instead of each sending its own.
    type KeyLookup = Effect.Effect<
      Redacted.Redacted<string> | undefined,
      Effect.Effect.Error<ReturnType<typeof keys.resolve>>
    >
    const keyCache = new Map<string, { readonly key: KeyLookup; readonly until: number }>()
    const keyFor = (ownerId: string, provider: Provider) =>
      Effect.suspend(() => {
        const cacheKey = `${ownerId}|${provider}`
        const cached = keyCache.get(cacheKey)
        if (cached && cached.until > Date.now()) return cached.key
        return Effect.flatMap(
          Effect.cached(keys.resolve(ownerId as never, provider).pipe(Effect.map(Option.getOrUndefined))),
          (shared) => {
            // a failed lookup is not remembered: the next cell asks again
            const key = Effect.tapError(shared, () => Effect.sync(() => keyCache.delete(cacheKey)))
            keyCache.set(cacheKey, { key, until: Date.now() + KEY_CACHE_MS })
            return key
          }
        )
      })

    // --- the writers: results of many cells in one statement ---
    const results = yield* Queue.bounded<CellUpdate>(RESULT_BACKLOG)
    const writeBatch = (batch: ReadonlyArray<CellUpdate>) =>
      queue.complete(worker, batch).pipe(
        // subscribers hear of the results first: finishing the runs is the finisher's
        Effect.tap((done) => events.publishCommitted(done.events)),
        Effect.flatMap((done) => finishSoon(done.finalRuns))
      )

    // --- the finisher: runs some of whose cells reached a final status are checked for their end, all of them
    // in one statement, at once and then at most every FINISH_INTERVAL_MS (a statement per result batch was a
    // fifth of the engine's statements at top speed) ---
    const toFinish = new Set<string>()
    const finishAsked: Effect.Effect<void> = yield* throttled(
      FINISH_INTERVAL_MS,
      Effect.suspend(() => {
        const runIds = [...toFinish]
        toFinish.clear()
        return queue.finishRuns(runIds).pipe(
          Effect.map((finished) => {
            for (const runId of finished) contexts.delete(runId)
          }),
          Effect.catchAllCause((cause) =>
            Effect.logError("engine: finishing runs failed", cause).pipe(Effect.zipRight(finishSoon(runIds)))
          )
        )
      })
    )
    const finishSoon = (runIds: ReadonlyArray<string>) =>
      runIds.length === 0
        ? Effect.void
        : Effect.suspend(() => {
            for (const runId of runIds) toFinish.add(runId)
            return finishAsked
          })
    const writer = Effect.gen(function* () {
      const first = yield* Queue.take(results)
      const rest = yield* Queue.takeUpTo(results, WRITE_BATCH - 1)
      yield* writeBatch([first, ...Chunk.toReadonlyArray(rest)]).pipe(
        Effect.catchAllCause((cause) => Effect.logError("engine: writing results failed", cause))
      )
      yield* signal
    }).pipe(Effect.forever)

    const finish = (update: CellUpdate) => Queue.offer(results, update)

    // --- one provider call through its gate ---
    const call = (
      context: RunContext,
      model: ModelSnapshot,
      prompt: { readonly system: string; readonly user: string },
      params: ModelParams,
      attempt: number,
      cellId?: string
    ) =>
      Effect.gen(function* () {
        const gate: Gate = yield* gateFor(context.ownerId, model)
        const apiKey: Redacted.Redacted<string> | undefined = yield* keyFor(context.ownerId, model.provider)
        const maxTokens = params.max_tokens ?? DEFAULT_MAX_TOKENS
        const permit = yield* gate
          .acquire(estimateTokens(prompt.system + prompt.user) + maxTokens)
          .pipe(
            Effect.ensuring(cellId === undefined ? Effect.void : Effect.sync(() => settleAwaiting(cellId)))
          )
        const answer = adapterFor(model.provider).complete({
          provider: model.provider,
          model: model.model,
          baseUrl: model.baseUrl,
          apiKey,
          system: prompt.system,
          user: prompt.user,
          params,
          attempt,
          timeout: Duration.millis(config.providerTimeoutMs)
        })
        const exit = yield* (
          SELF_TIMED.has(model.provider)
            ? answer
            : Effect.timeoutFail(answer, {
                duration: Duration.millis(config.providerTimeoutMs + 5_000),
                onTimeout: () =>
                  new ProviderError({ code: "timeout", message: "The provider did not answer in time." })
              })
        ).pipe(
          Effect.onInterrupt(() => permit.release({ _tag: "Canceled" })),
          Effect.exit
        )
        yield* permit.release(outcomeOf(exit))
        stats.recordCall(model.provider, exit)
        return yield* exit
      })

    /** Grades a successful output; an unreadable or failed grading is recorded on the cell, never a crash. */
    const grade = (
      context: RunContext,
      cellModel: ModelSnapshot,
      variables: Record<string, unknown>,
      rendered: { readonly system: string; readonly user: string },
      completion: Completion,
      parsedValue: unknown,
      attempt: number
    ) =>
      Effect.gen(function* () {
        const grader = context.grader!
        const graderModel = grader.model ?? cellModel
        const graderVariables = {
          ...variables,
          output: asText(parsedValue),
          raw_output: completion.text,
          input: rendered.system === "" ? rendered.user : `${rendered.system}\n\n${rendered.user}`
        }
        const graderPrompt = renderPrompt(
          { system: grader.prompt.systemText, template: grader.prompt.userTemplate },
          graderVariables
        )
        if (Either.isLeft(graderPrompt)) {
          return { gradeError: graderPrompt.left.message } as const
        }
        const reply = yield* call(
          context,
          graderModel,
          { system: graderPrompt.right.system, user: graderPrompt.right.template },
          mergeParams(graderModel.params, grader.prompt.defaultParams),
          attempt
        ).pipe(Effect.retry({ times: 2, while: (e) => e.retryable }), Effect.either)
        if (Either.isLeft(reply)) return { gradeError: `${reply.left.code}: ${reply.left.message}` } as const
        const verdict = parseGrade(reply.right.text)
        return {
          reply: reply.right,
          verdict
        } as const
      })

    // --- one cell, start to finish ---
    const execute = (cell: ClaimedCell) =>
      Effect.gen(function* () {
        const context = yield* loadContext(cell.runId)
        const model = context.models.get(cell.runModelId)!
        const variables = cell.rowValues ?? {}
        const rendered = renderPrompt(
          { system: context.prompt.systemText, template: context.prompt.userTemplate },
          variables
        )
        if (Either.isLeft(rendered)) {
          return yield* finish({
            id: cell.id,
            status: "failed",
            errorCode: rendered.left.code,
            errorMessage: rendered.left.message,
            events: [
              { type: "failed", payload: { code: rendered.left.code, message: rendered.left.message } }
            ]
          })
        }
        const prompt = { system: rendered.right.system, user: rendered.right.template }
        const renderedPrompt = { system: prompt.system, user: prompt.user }
        const result = yield* call(
          context,
          model,
          prompt,
          mergeParams(model.params, context.prompt.defaultParams),
          cell.attempt,
          cell.id
        ).pipe(Effect.either)
        if (Either.isLeft(result)) {
          const error = result.left
          const retry = error.retryable && cell.attempt < cell.maxAttempts
          const payload = {
            code: error.code,
            message: error.message,
            attempt: cell.attempt,
            status: error.status
          }
          if (retry) {
            const delay = backoffMs(cell.attempt, error.rateLimit?.retryAfterMs)
            stats.recordRetry(model.provider)
            return yield* finish({
              id: cell.id,
              status: "queued",
              retryInMs: delay,
              renderedPrompt,
              errorCode: error.code,
              errorMessage: error.message,
              events: [{ type: "retrying", payload: { ...payload, delayMs: delay } }]
            })
          }
          return yield* finish({
            id: cell.id,
            status: "failed",
            renderedPrompt,
            errorCode: error.code,
            errorMessage: error.message,
            events: [{ type: "failed", payload }]
          })
        }
        const completion = result.right
        const parsed = parseOutput(completion.text)
        const costUsd = costOf(completion.usage, {
          input: model.inputPricePerMTok,
          output: model.outputPricePerMTok
        })
        const succeeded = {
          type: "succeeded",
          payload: {
            latencyMs: completion.latencyMs,
            tokensIn: completion.usage.inputTokens,
            tokensOut: completion.usage.outputTokens,
            costUsd,
            requestId: completion.requestId
          }
        }
        const base = {
          id: cell.id,
          status: "succeeded" as const,
          renderedPrompt,
          outputRaw: completion.text,
          outputParsed: parsed,
          tokensIn: completion.usage.inputTokens,
          tokensOut: completion.usage.outputTokens,
          costUsd,
          latencyMs: completion.latencyMs
        }
        if (context.grader === null) return yield* finish({ ...base, events: [succeeded] })

        const graded = yield* grade(context, model, variables, prompt, completion, parsed.value, cell.attempt)
        if ("gradeError" in graded) {
          return yield* finish({
            ...base,
            gradeError: graded.gradeError,
            events: [succeeded, { type: "grader_failed", payload: { message: graded.gradeError } }]
          })
        }
        const graderCost = costOf(graded.reply.usage, {
          input: (context.grader.model ?? model).inputPricePerMTok,
          output: (context.grader.model ?? model).outputPricePerMTok
        })
        const graderUsage = {
          graderOutputRaw: graded.reply.text,
          graderTokensIn: graded.reply.usage.inputTokens,
          graderTokensOut: graded.reply.usage.outputTokens,
          costUsd: Math.round((costUsd + graderCost) * 1e10) / 1e10
        }
        if (Either.isLeft(graded.verdict)) {
          return yield* finish({
            ...base,
            ...graderUsage,
            gradeError: graded.verdict.left.message,
            events: [succeeded, { type: "grader_failed", payload: { message: graded.verdict.left.message } }]
          })
        }
        const verdict = graded.verdict.right
        return yield* finish({
          ...base,
          ...graderUsage,
          grade: verdict.grade,
          gradeScore: verdict.score,
          gradeReason: verdict.reason,
          events: [
            succeeded,
            {
              type: "grader_succeeded",
              payload: { grade: verdict.grade, score: verdict.score, reason: verdict.reason }
            }
          ]
        })
      })

    const runCell = (cell: ClaimedCell) =>
      execute(cell).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError("engine: cell failed unexpectedly", cause).pipe(
                Effect.zipRight(
                  finish({
                    id: cell.id,
                    status: "failed",
                    errorCode: "internal_error",
                    errorMessage: "The engine failed on this cell; see the server log.",
                    events: [{ type: "failed", payload: { code: "internal_error" } }]
                  })
                )
              )
        ),
        Effect.asVoid,
        Effect.ensuring(
          Effect.sync(() => {
            running.delete(cell.id)
            settleAwaiting(cell.id)
          }).pipe(Effect.zipRight(signal))
        )
      )

    // --- the dispatcher: claim what the gates can take now, fairly across runs ---
    /** Run models of active runs with a cell runnable now; `runnable` caps each claim (a cheap bound). */
    const activeRunModels = sql<ActiveRunModel>`
      select rm.id, rm.run_id, ${config.workers}::int as runnable
      from assay.run r
      join assay.run_model rm on rm.run_id = r.id
      -- the first runnable cell in the claim order, as a claim finds it (an EXISTS may be planned as a scan of
      -- all the run model's cells, claimed or not)
      cross join lateral (
        select 1 from assay.run_cell c
        where c.run_model_id = rm.id and c.status = 'queued' and c.next_attempt_at <= now()
        order by c.next_attempt_at, c.row_index
        limit 1
      ) runnable
      where r.status in ('queued', 'running')
      order by r.created_at, rm.display_order`.pipe(orDieSql)
    // the last answer of `activeRunModels`, reused for ACTIVE_RUN_MODELS_MS: at top speed a claim goes out every
    // few milliseconds, and asking before each was a statement per claim. Dropped when a claim finds fewer cells
    // than it asked for (a run model ran out, or another process took them) and when the engine is woken from
    // outside (a new run, a re-run, a cancel).
    let knownRunModels: { readonly at: number; readonly rows: ReadonlyArray<ActiveRunModel> } | null = null
    const forgetRunModels = Effect.sync(() => {
      knownRunModels = null
    })
    const activeRunModelsNow = Effect.suspend(() => {
      const known = knownRunModels
      if (known !== null && Date.now() - known.at < ACTIVE_RUN_MODELS_MS) return Effect.succeed(known.rows)
      const at = Date.now()
      return Effect.tap(activeRunModels, (rows) =>
        Effect.sync(() => {
          knownRunModels = { at, rows }
        })
      )
    })
    let rotation = 0
    // claims on their way and the slots they may fill (their gates' shares are in `awaitingGate` meanwhile)
    let claiming = 0
    let reserved = 0

    interface Claim {
      readonly quotas: ReadonlyArray<{ readonly runModelId: string; readonly limit: number }>
      readonly gateOf: ReadonlyMap<string, string>
      readonly total: number
    }

    /** Plans a claim for the slots and gate room free now, or none. */
    const plan = Effect.gen(function* () {
      // one claim takes at most a share of the pool (so the next one can be on its way while these cells run)
      // and at most CLAIM_MAX cells
      const free = Math.min(
        config.workers - running.size - reserved,
        Math.ceil(config.workers / CLAIMS_IN_FLIGHT),
        CLAIM_MAX
      )
      if (free <= 0) return undefined
      const runModelsNow = yield* activeRunModelsNow
      if (runModelsNow.length === 0) return undefined
      // group the run models by gate; within a gate, share its room equally between run models (so runs
      // share it round-robin); gates take turns at the process-wide budget
      const byGate = new Map<
        string,
        { key: string; gate: Gate; runModels: Array<{ id: string; runnable: number }> }
      >()
      for (const rm of runModelsNow) {
        const context = yield* loadContext(rm.run_id)
        const model = context.models.get(rm.id)
        if (!model) continue
        const key = gateKey(context.ownerId, model)
        const entry = byGate.get(key) ?? { key, gate: yield* gateFor(context.ownerId, model), runModels: [] }
        entry.runModels.push({ id: rm.id, runnable: rm.runnable })
        byGate.set(key, entry)
      }
      const gateList = [...byGate.values()]
      rotation = (rotation + 1) % Math.max(1, gateList.length)
      const ordered = [...gateList.slice(rotation), ...gateList.slice(0, rotation)]
      let budget = free
      const quotas: Array<{ runModelId: string; limit: number }> = []
      const gateOf = new Map<string, string>()
      for (const { key, gate, runModels: inOrder } of ordered) {
        if (budget <= 0) break
        // run models take turns at being first, so a small run is not starved by older ones on the same gate
        const turn = ((gateTurn.get(key) ?? -1) + 1) % inOrder.length
        gateTurn.set(key, turn)
        const runModels = [...inOrder.slice(turn), ...inOrder.slice(0, turn)]
        for (const rm of runModels) gateOf.set(rm.id, key)
        const wanted = runModels.reduce((sum, rm) => sum + rm.runnable, 0)
        let left = Math.min((yield* gate.available) - (awaitingGate.get(key) ?? 0), budget, wanted)
        if (left <= 0) continue
        budget -= left
        // equal shares, the leftover of small run models going to the others
        let open = runModels.filter((rm) => rm.runnable > 0)
        const limits = new Map<string, number>()
        while (left > 0 && open.length > 0) {
          const share = Math.max(1, Math.floor(left / open.length))
          for (const rm of open) {
            if (left <= 0) break
            const given = limits.get(rm.id) ?? 0
            const add = Math.min(share, rm.runnable - given, left)
            limits.set(rm.id, given + add)
            left -= add
          }
          open = open.filter((rm) => (limits.get(rm.id) ?? 0) < rm.runnable)
        }
        for (const [runModelId, limit] of limits) if (limit > 0) quotas.push({ runModelId, limit })
      }
      if (quotas.length === 0) return undefined
      const claim: Claim = { quotas, gateOf, total: quotas.reduce((sum, q) => sum + q.limit, 0) }
      return claim
    })

    const addAwaiting = (key: string, n: number) => awaitingGate.set(key, (awaitingGate.get(key) ?? 0) + n)

    /** Runs a planned claim: its slots and gate shares are held until the claimed cells take them over. */
    const runClaim = (claim: Claim) => {
      let held = true
      const unhold = () => {
        if (!held) return
        held = false
        claiming--
        reserved -= claim.total
        for (const q of claim.quotas) {
          const key = claim.gateOf.get(q.runModelId)
          if (key !== undefined) addAwaiting(key, -q.limit)
        }
      }
      claiming++
      reserved += claim.total
      for (const q of claim.quotas) {
        const key = claim.gateOf.get(q.runModelId)
        if (key !== undefined) addAwaiting(key, q.limit)
      }
      return queue.claim(worker, claim.quotas, leaseMs).pipe(
        Effect.flatMap((claimed) =>
          Effect.gen(function* () {
            // in one step: the reservation ends and the claimed cells take their slots and gate shares
            const cells = claimed.cells
            if (cells.length < claim.total) yield* forgetRunModels
            yield* Effect.sync(() => {
              unhold()
              for (const cell of cells) {
                const key = claim.gateOf.get(cell.runModelId)
                if (key !== undefined) {
                  awaitingCells.set(cell.id, key)
                  addAwaiting(key, 1)
                }
                running.set(cell.id, { runId: cell.runId })
              }
            })
            yield* events.publishCommitted(claimed.events)
            for (const cell of cells) {
              const entry = running.get(cell.id)
              if (entry !== undefined) entry.fiber = yield* FiberSet.run(fibers, runCell(cell))
            }
          })
        ),
        Effect.catchAllCause((cause) => Effect.logError("engine: claim failed", cause)),
        Effect.ensuring(Effect.sync(unhold).pipe(Effect.zipRight(signal)))
      )
    }

    /** Starts a claim when there is room for one; tells whether it did. */
    const dispatchOnce = Effect.gen(function* () {
      if (claiming >= CLAIMS_IN_FLIGHT) return false
      const claim = yield* plan
      if (claim === undefined) return false
      yield* FiberSet.run(fibers, runClaim(claim))
      return true
    })

    let idlePolls = 0
    const dispatcher = Effect.gen(function* () {
      const started = yield* dispatchOnce.pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("engine: dispatch failed", cause).pipe(Effect.as(false))
        )
      )
      // nothing to do, or no room: sleep until something changes (a result, a claim, a new run), a gate gets
      // room with time alone (a pause ends, a bucket refills, a cold gate's ramp widens), or a poll (for work
      // from other processes and retries coming due). With nothing running here the poll slows down to once a
      // second: on embedded PGlite each poll is CPU in this process, and an idle server should cost nothing.
      if (started) idlePolls = 0
      else {
        const opensInMs = yield* gates.opensInMs
        const idle = running.size === 0 && claiming === 0
        const pollMs = idle ? Math.min(IDLE_POLL_MAX_MS, POLL_MS * 2 ** idlePolls) : POLL_MS
        const woken = yield* Queue.take(wake).pipe(
          Effect.timeout(Duration.millis(Math.min(pollMs, opensInMs ?? pollMs))),
          Effect.option
        )
        idlePolls = Option.isSome(woken) || !idle ? 0 : idlePolls + 1
      }
    }).pipe(Effect.forever)

    // --- leases: extend ours, abort what we lost; return expired ones of dead workers ---
    const heartbeat = Effect.gen(function* () {
      yield* Effect.sleep(Duration.millis(Math.max(50, Math.floor(leaseMs / 3))))
      const ids = [...running.keys()]
      const held = yield* queue.heartbeat(worker, ids, leaseMs)
      yield* interruptCells(ids.filter((id) => !held.has(id)))
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError("engine: heartbeat failed", cause)),
      Effect.forever
    )

    const sweeper = Effect.gen(function* () {
      yield* Effect.sleep(Duration.millis(Math.min(5_000, leaseMs)))
      const swept = yield* queue.sweep()
      // batches that commit at the same moment can each see the other's cells as unfinished: settle runs here
      const settled = yield* queue.settleRuns
      for (const finished of settled) contexts.delete(finished)
      for (const finished of swept.finishedRuns) contexts.delete(finished)
      yield* events.publishCommitted(swept.events)
      if (swept.events.length > 0) yield* signal
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError("engine: sweep failed", cause)),
      Effect.forever
    )

    if (!config.engine) {
      yield* Effect.logInfo("engine off in this process (ASSAY_ENGINE=false)")
      const off: EngineShape = {
        worker,
        wake: Effect.void,
        abortRun: () => Effect.void,
        abortCells: () => Effect.void,
        inFlight: Effect.succeed(0)
      }
      return off
    }
    // on shutdown (added before the loops are forked, so it runs after they are interrupted): stop running
    // cells and hand them back at once instead of waiting for their leases to expire
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* FiberSet.clear(fibers)
        const released = yield* queue.release(worker)
        yield* Effect.logInfo("engine stopped").pipe(Effect.annotateLogs({ worker, released }))
      }).pipe(Effect.catchAllCause((cause) => Effect.logError("engine: release on shutdown failed", cause)))
    )
    // several writers: result batches commit in parallel (each is fenced on its own cells' leases)
    for (let i = 0; i < WRITERS; i++) yield* Effect.forkScoped(writer)
    yield* Effect.forkScoped(dispatcher)
    yield* Effect.forkScoped(heartbeat)
    yield* Effect.forkScoped(sweeper)
    yield* Effect.logInfo("engine started").pipe(Effect.annotateLogs({ worker, workers: config.workers }))

    const on: EngineShape = {
      worker,
      wake: Effect.zipRight(forgetRunModels, signal),
      abortRun: (runId) =>
        interruptCells([...running.entries()].filter(([, entry]) => entry.runId === runId).map(([id]) => id)),
      abortCells: interruptCells,
      inFlight: Effect.sync(() => running.size)
    }
    return on
  })
}) {}
