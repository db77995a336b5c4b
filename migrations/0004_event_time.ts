import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/*
 * An event's `created_at` is the moment its row is written, not the start of the transaction that wrote it.
 * A claim or a batch of results is one statement that may wait for locks and for the CPU before it reaches its
 * inserts; `now()` stamped its events with that start, tens of milliseconds before they existed.
 */
const statements = String.raw`
alter table assay.run_cell_event alter column created_at set default clock_timestamp();
`

export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statements))
