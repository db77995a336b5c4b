// Benchmark 5, crash recovery: the real server (a child process) on real Postgres runs 500 rows × 4
// openai-compatible models against the fake provider (100 ms per answer, in this process). At ~30 % of the cells
// succeeded the server is killed with SIGKILL and a new one is started on the same database.
// Targets: every cell ends `succeeded` with one result and exactly one `succeeded` event; no prompt is answered
// twice unless the kill lost its call; with the default lease (30 s) every cell succeeded at most 45 s after the kill.
//
// Scenarios (BENCH_LEASES, comma-separated): a short lease (10000 ms) so recovery is quick, and the default lease.
// The calls the kill loses are those open at the fake at that moment and those the fake had answered but whose
// results the dead process had not committed yet (the result writer commits in batches); repeats are checked
// against that sum and against the cells the dead process held (status `running`, leased by it). The issue's
// stricter wording, repeats ≤ the fake's open requests alone, is reported as `repeatsWithinFakeInFlightAtKill`.
import { type FakeProvider, startFakeProvider } from "../test/support/FakeProvider.ts"
import { cellCounts, createRun, database, type ServerProcess, startServer } from "./server.ts"
import { freshDatabase, writeResult } from "./support.ts"

const ROWS = Number(process.env.BENCH_ROWS ?? 500)
const MODELS = 4
const LATENCY_MS = 100
const KILL_AT = Number(process.env.BENCH_KILL_AT ?? 0.3)
const LEASES = (process.env.BENCH_LEASES ?? "10000,default").split(",").map((s) => s.trim())
const DEFAULT_LEASE_MS = 30_000
const TARGET_RECOVERY_MS = 45_000
const RECOVERY_TIMEOUT_MS = 180_000

const scenario = async (fake: FakeProvider, lease: string) => {
  const total = ROWS * MODELS
  const leaseMs = lease === "default" ? DEFAULT_LEASE_MS : Number(lease)
  const env: Record<string, string> = lease === "default" ? {} : { ASSAY_LEASE_MS: lease }
  fake.reset()
  const db = await freshDatabase("crash")
  const sql = database(db.url)
  let first: ServerProcess | undefined
  let second: ServerProcess | undefined
  try {
    first = await startServer(db.url, env)
    const models = Array.from({ length: MODELS }, (_, i) => ({
      provider: "openai-compatible" as const,
      model: `fake-${i + 1}`,
      baseUrl: `${fake.url}/v1`
    }))
    const { run, createdAt, runCreationMs } = await createRun(first.url, ROWS, models)
    if (run.counts.total !== total)
      throw new Error(`the run has ${run.counts.total} cells, expected ${total}`)

    // until ~30 % succeeded: then read the fake's open requests and kill in the same tick
    const killAfter = Math.ceil(total * KILL_AT)
    let succeededSeen = 0
    for (;;) {
      const counts = await cellCounts(sql, run.id)
      succeededSeen = counts.succeeded ?? 0
      if (succeededSeen >= killAfter) break
      if (succeededSeen >= total) throw new Error("the run finished before the kill")
      if (performance.now() - createdAt > 120_000) throw new Error(`run stuck: ${JSON.stringify(counts)}`)
      await Bun.sleep(5)
    }
    const fakeInFlightAtKill = fake.stats.inFlight
    const fakeAnsweredAtKill = fake.stats.successes
    first.child.kill("SIGKILL")
    const killedAt = performance.now()
    const killedAfterMs = Math.round(killedAt - createdAt)
    await first.child.exited

    // the database as the dead process left it
    const atKill = await cellCounts(sql, run.id)
    const deadOwners: Array<{ owner: string; n: number }> = await sql`
      select lease_owner as owner, count(*)::int as n from assay.run_cell
      where run_id = ${run.id} and status = 'running' group by lease_owner`
    const heldByDead = deadOwners.reduce((n, o) => n + o.n, 0)
    const owners = deadOwners.map((o) => o.owner)

    second = await startServer(db.url, env)
    let leasesReturnedMs: number | null = heldByDead === 0 ? 0 : null
    let counts: Record<string, number> = {}
    for (;;) {
      counts = await cellCounts(sql, run.id)
      const now = performance.now()
      if (leasesReturnedMs === null) {
        const [held]: Array<{ n: number }> = await sql`
          select count(*)::int as n from assay.run_cell
          where run_id = ${run.id} and status = 'running' and lease_owner in ${sql(owners)}`
        if (held!.n === 0) leasesReturnedMs = Math.round(now - killedAt)
      }
      const open = (counts.queued ?? 0) + (counts.running ?? 0)
      if (open === 0) break
      if (now - killedAt > RECOVERY_TIMEOUT_MS) throw new Error(`no recovery: ${JSON.stringify(counts)}`)
      await Bun.sleep(20)
    }
    const recoveryMs = Math.round(performance.now() - killedAt)
    // the run's own status follows its cells (at once, or at the next sweep when two last batches raced)
    let runCompletedMs: number | null = null
    while (performance.now() - killedAt < recoveryMs + 30_000) {
      const [row]: Array<{ status: string }> = await sql`select status from assay.run where id = ${run.id}`
      if (row?.status !== "queued" && row?.status !== "running") {
        runCompletedMs = Math.round(performance.now() - killedAt)
        break
      }
      await Bun.sleep(50)
    }

    // let calls of the dead process that were still open at the fake finish, so that byPrompt is final
    while (fake.stats.inFlight > 0) await Bun.sleep(10)

    const [runRow]: Array<{ status: string }> = await sql`select status from assay.run where id = ${run.id}`
    const [cells]: Array<{
      cells: number
      succeeded: number
      with_output: number
      one_succeeded_event: number
      several_started: number
    }> = await sql`
      select count(*)::int as cells,
             count(*) filter (where c.status = 'succeeded')::int as succeeded,
             count(*) filter (where c.output_raw like 'echo:%')::int as with_output,
             count(*) filter (where e.succeeded = 1)::int as one_succeeded_event,
             count(*) filter (where e.started > 1)::int as several_started
      from assay.run_cell c
      cross join lateral (
        select count(*) filter (where event_type = 'succeeded') as succeeded,
               count(*) filter (where event_type = 'started') as started
        from assay.run_cell_event where run_cell_id = c.id
      ) e
      where c.run_id = ${run.id}`
    const eventRows: Array<{ event_type: string; n: number }> = await sql`
      select event_type, count(*)::int as n from assay.run_cell_event where run_id = ${run.id}
      group by event_type order by event_type`

    const answers = [...fake.stats.byPrompt.values()]
    const promptsAnsweredTwiceOrMore = answers.filter((n) => n > 1).length
    const repeatedCalls = answers.reduce((sum, n) => sum + Math.max(0, n - 1), 0)
    // calls whose answer the kill lost: open at the fake, or answered but not yet committed by the dead process
    const answeredNotCommitted = fakeAnsweredAtKill - (atKill.succeeded ?? 0)
    const lostAtKill = fakeInFlightAtKill + answeredNotCommitted
    const checks = {
      everyCellSucceeded: cells!.succeeded === total && cells!.cells === total,
      oneResultPerCell: cells!.with_output === total,
      oneSucceededEventPerCell: cells!.one_succeeded_event === total,
      everyPromptAnswered: fake.stats.byPrompt.size === total,
      repeatsWithinHeldAtKill: repeatedCalls <= heldByDead,
      repeatsExplainedByKill: repeatedCalls <= lostAtKill,
      runCompleted: runRow?.status === "completed",
      recoveryWithinTarget: lease !== "default" || recoveryMs <= TARGET_RECOVERY_MS
    }
    return {
      leaseMs,
      leaseSetting: lease === "default" ? "default (ASSAY_LEASE_MS unset)" : `ASSAY_LEASE_MS=${lease}`,
      cells: total,
      runCreationMs,
      killedAfterMs,
      succeededWhenKillDecided: succeededSeen,
      atKill: {
        fakeInFlight: fakeInFlightAtKill,
        fakeAnswered: fakeAnsweredAtKill,
        answeredNotCommitted,
        cells: atKill,
        heldByDeadProcess: heldByDead
      },
      restartMs: second.startMs,
      leasesReturnedMs,
      recoveryMs,
      runCompletedMs,
      runStatus: runRow?.status,
      cellStatus: counts,
      cellsStartedMoreThanOnce: cells!.several_started,
      eventsByType: Object.fromEntries(eventRows.map((r) => [r.event_type, r.n])),
      provider: {
        answered: fake.stats.successes,
        distinctPrompts: fake.stats.byPrompt.size,
        promptsAnsweredTwiceOrMore,
        repeatedCalls,
        lostAtKill,
        maxInFlight: fake.stats.maxInFlight,
        rateLimited: fake.stats.rateLimited
      },
      serverLog: { killed: first.logCounts(), restarted: second.logCounts() },
      checks,
      pass: Object.values(checks).every(Boolean),
      // the wording: no more repeats than requests open at the provider at the kill
      repeatsWithinFakeInFlightAtKill: repeatedCalls <= fakeInFlightAtKill
    }
  } catch (error) {
    if (first) console.error(`first server output (tail):\n${first.output()}`)
    if (second) console.error(`second server output (tail):\n${second.output()}`)
    throw error
  } finally {
    if (first && first.child.exitCode === null && first.child.signalCode === null) first.child.kill("SIGKILL")
    await second?.stop()
    await sql.close()
    await db.drop()
  }
}

const fake = await startFakeProvider({ latencyMs: LATENCY_MS })
try {
  const scenarios = []
  for (const lease of LEASES) {
    const result = await scenario(fake, lease)
    console.error(
      `lease ${result.leaseMs} ms: killed at ${result.killedAfterMs} ms, recovered ${result.recoveryMs} ms after the kill, ` +
        `pass ${result.pass}`
    )
    scenarios.push(result)
  }
  writeResult("crash-recovery", {
    rows: ROWS,
    models: MODELS,
    providerLatencyMs: LATENCY_MS,
    killAt: KILL_AT,
    scenarios,
    targets: {
      everyCellSucceeded: true,
      repeatedCallsAtMost: "calls lost at the kill (open at the fake + answered, not committed) ≤ cells held",
      recoveryMsWithDefaultLease: TARGET_RECOVERY_MS
    },
    pass: scenarios.every((s) => s.pass),
    passWithFakeInFlightBound: scenarios.every((s) => s.pass && s.repeatsWithinFakeInFlightAtKill)
  })
} finally {
  await fake.close()
}
