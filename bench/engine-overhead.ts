// Benchmark 1, engine overhead: the mock provider with no latency, 5,000 rows × 4 models, on real Postgres.
// Time from run creation to the last cell succeeded (its events persisted); peak process memory.
// Target: at least 2,000 cells/s, under 300 MB.
import { SqlClient } from "@effect/sql"
import { Effect, Stream } from "effect"
import { LOCAL_USER_ID, type ModelConfigId } from "../src/domain/Ids.ts"
import { Datasets } from "../src/services/Datasets.ts"
import { Models } from "../src/services/Models.ts"
import { Prompts } from "../src/services/Prompts.ts"
import { Runs } from "../src/services/Runs.ts"
import { csv, freshDatabase, services, withPeakRss, writeResult } from "./support.ts"

const ROWS = Number(process.env.BENCH_ROWS ?? 5_000)
const MODELS = 4

const db = await freshDatabase("overhead")
const runtime = services(db.url)
try {
  const setup = await runtime.runPromise(
    Effect.gen(function* () {
      const prompts = yield* Prompts
      const datasets = yield* Datasets
      const models = yield* Models
      const prompt = yield* prompts.create(LOCAL_USER_ID, {
        name: "Summarise",
        type: "generator",
        systemText: "You summarise.",
        userTemplate: "Summarise {{text}} in one line.",
        defaultParams: {}
      })
      const content = new TextEncoder().encode(
        csv(ROWS, (i) => ({ text: `document ${i} about topic ${i % 97}` }))
      )
      const dataset = yield* datasets.upload(LOCAL_USER_ID, {
        filename: "docs.csv",
        contentType: "text/csv",
        name: undefined,
        content: Stream.make(content)
      })
      const modelIds: Array<ModelConfigId> = []
      for (let i = 1; i <= MODELS; i++) {
        const model = yield* models.create(LOCAL_USER_ID, {
          provider: "mock",
          model: `mock-${i}`,
          baseUrl: null,
          params: {},
          inputPricePerMTok: 0,
          outputPricePerMTok: 0,
          requestsPerMinute: null,
          tokensPerMinute: null,
          maxConcurrency: null,
          isDefault: false
        })
        modelIds.push(model.id)
      }
      return { promptId: prompt.id, datasetId: dataset.id, modelIds }
    })
  )

  const total = ROWS * MODELS
  const { value, peakRssMb } = await withPeakRss(() =>
    runtime.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const runs = yield* Runs
        const started = performance.now()
        const cpuBefore = process.cpuUsage()
        const run = yield* runs.create(LOCAL_USER_ID, {
          promptId: setup.promptId,
          datasetId: setup.datasetId,
          modelIds: setup.modelIds,
          graderPromptId: null,
          graderModelId: null
        })
        const created = performance.now()
        // the run turns completed in the statement after its last result batch commits; polling its row is
        // cheap, where counting 20,000 cells every few milliseconds would load the database under test
        for (;;) {
          const [row] = yield* sql<{ status: string }>`select status from assay.run where id = ${run.id}`
          if (row!.status !== "queued" && row!.status !== "running") break
          yield* Effect.sleep("10 millis")
        }
        const finished = performance.now()
        const cpu = process.cpuUsage(cpuBefore)
        const [cells] = yield* sql<{ n: number }>`
          select count(*)::int as n from assay.run_cell where run_id = ${run.id} and status = 'succeeded'`
        const [events] = yield* sql<{ n: number }>`
          select count(*)::int as n from assay.run_cell_event where run_id = ${run.id} and event_type = 'succeeded'`
        return {
          createMs: created - started,
          totalMs: finished - started,
          cpuMs: Math.round((cpu.user + cpu.system) / 1000),
          succeededCells: cells!.n,
          succeededEvents: events!.n
        }
      })
    )
  )
  const cellsPerSecond = Math.round(total / (value.totalMs / 1000))
  writeResult("engine-overhead", {
    rows: ROWS,
    models: MODELS,
    cells: total,
    runCreationMs: Math.round(value.createMs),
    totalMs: Math.round(value.totalMs),
    // this process's CPU time (user + system) over the same span: the engine's own cost, less sensitive to a
    // busy machine than the wall clock
    processCpuMs: value.cpuMs,
    cellsPerSecond,
    succeededCells: value.succeededCells,
    succeededEvents: value.succeededEvents,
    peakRssMb,
    targets: { cellsPerSecond: 2000, peakRssMb: 300 },
    pass:
      cellsPerSecond >= 2000 &&
      peakRssMb < 300 &&
      value.succeededCells === total &&
      value.succeededEvents === total
  })
} finally {
  await runtime.dispose()
  await db.drop()
}
