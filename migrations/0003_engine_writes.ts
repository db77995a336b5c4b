import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/*
 * Cheaper writes for the engine, whose every claim and result inserts events.
 *
 * - An event's `run_id` no longer references `run` directly. The reference was redundant (an event belongs to a
 *   cell, the cell to its run, and deleting a run still removes its events through its cells) and costly: the
 *   check locks the run's row, so every claim and result batch of every engine locked that one row, and it cost
 *   about five times the check on the cell (measured on 256-cell claims).
 * - The index of queued cells by availability time is gone: the claim index (queued cells of one run model in
 *   claim order) answers every query that looked for runnable work, and each queued cell written paid for both.
 */
const statements = String.raw`
alter table assay.run_cell_event drop constraint run_cell_event_run_id_fkey;
drop index assay.run_cell_runnable_idx;
`

export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statements))
