import { SqlClient } from "@effect/sql"
import type { Fragment } from "@effect/sql/Statement"
import { DateTime, Effect, Either, ParseResult, Schema } from "effect"
import { createHash } from "node:crypto"
import { BadRequest, Conflict, NotFound, Unprocessable } from "../domain/Errors.ts"
import { PromptId, PromptVersionId, RunId, type UserId } from "../domain/Ids.ts"
import type { ModelParams } from "../domain/ModelParams.ts"
import type { Page } from "../domain/Page.ts"
import {
  Prompt,
  PromptCreate,
  type PromptBody,
  type PromptType,
  PromptUpdate,
  PromptVersion,
  type PromptVersionDiff,
  type VersionRef
} from "../domain/Prompt.ts"
import { parseTemplate, placeholders, type TemplateIssue } from "../domain/Template.ts"
import { diffLines, diffStats } from "../domain/TextDiff.ts"
import { decodeCursor, pageOf, pageSize } from "./Cursor.ts"
import { FOREIGN_KEY_VIOLATION, mapSqlFailure, orDieSql } from "./SqlFailure.ts"

interface PromptRow {
  readonly id: string
  readonly name: string
  readonly type: PromptType
  readonly system_text: string
  readonly user_template: string
  readonly default_params: ModelParams
  readonly lineage: number
  readonly created_at: Date
  readonly updated_at: Date
  /** `updated_at` cut to milliseconds, as the cursor holds it. */
  readonly sort_at: Date
  readonly latest_id: string | null
  readonly latest_lineage: number | null
  readonly latest_number: number | null
}

interface VersionRow {
  readonly id: string
  readonly prompt_id: string
  readonly lineage: number
  readonly version_number: number
  readonly name: string
  readonly body: PromptBody
  readonly hash: string
  readonly run_id: string | null
  readonly created_at: Date
}

const MAX_PAGE_SIZE = 200
// the message stays readable; `details.issues` keeps them all
const MESSAGE_ISSUES = 5
const PART_LABEL = { system: "system prompt", template: "template" } as const

// PostgreSQL 18 (PGlite) reports an ON DELETE RESTRICT violation as restrict_violation; earlier versions as foreign_key_violation
const RESTRICT_VIOLATION = "23001"

const promptInUse = () =>
  new Conflict({
    code: "prompt_in_use",
    message: "This prompt grades at least one run; delete those runs first."
  })
const promptNotFound = () => new NotFound({ code: "prompt_not_found", message: "No prompt with this id." })
const versionNotFound = () =>
  new NotFound({ code: "version_not_found", message: "No version with this id for this prompt." })

/** The union of both texts' placeholders, system text first, each name once in first-seen order. */
const placeholdersOf = (systemText: string, userTemplate: string): ReadonlyArray<string> =>
  Array.from(new Set([...placeholders(systemText), ...placeholders(userTemplate)]))

/** Every issue of the given texts, tagged with the part it is in; absent texts were checked when saved. */
const checkTemplates = (texts: {
  readonly system?: string | undefined
  readonly template?: string | undefined
}) => {
  const issues: Array<TemplateIssue> = []
  for (const part of ["system", "template"] as const) {
    const text = texts[part]
    if (text === undefined) continue
    const parsed = parseTemplate(text)
    if (Either.isLeft(parsed)) for (const issue of parsed.left) issues.push({ ...issue, part })
  }
  if (issues.length === 0) return Effect.void
  const shown = issues
    .slice(0, MESSAGE_ISSUES)
    .map((i) => `${PART_LABEL[i.part!]} line ${i.line}, column ${i.column}: ${i.message}`)
    .join("; ")
  const more = issues.length > MESSAGE_ISSUES ? ` (and ${issues.length - MESSAGE_ISSUES} more)` : ""
  return Effect.fail(
    new Unprocessable({
      code: "invalid_template",
      message: `Invalid template: ${shown}${more}`,
      details: { issues }
    })
  )
}

/** The input as the API schema would have decoded it: callers other than the handlers get the same rules. */
const checkInput = <A, I>(schema: Schema.Schema<A, I>, input: A) =>
  Schema.validate(Schema.typeSchema(schema))(input).pipe(
    Effect.mapError(
      (error) =>
        new Unprocessable({
          code: "invalid_prompt",
          message: `Invalid prompt: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
          details: { issues: ParseResult.ArrayFormatter.formatErrorSync(error) }
        })
    )
  )

/** JSON with object keys sorted at every level and undefined members left out, so equal bodies print alike. */
const canonicalJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>
    const members = Object.keys(record)
      .filter((key) => record[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
    return `{${members.join(",")}}`
  }
  return JSON.stringify(value)
}

/** The version identity of a body: sha256 hex of its canonical JSON. */
const hashBody = (body: PromptBody): string => createHash("sha256").update(canonicalJson(body)).digest("hex")

const toPrompt = (row: PromptRow) =>
  new Prompt({
    id: PromptId.make(row.id),
    name: row.name,
    type: row.type,
    systemText: row.system_text,
    userTemplate: row.user_template,
    defaultParams: row.default_params,
    placeholders: placeholdersOf(row.system_text, row.user_template),
    lineage: row.lineage,
    latestVersion:
      row.latest_id === null
        ? null
        : {
            id: PromptVersionId.make(row.latest_id),
            lineage: row.latest_lineage!,
            versionNumber: row.latest_number!
          },
    createdAt: DateTime.unsafeFromDate(row.created_at),
    updatedAt: DateTime.unsafeFromDate(row.updated_at)
  })

const toVersion = (row: VersionRow) =>
  new PromptVersion({
    id: PromptVersionId.make(row.id),
    promptId: PromptId.make(row.prompt_id),
    lineage: row.lineage,
    versionNumber: row.version_number,
    name: row.name,
    body: row.body,
    hash: row.hash,
    runId: row.run_id === null ? null : RunId.make(row.run_id),
    createdAt: DateTime.unsafeFromDate(row.created_at)
  })

const refOf = (version: PromptVersion): VersionRef => ({
  id: version.id,
  lineage: version.lineage,
  versionNumber: version.versionNumber
})

/** Every default parameter whose value differs, by key; a side where the key is absent has no value. */
const paramChanges = (from: ModelParams, to: ModelParams) => {
  const a = from as Record<string, unknown>
  const b = to as Record<string, unknown>
  const keys = Array.from(new Set([...Object.keys(a), ...Object.keys(b)])).sort()
  return keys.flatMap((key) => {
    const before = a[key]
    const after = b[key]
    if (canonicalJson(before) === canonicalJson(after)) return []
    return [
      {
        key,
        ...(before === undefined ? {} : { from: before }),
        ...(after === undefined ? {} : { to: after })
      }
    ]
  })
}

/**
 * Prompts and their versions. The prompt row is the working draft; a version is an immutable copy of its body,
 * identified by the body's hash, numbered within the prompt's lineage (a rename starts a new lineage).
 */
export class Prompts extends Effect.Service<Prompts>()("assay/Prompts", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const latestJoin = sql`left join lateral (
      select v.id as latest_id, v.lineage as latest_lineage, v.version_number as latest_number
      from assay.prompt_version v
      where v.prompt_id = p.id
      order by v.created_at desc, v.lineage desc, v.version_number desc
      limit 1
    ) latest on true`

    const promptColumns = sql`p.id, p.name, p.type, p.system_text, p.user_template, p.default_params, p.lineage,
      p.created_at, p.updated_at, date_trunc('milliseconds', p.updated_at) as sort_at,
      latest.latest_id, latest.latest_lineage, latest.latest_number`

    const findPrompt = (owner: UserId, id: PromptId) =>
      sql<PromptRow>`select ${promptColumns} from assay.prompt p ${latestJoin}
        where p.owner_id = ${owner} and p.id = ${id}`.pipe(
        orDieSql,
        Effect.flatMap((rows) =>
          rows[0] ? Effect.succeed(toPrompt(rows[0])) : Effect.fail(promptNotFound())
        )
      )

    const promptExists = (owner: UserId, id: PromptId) =>
      sql<{ id: string }>`select id from assay.prompt where owner_id = ${owner} and id = ${id}`.pipe(
        orDieSql,
        Effect.flatMap((rows) => (rows.length > 0 ? Effect.void : Effect.fail(promptNotFound())))
      )

    /** A version of the owner's prompt; `prompt_not_found` when the prompt itself is not theirs or absent. */
    const findVersion = (owner: UserId, id: PromptId, versionId: PromptVersionId) =>
      sql<VersionRow & { readonly prompt_exists: string }>`
        select p.id as prompt_exists, v.id, v.prompt_id, v.lineage, v.version_number, v.name, v.body, v.hash,
          v.run_id, v.created_at
        from assay.prompt p
        left join assay.prompt_version v on v.prompt_id = p.id and v.id = ${versionId}
        where p.owner_id = ${owner} and p.id = ${id}`.pipe(
        orDieSql,
        Effect.flatMap(([row]) =>
          row === undefined
            ? Effect.fail(promptNotFound())
            : row.id === null
              ? Effect.fail(versionNotFound())
              : Effect.succeed(toVersion(row))
        )
      )

    const list = Effect.fn("Prompts.list")(function* (
      owner: UserId,
      params: {
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
        readonly type?: PromptType | undefined
      }
    ) {
      const limit = pageSize(params.limit)
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE)
        return yield* new BadRequest({
          code: "invalid_limit",
          message: `The page size must be an integer from 1 to ${MAX_PAGE_SIZE}.`
        })
      const position = yield* decodeCursor(params.cursor)
      const conditions: Array<Fragment> = [sql`p.owner_id = ${owner}`]
      if (params.type !== undefined) conditions.push(sql`p.type = ${params.type}`)
      // the cursor holds milliseconds: ordering on the same precision keeps rows within one millisecond apart
      if (position !== undefined)
        conditions.push(
          sql`(date_trunc('milliseconds', p.updated_at), p.id) < (${position.at.toISOString()}::timestamptz, ${position.id}::uuid)`
        )
      const rows = yield* orDieSql(sql<PromptRow>`
        select ${promptColumns} from assay.prompt p ${latestJoin}
        where ${sql.and(conditions)}
        order by date_trunc('milliseconds', p.updated_at) desc, p.id desc
        limit ${limit + 1}`)
      const page: Page<Prompt> = pageOf(rows, limit, (row) => ({ at: row.sort_at, id: row.id }), toPrompt)
      return page
    })

    const create = Effect.fn("Prompts.create")(function* (owner: UserId, input: PromptCreate) {
      yield* checkInput(PromptCreate, input)
      yield* checkTemplates({ system: input.systemText, template: input.userTemplate })
      const [row] = yield* orDieSql(sql<{ id: string }>`
        insert into assay.prompt (owner_id, name, type, system_text, user_template, default_params)
        values (${owner}, ${input.name}, ${input.type}, ${input.systemText}, ${input.userTemplate},
          ${JSON.stringify(input.defaultParams)}::jsonb)
        returning id`)
      return yield* Effect.orDie(findPrompt(owner, PromptId.make(row!.id)))
    })

    const get = Effect.fn("Prompts.get")(function* (owner: UserId, id: PromptId) {
      return yield* findPrompt(owner, id)
    })

    const update = Effect.fn("Prompts.update")(function* (
      owner: UserId,
      id: PromptId,
      changes: PromptUpdate
    ) {
      yield* checkInput(PromptUpdate, changes)
      yield* checkTemplates({ system: changes.systemText, template: changes.userTemplate })
      if (
        changes.name === undefined &&
        changes.systemText === undefined &&
        changes.userTemplate === undefined &&
        changes.defaultParams === undefined
      )
        return yield* findPrompt(owner, id)
      const name = changes.name ?? null
      const params = changes.defaultParams === undefined ? null : JSON.stringify(changes.defaultParams)
      // one statement: the lineage moves only when the name really changes, judged against the row it updates
      const rows = yield* orDieSql(sql<PromptRow>`
        with p as (
          update assay.prompt set
            lineage = case when ${name}::text is not null and ${name}::text <> name then lineage + 1 else lineage end,
            name = coalesce(${name}::text, name),
            system_text = coalesce(${changes.systemText ?? null}::text, system_text),
            user_template = coalesce(${changes.userTemplate ?? null}::text, user_template),
            default_params = coalesce(${params}::jsonb, default_params)
          where owner_id = ${owner} and id = ${id}
          returning *
        )
        select ${promptColumns} from p ${latestJoin}`)
      const row = rows[0]
      if (row === undefined) return yield* promptNotFound()
      return toPrompt(row)
    })

    const remove = Effect.fn("Prompts.remove")(function* (owner: UserId, id: PromptId) {
      const rows = yield* sql<{ id: string }>`
        delete from assay.prompt where owner_id = ${owner} and id = ${id} returning id`.pipe(
        // the only restricting reference to a prompt's versions is a run's grader
        mapSqlFailure({ [FOREIGN_KEY_VIOLATION]: promptInUse, [RESTRICT_VIOLATION]: promptInUse })
      )
      if (rows.length === 0) return yield* promptNotFound()
    })

    const versions = Effect.fn("Prompts.versions")(function* (owner: UserId, id: PromptId) {
      yield* promptExists(owner, id)
      const rows = yield* orDieSql(sql<VersionRow>`
        select v.id, v.prompt_id, v.lineage, v.version_number, v.name, v.body, v.hash, v.run_id, v.created_at
        from assay.prompt_version v
        where v.prompt_id = ${id}
        order by v.created_at desc, v.lineage desc, v.version_number desc`)
      return rows.map(toVersion)
    })

    const freeze = Effect.fn("Prompts.freeze")(function* (
      owner: UserId,
      id: PromptId,
      options: { readonly runId?: RunId | undefined } = {}
    ) {
      return yield* sql
        .withTransaction(
          Effect.gen(function* () {
            // the row lock orders concurrent freezes of one prompt: each sees the versions the others made
            const [draft] = yield* sql<{
              name: string
              system_text: string
              user_template: string
              default_params: ModelParams
              lineage: number
            }>`
              select name, system_text, user_template, default_params, lineage from assay.prompt
              where owner_id = ${owner} and id = ${id}
              for update`
            if (draft === undefined) return yield* promptNotFound()
            yield* checkTemplates({ system: draft.system_text, template: draft.user_template })
            const body: PromptBody = {
              systemText: draft.system_text,
              userTemplate: draft.user_template,
              defaultParams: draft.default_params
            }
            const hash = hashBody(body)
            const inserted = yield* sql<VersionRow>`
              insert into assay.prompt_version (prompt_id, lineage, version_number, name, body, hash, run_id)
              select ${id}, ${draft.lineage}, coalesce(max(version_number), 0) + 1, ${draft.name},
                ${JSON.stringify(body)}::jsonb, ${hash}, ${options.runId ?? null}::uuid
              from assay.prompt_version
              where prompt_id = ${id} and lineage = ${draft.lineage}
              on conflict (prompt_id, hash) do nothing
              returning id, prompt_id, lineage, version_number, name, body, hash, run_id, created_at`
            if (inserted[0]) return toVersion(inserted[0])
            const [existing] = yield* sql<VersionRow>`
              select id, prompt_id, lineage, version_number, name, body, hash, run_id, created_at
              from assay.prompt_version
              where prompt_id = ${id} and hash = ${hash}`
            return toVersion(existing!)
          })
        )
        .pipe(orDieSql)
    })

    const version = Effect.fn("Prompts.version")(function* (
      owner: UserId,
      id: PromptId,
      versionId: PromptVersionId
    ) {
      return yield* findVersion(owner, id, versionId)
    })

    const diff = Effect.fn("Prompts.diff")(function* (
      owner: UserId,
      id: PromptId,
      from: PromptVersionId,
      to: PromptVersionId
    ) {
      const before = yield* findVersion(owner, id, from)
      const after = yield* findVersion(owner, id, to)
      const systemText = diffLines(before.body.systemText, after.body.systemText)
      const userTemplate = diffLines(before.body.userTemplate, after.body.userTemplate)
      const systemStats = diffStats(systemText)
      const templateStats = diffStats(userTemplate)
      const result: PromptVersionDiff = {
        from: refOf(before),
        to: refOf(after),
        systemText,
        userTemplate,
        params: paramChanges(before.body.defaultParams, after.body.defaultParams),
        stats: {
          added: systemStats.added + templateStats.added,
          removed: systemStats.removed + templateStats.removed
        }
      }
      return result
    })

    return { list, create, get, update, remove, versions, freeze, version, diff } as const
  })
}) {}
