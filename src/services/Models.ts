import { SqlClient } from "@effect/sql"
import { DateTime, Effect } from "effect"
import { BadRequest, Conflict, NotFound } from "../domain/Errors.ts"
import { ModelConfigId, type UserId } from "../domain/Ids.ts"
import {
  ModelConfig,
  type ModelConfigCreate,
  type ModelConfigUpdate,
  type Provider
} from "../domain/Model.ts"
import type { ModelParams } from "../domain/ModelParams.ts"
import { FOREIGN_KEY_VIOLATION, mapSqlFailure, orDieSql, UNIQUE_VIOLATION } from "./SqlFailure.ts"

export interface DefaultModel {
  readonly provider: Provider
  readonly model: string
  readonly label: string
  readonly inputPricePerMTok: number
  readonly outputPricePerMTok: number
  readonly isDefault: boolean
}

/**
 * What `seedDefaults` adds: the mock, and current OpenAI and Anthropic models at their published prices (US
 * dollars per million tokens). Prices are editable per model afterwards; a seed never overwrites an edit.
 */
export const DEFAULT_MODELS: ReadonlyArray<DefaultModel> = [
  {
    provider: "mock",
    model: "mock-1",
    label: "Mock (deterministic)",
    inputPricePerMTok: 0,
    outputPricePerMTok: 0,
    isDefault: true
  },
  {
    provider: "openai",
    model: "gpt-4.1",
    label: "GPT-4.1",
    inputPricePerMTok: 2,
    outputPricePerMTok: 8,
    isDefault: false
  },
  {
    provider: "openai",
    model: "gpt-4.1-mini",
    label: "GPT-4.1 mini",
    inputPricePerMTok: 0.4,
    outputPricePerMTok: 1.6,
    isDefault: false
  },
  {
    provider: "openai",
    model: "gpt-4o-mini",
    label: "GPT-4o mini",
    inputPricePerMTok: 0.15,
    outputPricePerMTok: 0.6,
    isDefault: false
  },
  {
    provider: "anthropic",
    model: "claude-sonnet-4-5",
    label: "Claude Sonnet 4.5",
    inputPricePerMTok: 3,
    outputPricePerMTok: 15,
    isDefault: false
  },
  {
    provider: "anthropic",
    model: "claude-haiku-4-5",
    label: "Claude Haiku 4.5",
    inputPricePerMTok: 1,
    outputPricePerMTok: 5,
    isDefault: false
  },
  {
    provider: "anthropic",
    model: "claude-opus-4-1",
    label: "Claude Opus 4.1",
    inputPricePerMTok: 15,
    outputPricePerMTok: 75,
    isDefault: false
  }
]

interface ModelConfigRow {
  readonly id: string
  readonly provider: Provider
  readonly model: string
  readonly label: string
  readonly base_url: string | null
  readonly params: ModelParams
  readonly input_price_per_mtok: string
  readonly output_price_per_mtok: string
  readonly requests_per_minute: number | null
  readonly tokens_per_minute: number | null
  readonly max_concurrency: number | null
  readonly is_default: boolean
  readonly created_at: Date
  readonly updated_at: Date
}

const toModelConfig = (row: ModelConfigRow) =>
  new ModelConfig({
    id: ModelConfigId.make(row.id),
    provider: row.provider,
    model: row.model,
    label: row.label,
    baseUrl: row.base_url,
    params: row.params,
    // numeric arrives as a string; numeric(14, 6) fits a double exactly enough for prices
    inputPricePerMTok: Number(row.input_price_per_mtok),
    outputPricePerMTok: Number(row.output_price_per_mtok),
    requestsPerMinute: row.requests_per_minute,
    tokensPerMinute: row.tokens_per_minute,
    maxConcurrency: row.max_concurrency,
    isDefault: row.is_default,
    createdAt: DateTime.unsafeFromDate(row.created_at),
    updatedAt: DateTime.unsafeFromDate(row.updated_at)
  })

// PostgreSQL 18 reports an ON DELETE RESTRICT violation as restrict_violation; earlier versions as foreign_key_violation
const RESTRICT_VIOLATION = "23001"

const modelInUse = () =>
  new Conflict({ code: "model_in_use", message: "This model is used by a run; delete those runs first." })

const notFound = (details?: unknown) =>
  new NotFound({
    code: "model_not_found",
    message: "No such model configuration.",
    ...(details === undefined ? {} : { details })
  })

const modelExists = () =>
  new Conflict({
    code: "model_exists",
    message: "A model with this provider, model name and base URL already exists."
  })

/** A blank base URL means none: the identity index treats null and '' alike, and so does the API. */
const normalizeBaseUrl = (baseUrl: string | null | undefined): string | null => {
  const trimmed = baseUrl?.trim() ?? ""
  return trimmed === "" ? null : trimmed
}

const checkBaseUrl = (provider: Provider, baseUrl: string | null): Effect.Effect<void, BadRequest> => {
  if (baseUrl === null)
    return provider === "openai-compatible"
      ? Effect.fail(
          new BadRequest({
            code: "base_url_required",
            message: "An openai-compatible model needs a base URL (e.g. http://127.0.0.1:11434/v1)."
          })
        )
      : Effect.void
  return /^https?:\/\/\S+$/.test(baseUrl)
    ? Effect.void
    : Effect.fail(
        new BadRequest({ code: "invalid_base_url", message: "The base URL must be an http(s) URL." })
      )
}

/** Model configurations: the provider, model and settings a run compares, with their prices. */
export class Models extends Effect.Service<Models>()("assay/Models", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const columns = sql.literal(`id, provider, model, label, base_url, params, input_price_per_mtok,
      output_price_per_mtok, requests_per_minute, tokens_per_minute, max_concurrency, is_default, created_at,
      updated_at`)

    const listRows = (owner: UserId) =>
      sql<ModelConfigRow>`
        select ${columns} from assay.model_config where owner_id = ${owner}
        order by is_default desc, lower(label), label, id`.pipe(orDieSql)

    const list = Effect.fn("Models.list")(function* (owner: UserId) {
      const rows = yield* listRows(owner)
      return rows.map(toModelConfig)
    })

    const create = Effect.fn("Models.create")(function* (owner: UserId, input: ModelConfigCreate) {
      const baseUrl = normalizeBaseUrl(input.baseUrl)
      yield* checkBaseUrl(input.provider, baseUrl)
      const rows = yield* sql<ModelConfigRow>`
        insert into assay.model_config (owner_id, provider, model, label, base_url, params, input_price_per_mtok,
          output_price_per_mtok, requests_per_minute, tokens_per_minute, max_concurrency, is_default)
        values (${owner}, ${input.provider}, ${input.model}, ${input.label ?? input.model}, ${baseUrl},
          ${JSON.stringify(input.params)}::jsonb, ${input.inputPricePerMTok}, ${input.outputPricePerMTok},
          ${input.requestsPerMinute}, ${input.tokensPerMinute}, ${input.maxConcurrency}, ${input.isDefault})
        returning ${columns}`.pipe(mapSqlFailure({ [UNIQUE_VIOLATION]: modelExists }))
      return toModelConfig(rows[0]!)
    })

    const get = Effect.fn("Models.get")(function* (owner: UserId, id: ModelConfigId) {
      const rows = yield* sql<ModelConfigRow>`
        select ${columns} from assay.model_config where owner_id = ${owner} and id = ${id}`.pipe(orDieSql)
      if (rows.length === 0) return yield* notFound()
      return toModelConfig(rows[0]!)
    })

    const getMany = Effect.fn("Models.getMany")(function* (owner: UserId, ids: ReadonlyArray<ModelConfigId>) {
      if (ids.length === 0) return []
      const unique = [...new Set(ids)]
      const rows = yield* sql<ModelConfigRow>`
        select ${columns} from assay.model_config
        where owner_id = ${owner} and ${sql.in("id", unique)}`.pipe(orDieSql)
      const byId = new Map(rows.map((row) => [row.id, row]))
      const missing = unique.filter((id) => !byId.has(id))
      if (missing.length > 0) return yield* notFound({ missing })
      return ids.map((id) => toModelConfig(byId.get(id)!))
    })

    const update = Effect.fn("Models.update")(function* (
      owner: UserId,
      id: ModelConfigId,
      changes: ModelConfigUpdate
    ) {
      return yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const current = yield* sql<ModelConfigRow>`
            select ${columns} from assay.model_config where owner_id = ${owner} and id = ${id}
            for update`
            if (current.length === 0) return yield* notFound()
            const row = current[0]!
            const baseUrl = changes.baseUrl === undefined ? row.base_url : normalizeBaseUrl(changes.baseUrl)
            yield* checkBaseUrl(row.provider, baseUrl)
            const params = changes.params ?? row.params
            const updated = yield* sql<ModelConfigRow>`
            update assay.model_config set
              model = ${changes.model ?? row.model},
              label = ${changes.label ?? row.label},
              base_url = ${baseUrl},
              params = ${JSON.stringify(params)}::jsonb,
              input_price_per_mtok = ${changes.inputPricePerMTok ?? row.input_price_per_mtok},
              output_price_per_mtok = ${changes.outputPricePerMTok ?? row.output_price_per_mtok},
              requests_per_minute = ${changes.requestsPerMinute === undefined ? row.requests_per_minute : changes.requestsPerMinute},
              tokens_per_minute = ${changes.tokensPerMinute === undefined ? row.tokens_per_minute : changes.tokensPerMinute},
              max_concurrency = ${changes.maxConcurrency === undefined ? row.max_concurrency : changes.maxConcurrency},
              is_default = ${changes.isDefault ?? row.is_default}
            where owner_id = ${owner} and id = ${id}
            returning ${columns}`
            return toModelConfig(updated[0]!)
          })
        )
        .pipe(mapSqlFailure({ [UNIQUE_VIOLATION]: modelExists }))
    })

    const remove = Effect.fn("Models.remove")(function* (owner: UserId, id: ModelConfigId) {
      const rows = yield* sql<{ id: string }>`
        delete from assay.model_config where owner_id = ${owner} and id = ${id} returning id`.pipe(
        mapSqlFailure({ [FOREIGN_KEY_VIOLATION]: modelInUse, [RESTRICT_VIOLATION]: modelInUse })
      )
      if (rows.length === 0) return yield* notFound()
    })

    const seedDefaults = Effect.fn("Models.seedDefaults")(function* (owner: UserId) {
      const defaults = DEFAULT_MODELS.map((m) => ({
        provider: m.provider,
        model: m.model,
        label: m.label,
        input: m.inputPricePerMTok,
        output: m.outputPricePerMTok,
        is_default: m.isDefault
      }))
      // one statement: concurrent seeds of the same owner cannot interleave into a duplicate
      yield* sql`
        insert into assay.model_config (owner_id, provider, model, label, input_price_per_mtok,
          output_price_per_mtok, is_default)
        select ${owner}, d.provider, d.model, d.label, d.input, d.output, d.is_default
        from jsonb_to_recordset(${JSON.stringify(defaults)}::jsonb)
          as d(provider text, model text, label text, input numeric, output numeric, is_default boolean)
        on conflict (owner_id, provider, model, (coalesce(base_url, ''))) do nothing`.pipe(orDieSql)
      return yield* list(owner)
    })

    return { list, create, get, getMany, update, remove, seedDefaults } as const
  })
}) {}
