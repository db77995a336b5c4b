import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/*
 * What the engine needs beyond the data model: the claim index (queued cells of one run model in order), and the
 * grader's model for LLM-as-judge (absent: each cell is graded by its own model).
 */
const statements = String.raw`
create index run_cell_claim_idx on assay.run_cell (run_model_id, next_attempt_at, row_index) where status = 'queued';

alter table assay.run add column grader_model_config_id uuid references assay.model_config (id) on delete restrict;
alter table assay.run add column grader_model_snapshot jsonb
  check (grader_model_snapshot is null or jsonb_typeof(grader_model_snapshot) = 'object');
create index run_grader_model_idx on assay.run (grader_model_config_id) where grader_model_config_id is not null;

-- the active runs the dispatcher reads on every claim round
create index run_active_idx on assay.run (status) where status in ('queued', 'running');
`

export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statements))
