import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { CellEventType } from "../../src/domain/Cell.ts"
import { type CellEventRow, toCellEvent } from "../../src/services/RunEvents.ts"

const hash = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex")

export interface SeededRun {
  readonly ownerId: string
  readonly promptId: string
  readonly datasetId: string
  readonly runId: string
  readonly cellIds: ReadonlyArray<string>
}

/** A complete run straight in SQL: prompt + version, dataset of `rows` rows, 2 models, cells, events, grades. */
export const seedRun = (
  sql: SqlClient.SqlClient,
  options: { readonly rows?: number; readonly ownerId?: string } = {}
) =>
  Effect.gen(function* () {
    const ownerId = options.ownerId ?? crypto.randomUUID()
    const rows = options.rows ?? 3
    const [prompt] = yield* sql<{ id: string }>`
      insert into assay.prompt (owner_id, name, type, user_template)
      values (${ownerId}, 'Summarise', 'generator', 'Summarise {{text}}') returning id`
    const body = { systemText: "", userTemplate: "Summarise {{text}}", defaultParams: {} }
    const [version] = yield* sql<{ id: string }>`
      insert into assay.prompt_version (prompt_id, lineage, version_number, name, body, hash)
      values (${prompt!.id}, 1, 1, 'Summarise', ${JSON.stringify(body)}::jsonb, ${hash(JSON.stringify(body) + ownerId)})
      returning id`
    const [dataset] = yield* sql<{ id: string }>`
      insert into assay.dataset (owner_id, name, format, row_count, headers)
      values (${ownerId}, 'texts', 'csv', ${rows}, '["text"]'::jsonb) returning id`
    const rowIds: Array<string> = []
    for (let i = 0; i < rows; i++) {
      const [row] = yield* sql<{ id: string }>`
        insert into assay.dataset_row (dataset_id, row_index, values, checksum)
        values (${dataset!.id}, ${i}, ${JSON.stringify({ text: `row ${i}` })}::jsonb, ${hash(`row ${i}`)})
        returning id`
      rowIds.push(row!.id)
    }
    const modelIds: Array<string> = []
    for (const model of ["mock-a", "mock-b"]) {
      const [config] = yield* sql<{ id: string }>`
        insert into assay.model_config (owner_id, provider, model, label)
        values (${ownerId}, 'mock', ${model}, ${model}) returning id`
      modelIds.push(config!.id)
    }
    const [run] = yield* sql<{ id: string }>`
      insert into assay.run (owner_id, prompt_id, prompt_version_id, dataset_id)
      values (${ownerId}, ${prompt!.id}, ${version!.id}, ${dataset!.id}) returning id`
    const cellIds: Array<string> = []
    for (const [order, modelId] of modelIds.entries()) {
      const [runModel] = yield* sql<{ id: string }>`
        insert into assay.run_model (run_id, model_config_id, display_order, model_snapshot)
        values (${run!.id}, ${modelId}, ${order}, '{"provider":"mock"}'::jsonb) returning id`
      for (const [index, rowId] of rowIds.entries()) {
        const [cell] = yield* sql<{ id: string }>`
          insert into assay.run_cell (run_id, run_model_id, dataset_row_id, row_index)
          values (${run!.id}, ${runModel!.id}, ${rowId}, ${index}) returning id`
        cellIds.push(cell!.id)
        yield* sql`
          insert into assay.run_cell_event (run_id, run_cell_id, event_type)
          values (${run!.id}, ${cell!.id}, 'queued')`
        yield* sql`
          insert into assay.manual_grade (run_cell_id, value, user_id)
          values (${cell!.id}, 'pass', ${ownerId})`
      }
    }
    return {
      ownerId,
      promptId: prompt!.id,
      datasetId: dataset!.id,
      runId: run!.id,
      cellIds
    } satisfies SeededRun
  })

/** One event written straight to the table (not published), as the engine's writer would. */
export const insertEvent = (
  runId: string,
  cellId: string,
  type: CellEventType = "started",
  payload: unknown = {}
) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<CellEventRow>`
      insert into assay.run_cell_event (run_id, run_cell_id, event_type, payload)
      values (${runId}, ${cellId}, ${type}, ${JSON.stringify(payload)}::jsonb)
      returning id::text as id, run_id, run_cell_id, event_type, payload, created_at`
  ).pipe(Effect.map((rows) => toCellEvent(rows[0]!)))
