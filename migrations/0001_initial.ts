import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/*
 * The whole data model of the seed, in schema `assay` (on Supabase, `public` is exposed through the Data API).
 *
 * The job queue lives on `run_cell` itself (status, attempt, lease owner/expiry, next attempt time) rather than
 * in a separate `job` table: a cell IS the unit of work, so claiming, heartbeating and finishing touch one row,
 * and the result, the status change and the lease release commit in the same single-row update. A `job` table
 * would double every write and need a join to know what to run.
 *
 * Money is numeric (exact), never float. Every enum is a check constraint.
 */
const statements = String.raw`
create function assay.current_user_id() returns uuid
language sql stable
as $$
  select nullif(
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    ),
    ''
  )::uuid
$$;

create function assay.touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

create table assay.prompt (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 200),
  type text not null check (type in ('generator', 'grader')),
  system_text text not null default '',
  user_template text not null default '',
  default_params jsonb not null default '{}'::jsonb check (jsonb_typeof(default_params) = 'object'),
  -- bumped on rename: version numbers restart within each lineage (seed B1.1: "rename resets version counter")
  lineage integer not null default 1 check (lineage >= 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index prompt_owner_updated_idx on assay.prompt (owner_id, updated_at desc, id);

create table assay.prompt_version (
  id uuid primary key default gen_random_uuid(),
  prompt_id uuid not null references assay.prompt (id) on delete cascade,
  lineage integer not null check (lineage >= 1),
  version_number integer not null check (version_number >= 1),
  name text not null,
  body jsonb not null check (jsonb_typeof(body) = 'object'),
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  run_id uuid,
  created_at timestamptz not null default now(),
  unique (prompt_id, hash),
  unique (prompt_id, lineage, version_number)
);

create table assay.model_config (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null,
  provider text not null check (provider in ('mock', 'openai', 'anthropic', 'openai-compatible')),
  model text not null check (length(btrim(model)) between 1 and 200),
  label text not null check (length(btrim(label)) between 1 and 200),
  base_url text check (base_url is null or base_url ~ '^https?://'),
  params jsonb not null default '{}'::jsonb check (jsonb_typeof(params) = 'object'),
  input_price_per_mtok numeric(14, 6) not null default 0 check (input_price_per_mtok >= 0),
  output_price_per_mtok numeric(14, 6) not null default 0 check (output_price_per_mtok >= 0),
  requests_per_minute integer check (requests_per_minute is null or requests_per_minute > 0),
  tokens_per_minute integer check (tokens_per_minute is null or tokens_per_minute > 0),
  max_concurrency integer check (max_concurrency is null or max_concurrency > 0),
  is_default boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index model_config_identity_idx
  on assay.model_config (owner_id, provider, model, coalesce(base_url, ''));

create table assay.dataset (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 200),
  source_filename text,
  format text not null check (format in ('csv', 'json', 'jsonl')),
  storage_path text,
  byte_size bigint not null default 0 check (byte_size >= 0),
  row_count integer not null default 0 check (row_count >= 0),
  headers jsonb not null default '[]'::jsonb check (jsonb_typeof(headers) = 'array'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index dataset_owner_created_idx on assay.dataset (owner_id, created_at desc, id);

create table assay.dataset_row (
  id uuid primary key default gen_random_uuid(),
  dataset_id uuid not null references assay.dataset (id) on delete cascade,
  row_index integer not null check (row_index >= 0),
  values jsonb not null check (jsonb_typeof(values) = 'object'),
  checksum text not null,
  unique (dataset_id, row_index)
);

create table assay.run (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null,
  -- a generator prompt's runs go with it; a grader prompt or dataset still used by a run cannot be deleted
  prompt_id uuid not null references assay.prompt (id) on delete cascade,
  prompt_version_id uuid not null references assay.prompt_version (id) on delete cascade,
  dataset_id uuid references assay.dataset (id) on delete restrict,
  grader_prompt_version_id uuid references assay.prompt_version (id) on delete restrict,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'completed', 'failed', 'canceled')),
  active_metric text not null default 'combined_pass_rate'
    check (active_metric in ('auto_pass_rate', 'manual_pass_rate', 'combined_pass_rate', 'latency', 'cost', 'tokens')),
  error text,
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (completed_at is null or started_at is null or completed_at >= started_at)
);
create index run_owner_created_idx on assay.run (owner_id, created_at desc, id);
create index run_prompt_created_idx on assay.run (prompt_id, created_at desc);
create index run_dataset_idx on assay.run (dataset_id) where dataset_id is not null;
create index run_grader_idx on assay.run (grader_prompt_version_id) where grader_prompt_version_id is not null;

alter table assay.prompt_version
  add constraint prompt_version_run_fk foreign key (run_id) references assay.run (id) on delete set null;

create table assay.run_model (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references assay.run (id) on delete cascade,
  model_config_id uuid not null references assay.model_config (id) on delete restrict,
  display_order smallint not null check (display_order between 0 and 3),
  -- provider, model, parameters and prices as they were when the run started
  model_snapshot jsonb not null check (jsonb_typeof(model_snapshot) = 'object'),
  unique (run_id, display_order),
  unique (run_id, model_config_id)
);
create index run_model_config_idx on assay.run_model (model_config_id);

create table assay.run_cell (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references assay.run (id) on delete cascade,
  run_model_id uuid not null references assay.run_model (id) on delete cascade,
  dataset_row_id uuid references assay.dataset_row (id) on delete restrict,
  row_index integer not null check (row_index >= 0),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  -- what the queue runs next for this cell: the generation, then (with a grader) the grading
  stage text not null default 'generate' check (stage in ('generate', 'grade')),
  -- job queue
  attempt integer not null default 0 check (attempt >= 0),
  max_attempts integer not null default 4 check (max_attempts >= 1),
  next_attempt_at timestamptz not null default now(),
  lease_owner text,
  lease_expires_at timestamptz,
  check ((lease_owner is null) = (lease_expires_at is null)),
  check (status <> 'running' or lease_owner is not null),
  -- result
  rendered_prompt jsonb,
  output_raw text,
  output_parsed jsonb,
  grade text check (grade in ('pass', 'fail')),
  grade_score double precision,
  grade_reason text,
  grader_output_raw text,
  grade_error text,
  manual_grade text check (manual_grade in ('pass', 'fail')),
  tokens_in integer check (tokens_in >= 0),
  tokens_out integer check (tokens_out >= 0),
  grader_tokens_in integer check (grader_tokens_in >= 0),
  grader_tokens_out integer check (grader_tokens_out >= 0),
  cost_usd numeric(20, 10) check (cost_usd >= 0),
  latency_ms integer check (latency_ms >= 0),
  error_code text,
  error_message text,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (run_model_id, row_index)
);
create index run_cell_run_updated_idx on assay.run_cell (run_id, updated_at, id);
create index run_cell_run_status_idx on assay.run_cell (run_id, status);
create index run_cell_dataset_row_idx on assay.run_cell (dataset_row_id) where dataset_row_id is not null;
-- runnable work: queued cells by availability time
create index run_cell_runnable_idx on assay.run_cell (next_attempt_at, run_id) where status = 'queued';
-- the sweeper: running cells by lease expiry
create index run_cell_lease_idx on assay.run_cell (lease_expires_at) where status = 'running';

create table assay.run_cell_event (
  id bigint generated always as identity primary key,
  run_id uuid not null references assay.run (id) on delete cascade,
  run_cell_id uuid not null references assay.run_cell (id) on delete cascade,
  event_type text not null check (event_type in (
    'queued', 'started', 'retrying', 'succeeded', 'failed', 'canceled',
    'grader_started', 'grader_succeeded', 'grader_failed', 'manual_grade'
  )),
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
create index run_cell_event_run_idx on assay.run_cell_event (run_id, id);
create index run_cell_event_cell_idx on assay.run_cell_event (run_cell_id, id);

create table assay.manual_grade (
  id uuid primary key default gen_random_uuid(),
  run_cell_id uuid not null references assay.run_cell (id) on delete cascade,
  value text not null check (value in ('pass', 'fail', 'unset')),
  user_id uuid not null,
  created_at timestamptz not null default now()
);
create index manual_grade_cell_idx on assay.manual_grade (run_cell_id, created_at);

create table assay.api_key (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null,
  provider text not null check (provider in ('openai', 'anthropic', 'openai-compatible')),
  encrypted_key bytea not null,
  key_suffix text not null check (length(key_suffix) <= 8),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (owner_id, provider)
);

create trigger prompt_touch before update on assay.prompt
  for each row execute function assay.touch_updated_at();
create trigger model_config_touch before update on assay.model_config
  for each row execute function assay.touch_updated_at();
create trigger dataset_touch before update on assay.dataset
  for each row execute function assay.touch_updated_at();
create trigger run_touch before update on assay.run
  for each row execute function assay.touch_updated_at();
create trigger run_cell_touch before update on assay.run_cell
  for each row execute function assay.touch_updated_at();
create trigger api_key_touch before update on assay.api_key
  for each row execute function assay.touch_updated_at();

-- Row-level security: defence in depth for Supabase's Data API. The server connects as the tables' owner
-- (which bypasses RLS) and filters by owner on every query itself.
alter table assay.prompt enable row level security;
alter table assay.prompt_version enable row level security;
alter table assay.model_config enable row level security;
alter table assay.dataset enable row level security;
alter table assay.dataset_row enable row level security;
alter table assay.run enable row level security;
alter table assay.run_model enable row level security;
alter table assay.run_cell enable row level security;
alter table assay.run_cell_event enable row level security;
alter table assay.manual_grade enable row level security;
alter table assay.api_key enable row level security;

create policy prompt_owner on assay.prompt for all
  using (owner_id = assay.current_user_id()) with check (owner_id = assay.current_user_id());
create policy model_config_owner on assay.model_config for all
  using (owner_id = assay.current_user_id()) with check (owner_id = assay.current_user_id());
create policy dataset_owner on assay.dataset for all
  using (owner_id = assay.current_user_id()) with check (owner_id = assay.current_user_id());
create policy run_owner on assay.run for all
  using (owner_id = assay.current_user_id()) with check (owner_id = assay.current_user_id());
create policy api_key_owner on assay.api_key for all
  using (owner_id = assay.current_user_id()) with check (owner_id = assay.current_user_id());

create policy prompt_version_owner on assay.prompt_version for all
  using (exists (select 1 from assay.prompt p where p.id = prompt_id and p.owner_id = assay.current_user_id()))
  with check (exists (select 1 from assay.prompt p where p.id = prompt_id and p.owner_id = assay.current_user_id()));
create policy dataset_row_owner on assay.dataset_row for all
  using (exists (select 1 from assay.dataset d where d.id = dataset_id and d.owner_id = assay.current_user_id()))
  with check (exists (select 1 from assay.dataset d where d.id = dataset_id and d.owner_id = assay.current_user_id()));
create policy run_model_owner on assay.run_model for all
  using (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()))
  with check (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()));
create policy run_cell_owner on assay.run_cell for all
  using (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()))
  with check (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()));
create policy run_cell_event_owner on assay.run_cell_event for all
  using (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()))
  with check (exists (select 1 from assay.run r where r.id = run_id and r.owner_id = assay.current_user_id()));
create policy manual_grade_owner on assay.manual_grade for all
  using (user_id = assay.current_user_id()) with check (user_id = assay.current_user_id());
`

export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statements))
