import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Option } from "effect"
import { NotFound, Unprocessable } from "../domain/Errors.ts"
import type {
  DatasetId,
  ModelConfigId,
  PromptId,
  PromptVersionId,
  RunCellId,
  RunId,
  RunModelId,
  UserId
} from "../domain/Ids.ts"
import type { ModelConfig } from "../domain/Model.ts"
import type { Page } from "../domain/Page.ts"
import { GRADER_VARIABLES } from "../domain/Template.ts"
import {
  type ActiveMetric,
  type CellCounts,
  type CellStatus,
  MAX_MODELS_PER_RUN,
  Run,
  type RunCreate,
  type RunModel,
  type RunStatus
} from "../domain/Run.ts"
import type { Provider } from "../domain/Model.ts"
import { decodeCursor, pageOf, pageSize } from "./Cursor.ts"
import { Datasets } from "./Datasets.ts"
import { Models } from "./Models.ts"
import { Prompts } from "./Prompts.ts"
import { Engine } from "../execution/Engine.ts"
import { JobQueue, type WrittenEvent } from "../execution/JobQueue.ts"
import { AppConfig } from "../layers/Config.ts"
import { createdAtMs, RunEvents } from "./RunEvents.ts"
import { orDieSql } from "./SqlFailure.ts"

interface RunRow {
  readonly id: string
  readonly prompt_id: string
  readonly prompt_version_id: string
  readonly dataset_id: string | null
  readonly grader_prompt_version_id: string | null
  readonly grader_model_config_id: string | null
  readonly status: RunStatus
  readonly active_metric: ActiveMetric
  readonly error: string | null
  readonly created_at: Date
  readonly started_at: Date | null
  readonly completed_at: Date | null
}

interface RunModelRow {
  readonly id: string
  readonly run_id: string
  readonly model_config_id: string
  readonly display_order: number
  readonly model_snapshot: { readonly provider: Provider; readonly model: string; readonly label: string }
}

interface CountRow {
  readonly run_model_id: string
  readonly status: CellStatus
  readonly n: number
}

const emptyCounts = (): { -readonly [K in keyof CellCounts]: number } => ({
  total: 0,
  queued: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  canceled: 0
})

/** What a run records of a model: enough to know what ran even if the config changes later. */
const snapshotOf = (model: ModelConfig) => ({
  provider: model.provider,
  model: model.model,
  label: model.label,
  baseUrl: model.baseUrl,
  params: model.params,
  inputPricePerMTok: model.inputPricePerMTok,
  outputPricePerMTok: model.outputPricePerMTok,
  requestsPerMinute: model.requestsPerMinute,
  tokensPerMinute: model.tokensPerMinute,
  maxConcurrency: model.maxConcurrency
})

const missingFrom = (needed: ReadonlyArray<string>, available: ReadonlySet<string>) =>
  needed.filter((name) => !available.has(name))

/**
 * Run creation and reading. Creating a run validates the whole request first (prompt, models, dataset
 * columns, grader), then writes the run, its models and one queued cell per row × model in one transaction.
 */
export class Runs extends Effect.Service<Runs>()("assay/Runs", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const prompts = yield* Prompts
    const datasets = yield* Datasets
    const models = yield* Models
    const config = yield* AppConfig
    const queue = yield* JobQueue
    const events = yield* RunEvents

    const toRun = (row: RunRow, runModels: ReadonlyArray<RunModelRow>, counts: ReadonlyArray<CountRow>) => {
      const total = emptyCounts()
      const byModel = new Map<string, ReturnType<typeof emptyCounts>>()
      for (const count of counts) {
        const perModel = byModel.get(count.run_model_id) ?? emptyCounts()
        perModel[count.status] += count.n
        perModel.total += count.n
        byModel.set(count.run_model_id, perModel)
        total[count.status] += count.n
        total.total += count.n
      }
      const modelsOut: Array<RunModel> = runModels
        .filter((m) => m.run_id === row.id)
        .map((m) => ({
          id: m.id as RunModelId,
          modelConfigId: m.model_config_id as ModelConfigId,
          displayOrder: m.display_order,
          provider: m.model_snapshot.provider,
          model: m.model_snapshot.model,
          label: m.model_snapshot.label,
          counts: byModel.get(m.id) ?? emptyCounts()
        }))
      return new Run({
        id: row.id as RunId,
        promptId: row.prompt_id as PromptId,
        promptVersionId: row.prompt_version_id as PromptVersionId,
        datasetId: row.dataset_id as DatasetId | null,
        graderPromptVersionId: row.grader_prompt_version_id as PromptVersionId | null,
        graderModelConfigId: row.grader_model_config_id as ModelConfigId | null,
        status: row.status,
        activeMetric: row.active_metric,
        error: row.error,
        models: modelsOut,
        counts: total,
        createdAt: DateTime.unsafeFromDate(row.created_at),
        startedAt: row.started_at ? DateTime.unsafeFromDate(row.started_at) : null,
        completedAt: row.completed_at ? DateTime.unsafeFromDate(row.completed_at) : null
      })
    }

    /** The runs with their models and cell counts, in the order of `rows`. */
    const hydrate = (rows: ReadonlyArray<RunRow>) =>
      Effect.gen(function* () {
        if (rows.length === 0) return []
        const ids = rows.map((r) => r.id)
        const runModels = yield* sql<RunModelRow>`
          select id, run_id, model_config_id, display_order, model_snapshot
          from assay.run_model where ${sql.in("run_id", ids)} order by display_order`
        const counts = yield* sql<CountRow & { run_id: string }>`
          select run_id, run_model_id, status, count(*)::int as n
          from assay.run_cell where ${sql.in("run_id", ids)} group by run_id, run_model_id, status`
        return rows.map((row) =>
          toRun(
            row,
            runModels,
            counts.filter((c) => c.run_id === row.id)
          )
        )
      })

    const runColumns = sql`id, prompt_id, prompt_version_id, dataset_id, grader_prompt_version_id,
      grader_model_config_id, status,
      active_metric, error, created_at, started_at, completed_at`

    const get = Effect.fn("Runs.get")(function* (owner: UserId, id: RunId) {
      const rows = yield* sql<RunRow>`
        select ${runColumns} from assay.run where id = ${id} and owner_id = ${owner}`.pipe(orDieSql)
      if (rows.length === 0) return yield* new NotFound({ code: "run_not_found", message: "No such run." })
      const [run] = yield* hydrate(rows).pipe(orDieSql)
      return run!
    })

    const list = Effect.fn("Runs.list")(function* (
      owner: UserId,
      params: {
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
        readonly promptId?: PromptId | undefined
      }
    ) {
      const after = yield* decodeCursor(params.cursor)
      const limit = pageSize(params.limit)
      const rows = yield* sql<RunRow>`
        select ${runColumns} from assay.run
        where owner_id = ${owner}
          ${params.promptId ? sql`and prompt_id = ${params.promptId}` : sql``}
          ${after ? sql`and (created_at, id) < (${after.at}, ${after.id})` : sql``}
        order by created_at desc, id desc
        limit ${limit + 1}`.pipe(orDieSql)
      const page = pageOf(
        rows,
        limit,
        (r) => ({ at: r.created_at, id: r.id }),
        (r) => r
      )
      const items = yield* hydrate(page.items).pipe(orDieSql)
      return { items, nextCursor: page.nextCursor } satisfies Page<Run>
    })

    const create = Effect.fn("Runs.create")(function* (owner: UserId, input: RunCreate) {
      const modelIds = input.modelIds
      if (modelIds.length === 0) {
        return yield* new Unprocessable({ code: "no_models", message: "Pick at least one model." })
      }
      if (modelIds.length > MAX_MODELS_PER_RUN) {
        return yield* new Unprocessable({
          code: "too_many_models",
          message: `A run compares at most ${MAX_MODELS_PER_RUN} models; ${modelIds.length} were given.`,
          details: { max: MAX_MODELS_PER_RUN, given: modelIds.length }
        })
      }
      if (new Set(modelIds).size !== modelIds.length) {
        return yield* new Unprocessable({
          code: "duplicate_models",
          message: "Each model may appear once in a run."
        })
      }

      const prompt = yield* prompts.get(owner, input.promptId)
      if (prompt.type !== "generator") {
        return yield* new Unprocessable({
          code: "not_a_generator",
          message: `"${prompt.name}" is a grader prompt; runs start from a generator prompt.`
        })
      }
      const configs = yield* models.getMany(owner, modelIds)

      const columns = new Set<string>()
      if (input.datasetId !== null) {
        const dataset = yield* datasets.rows(owner, input.datasetId)
        if (dataset.rowCount === 0) {
          return yield* new Unprocessable({ code: "empty_dataset", message: "The dataset has no rows." })
        }
        dataset.headers.forEach((h) => columns.add(h))
        const missing = missingFrom(prompt.placeholders, columns)
        if (missing.length > 0) {
          return yield* new Unprocessable({
            code: "missing_columns",
            message: `The prompt uses placeholders the dataset has no column for: ${missing.join(", ")}.`,
            details: { missing_columns: missing, prompt: "generator" }
          })
        }
      } else if (prompt.placeholders.length > 0) {
        return yield* new Unprocessable({
          code: "dataset_required",
          message: `The prompt has placeholders (${prompt.placeholders.join(", ")}); pick a dataset with those columns.`,
          details: { placeholders: prompt.placeholders }
        })
      }

      if (input.graderModelId !== null && input.graderPromptId === null) {
        return yield* new Unprocessable({
          code: "grader_model_without_grader",
          message: "A grader model needs a grader prompt."
        })
      }
      const graderModel = input.graderModelId === null ? null : yield* models.get(owner, input.graderModelId)
      if (input.graderPromptId !== null) {
        const grader = yield* prompts.get(owner, input.graderPromptId)
        if (grader.type !== "grader") {
          return yield* new Unprocessable({
            code: "not_a_grader",
            message: `"${grader.name}" is a generator prompt; the grader must be a grader prompt.`
          })
        }
        const available = new Set<string>([...columns, ...GRADER_VARIABLES])
        const missing = missingFrom(grader.placeholders, available)
        if (missing.length > 0) {
          return yield* new Unprocessable({
            code: "missing_columns",
            message: `The grader uses placeholders that are neither dataset columns nor grader variables: ${missing.join(", ")}.`,
            details: { missing_columns: missing, prompt: "grader" }
          })
        }
      }

      const [runId, queued] = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const version = yield* prompts.freeze(owner, input.promptId)
            const graderVersion =
              input.graderPromptId === null ? null : yield* prompts.freeze(owner, input.graderPromptId)
            const [run] = yield* sql<{ id: string }>`
              insert into assay.run (owner_id, prompt_id, prompt_version_id, dataset_id, grader_prompt_version_id,
                                     grader_model_config_id, grader_model_snapshot, active_metric)
              values (${owner}, ${input.promptId}, ${version.id}, ${input.datasetId},
                      ${graderVersion?.id ?? null}, ${graderModel?.id ?? null},
                      ${graderModel ? JSON.stringify(snapshotOf(graderModel)) : null}::jsonb,
                      ${input.activeMetric ?? (graderVersion ? "combined_pass_rate" : "latency")})
              returning id`
            const id = run!.id
            // the version remembers the first run that used it
            yield* sql`update assay.prompt_version set run_id = ${id}
                       where run_id is null and ${sql.in("id", [version.id, ...(graderVersion ? [graderVersion.id] : [])])}`
            for (const [order, config] of configs.entries()) {
              yield* sql`
                insert into assay.run_model (run_id, model_config_id, display_order, model_snapshot)
                values (${id}, ${config.id}, ${order}, ${JSON.stringify(snapshotOf(config))}::jsonb)`
            }
            // the cells and their `queued` events in one statement: the events come from the inserted rows,
            // with no second pass over the run's cells
            const cells =
              input.datasetId !== null
                ? sql`
                  insert into assay.run_cell (run_id, run_model_id, dataset_row_id, row_index, max_attempts)
                  select ${id}, rm.id, dr.id, dr.row_index, ${config.maxAttempts}
                  from assay.run_model rm cross join assay.dataset_row dr
                  where rm.run_id = ${id} and dr.dataset_id = ${input.datasetId}
                  returning id, run_model_id, row_index`
                : sql`
                  insert into assay.run_cell (run_id, run_model_id, dataset_row_id, row_index, max_attempts)
                  select ${id}, rm.id, null, 0, ${config.maxAttempts} from assay.run_model rm where rm.run_id = ${id}
                  returning id, run_model_id, row_index`
            const queued = yield* sql<{ id: string; run_cell_id: string; at: number }>`
              with cells as (${cells}),
              inserted as (
                insert into assay.run_cell_event (run_id, run_cell_id, event_type)
                select ${id}, c.id, 'queued' from cells c
                join assay.run_model rm on rm.id = c.run_model_id
                order by c.row_index, rm.display_order
                returning id, run_cell_id, created_at
              )
              select id::text as id, run_cell_id, ${createdAtMs(sql, "inserted")} as at
              from inserted order by inserted.id`
            return [id as RunId, queued] as const
          })
        )
        .pipe(orDieSql)
      // the live feed sequences the run's `queued` events now: a snapshot of the new run (its cells'
      // `lastEventId`) covers them, and a subscriber following from it does not replay them from the table
      yield* events.publishCommitted(
        queued.map((row) => ({
          id: row.id,
          runId,
          cellId: row.run_cell_id,
          type: "queued",
          payload: {},
          createdAt: DateTime.unsafeMake(row.at)
        }))
      )
      return yield* get(owner, runId)
    })

    /** The engine of this process, when it runs one: woken for new work, told to abort what it runs. */
    const engine = Effect.serviceOption(Engine)
    const afterChange = (runId: RunId, written: ReadonlyArray<WrittenEvent>, abort: boolean) =>
      Effect.gen(function* () {
        yield* events.publishCommitted(written)
        const local = yield* engine
        if (Option.isSome(local)) {
          if (abort) yield* local.value.abortRun(runId)
          yield* local.value.wake
        }
      })

    const cancel = Effect.fn("Runs.cancel")(function* (owner: UserId, id: RunId) {
      yield* get(owner, id)
      const written = yield* queue.cancelRun(id)
      yield* afterChange(id, written, true)
      return yield* get(owner, id)
    })

    const rerunFailed = Effect.fn("Runs.rerunFailed")(function* (owner: UserId, id: RunId) {
      yield* get(owner, id)
      const written = yield* queue.requeue(id, { failed: true })
      yield* afterChange(id, written, false)
      return yield* get(owner, id)
    })

    const rerunCell = Effect.fn("Runs.rerunCell")(function* (owner: UserId, id: RunId, cellId: RunCellId) {
      yield* get(owner, id)
      const written = yield* queue.requeue(id, { cellIds: [cellId] })
      if (written.length === 0) {
        return yield* new NotFound({ code: "cell_not_found", message: "No such cell in this run." })
      }
      // a running cell was taken from its worker; stop that call here if it runs in this process
      const local = yield* engine
      if (Option.isSome(local)) yield* local.value.abortCells([cellId])
      yield* afterChange(id, written, false)
      return yield* get(owner, id)
    })

    const createAndWake = Effect.fn("Runs.create")(function* (owner: UserId, input: RunCreate) {
      const run = yield* create(owner, input)
      const local = yield* engine
      if (Option.isSome(local)) yield* local.value.wake
      return run
    })

    return { create: createAndWake, get, list, cancel, rerunFailed, rerunCell } as const
  })
}) {}
