import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { PromptId, PromptVersionId, RunId, UserId } from "../src/domain/Ids.ts"
import type { PromptCreate } from "../src/domain/Prompt.ts"
import { Prompts } from "../src/services/Prompts.ts"
import { testDatabases } from "./support/TestDatabase.ts"

const newOwner = () => UserId.make(crypto.randomUUID())

const draft = (overrides: Partial<PromptCreate> = {}): PromptCreate => ({
  name: "Summarise",
  type: "generator",
  systemText: "",
  userTemplate: "",
  defaultParams: {},
  ...overrides
})

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex")

const countVersions = (promptId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ n: number }>`
      select count(*)::int as n from assay.prompt_version where prompt_id = ${promptId}`
    return row!.n
  })

/** A run of `promptVersionId`, straight in SQL, optionally graded by `graderVersionId`. */
const insertRun = (
  owner: string,
  promptId: string,
  promptVersionId: string,
  graderVersionId: string | null = null
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ id: string }>`
      insert into assay.run (owner_id, prompt_id, prompt_version_id, grader_prompt_version_id)
      values (${owner}, ${promptId}, ${promptVersionId}, ${graderVersionId}) returning id`
    return RunId.make(row!.id)
  })

for (const db of testDatabases) {
  layer(Prompts.Default.pipe(Layer.provideMerge(db.layer)), { excludeTestServices: true, timeout: 60_000 })(
    `Prompts on ${db.kind}`,
    (it) => {
      it.effect("creates a prompt and gets it back", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(
            owner,
            draft({
              name: "Classify",
              type: "grader",
              systemText: "You grade answers.",
              userTemplate: "Question: {{question}}\nAnswer: {{ output }}",
              defaultParams: { temperature: 0, max_tokens: 50 }
            })
          )
          expect(created.name).toBe("Classify")
          expect(created.type).toBe("grader")
          expect(created.systemText).toBe("You grade answers.")
          expect(created.userTemplate).toBe("Question: {{question}}\nAnswer: {{ output }}")
          expect(created.defaultParams).toEqual({ temperature: 0, max_tokens: 50 })
          expect(created.placeholders).toEqual(["question", "output"])
          expect(created.lineage).toBe(1)
          expect(created.latestVersion).toBeNull()
          expect(created.updatedAt.epochMillis).toBeGreaterThanOrEqual(created.createdAt.epochMillis)

          const fetched = yield* prompts.get(owner, created.id)
          expect(fetched).toEqual(created)

          const missing = yield* Effect.flip(prompts.get(owner, PromptId.make(crypto.randomUUID())))
          expect(missing._tag).toBe("NotFound")
          expect(missing.code).toBe("prompt_not_found")
        })
      )

      it.effect("lists newest updated first, page by page with the cursor", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const ids: Array<PromptId> = []
          for (let i = 0; i < 5; i++) {
            ids.push((yield* prompts.create(owner, draft({ name: `P${i}` }))).id)
            // distinct milliseconds, so that the expected order is the creation order reversed
            yield* Effect.sleep("3 millis")
          }
          // another owner's prompt never shows
          yield* prompts.create(newOwner(), draft({ name: "Other" }))

          const first = yield* prompts.list(owner, { limit: 2 })
          expect(first.items.map((p) => p.name)).toEqual(["P4", "P3"])
          expect(first.nextCursor).not.toBeNull()
          const second = yield* prompts.list(owner, { limit: 2, cursor: first.nextCursor! })
          expect(second.items.map((p) => p.name)).toEqual(["P2", "P1"])
          expect(second.nextCursor).not.toBeNull()
          const third = yield* prompts.list(owner, { limit: 2, cursor: second.nextCursor! })
          expect(third.items.map((p) => p.name)).toEqual(["P0"])
          expect(third.nextCursor).toBeNull()

          // an exact fit has no next page
          const all = yield* prompts.list(owner, { limit: 5 })
          expect(all.items.map((p) => p.id)).toEqual([...ids].reverse())
          expect(all.nextCursor).toBeNull()

          // an edit moves a prompt to the front
          yield* prompts.update(owner, ids[0]!, { userTemplate: "edited" })
          const afterEdit = yield* prompts.list(owner, {})
          expect(afterEdit.items.map((p) => p.name)).toEqual(["P0", "P4", "P3", "P2", "P1"])

          const badCursor = yield* Effect.flip(prompts.list(owner, { cursor: "not-a-cursor" }))
          expect(badCursor._tag).toBe("BadRequest")
          expect(badCursor.code).toBe("invalid_cursor")
          const badLimit = yield* Effect.flip(prompts.list(owner, { limit: 0 }))
          expect(badLimit.code).toBe("invalid_limit")
        })
      )

      it.effect("pages through prompts updated within the same millisecond without skipping any", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          const ids = new Set<string>()
          for (let i = 0; i < 5; i++) ids.add((yield* prompts.create(owner, draft({ name: `Same ${i}` }))).id)
          // microseconds apart inside one millisecond (the cursor only holds milliseconds); triggers off, or
          // the touch trigger would overwrite them
          yield* sql.withTransaction(
            Effect.zipRight(
              sql`set local session_replication_role = replica`,
              sql`update assay.prompt p set updated_at = '2030-01-01T00:00:00Z'::timestamptz + n.k * interval '150 microseconds'
                from (select id, row_number() over (order by id) as k from assay.prompt where owner_id = ${owner}) n
                where p.id = n.id`
            )
          )
          const [spread] = yield* sql<{ n: number }>`
            select count(distinct updated_at)::int as n from assay.prompt
            where owner_id = ${owner} and date_trunc('milliseconds', updated_at) = '2030-01-01T00:00:00Z'`
          expect(spread!.n).toBe(5)
          const seen: Array<string> = []
          let cursor: string | undefined
          for (let page = 0; page < 5; page++) {
            const result = yield* prompts.list(
              owner,
              cursor === undefined ? { limit: 2 } : { limit: 2, cursor }
            )
            seen.push(...result.items.map((p) => p.id))
            if (result.nextCursor === null) break
            cursor = result.nextCursor
          }
          expect(seen.length).toBe(5)
          expect(new Set(seen)).toEqual(ids)
        })
      )

      it.effect("filters by type", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const generator = yield* prompts.create(owner, draft({ name: "Gen", type: "generator" }))
          const grader = yield* prompts.create(owner, draft({ name: "Judge", type: "grader" }))
          const graders = yield* prompts.list(owner, { type: "grader" })
          expect(graders.items.map((p) => p.id)).toEqual([grader.id])
          const generators = yield* prompts.list(owner, { type: "generator" })
          expect(generators.items.map((p) => p.id)).toEqual([generator.id])
          const both = yield* prompts.list(owner, {})
          expect(both.items.map((p) => p.id).sort()).toEqual([generator.id, grader.id].sort())
        })
      )

      it.effect("updates only the fields given; only a real rename starts a new lineage", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(
            owner,
            draft({ systemText: "Be brief.", userTemplate: "{{text}}", defaultParams: { temperature: 0.5 } })
          )

          const edited = yield* prompts.update(owner, created.id, { systemText: "Be thorough. {{ tone }}" })
          expect(edited.systemText).toBe("Be thorough. {{ tone }}")
          expect(edited.userTemplate).toBe("{{text}}")
          expect(edited.defaultParams).toEqual({ temperature: 0.5 })
          expect(edited.placeholders).toEqual(["tone", "text"])
          expect(edited.name).toBe("Summarise")
          expect(edited.lineage).toBe(1)
          expect(edited.type).toBe("generator")

          const params = yield* prompts.update(owner, created.id, { defaultParams: { top_p: 0.9 } })
          expect(params.defaultParams).toEqual({ top_p: 0.9 })
          expect(params.systemText).toBe("Be thorough. {{ tone }}")

          const sameName = yield* prompts.update(owner, created.id, {
            name: "Summarise",
            userTemplate: "{{ doc }}"
          })
          expect(sameName.lineage).toBe(1)
          expect(sameName.userTemplate).toBe("{{ doc }}")

          const renamed = yield* prompts.update(owner, created.id, { name: "Digest" })
          expect(renamed.name).toBe("Digest")
          expect(renamed.lineage).toBe(2)
          expect(renamed.userTemplate).toBe("{{ doc }}")

          const nothing = yield* prompts.update(owner, created.id, {})
          expect(nothing).toEqual(renamed)
          expect(yield* prompts.get(owner, created.id)).toEqual(renamed)

          const invalid = yield* Effect.flip(prompts.update(owner, created.id, { name: "   " }))
          expect(invalid._tag).toBe("Unprocessable")
          expect(invalid.code).toBe("invalid_prompt")
          const invalidParams = yield* Effect.flip(
            prompts.update(owner, created.id, { defaultParams: { temperature: 5 } })
          )
          expect(invalidParams.code).toBe("invalid_prompt")
          expect((yield* prompts.get(owner, created.id)).defaultParams).toEqual({ top_p: 0.9 })
        })
      )

      it.effect("extracts placeholders: whitespace, dots and dashes, escapes, system text first", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(
            owner,
            draft({
              systemText: "Hello {{ user.first-name }}, about {{topic}}. Literal \\{{ not_this }}.",
              userTemplate:
                "{{\ttopic\t}} {{  doc_1  }} \\\\{{ after_backslash }} {{ user.first-name }} {{\nlast\n}}"
            })
          )
          expect(created.placeholders).toEqual([
            "user.first-name",
            "topic",
            "doc_1",
            "after_backslash",
            "last"
          ])
          const fetched = yield* prompts.get(owner, created.id)
          expect(fetched.placeholders).toEqual(created.placeholders)
        })
      )

      it.effect("rejects a template that does not parse, with every issue and its position", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const error = yield* Effect.flip(
            prompts.create(
              owner,
              draft({
                name: "Broken",
                systemText: "ok {{ }}",
                userTemplate: "first line\n  {{ 1st }} and {{ open"
              })
            )
          )
          expect(error._tag).toBe("Unprocessable")
          expect(error.code).toBe("invalid_template")
          const issues = (error.details as { issues: ReadonlyArray<Record<string, unknown>> }).issues
          expect(issues.map(({ part, line, column }) => ({ part, line, column }))).toEqual([
            { part: "system", line: 1, column: 4 },
            { part: "template", line: 2, column: 3 },
            { part: "template", line: 2, column: 17 }
          ])
          expect(error.message).toContain("system prompt line 1, column 4")
          expect(error.message).toContain("template line 2, column 3")
          expect((yield* prompts.list(owner, {})).items).toEqual([])

          const created = yield* prompts.create(owner, draft({ userTemplate: "{{ fine }}" }))
          const updateError = yield* Effect.flip(
            prompts.update(owner, created.id, { userTemplate: "{{ fine }" })
          )
          expect(updateError.code).toBe("invalid_template")
          expect((yield* prompts.get(owner, created.id)).userTemplate).toBe("{{ fine }}")
        })
      )

      it.effect("freezes versions: same body same version, numbers per lineage, renames restart at 1", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(
            owner,
            draft({
              name: "A",
              systemText: "sys",
              userTemplate: "t1 {{x}}",
              defaultParams: { temperature: 0.5, max_tokens: 5 }
            })
          )
          const v1 = yield* prompts.freeze(owner, created.id)
          expect([v1.lineage, v1.versionNumber, v1.name]).toEqual([1, 1, "A"])
          expect(v1.promptId).toBe(created.id)
          expect(v1.runId).toBeNull()
          expect(v1.body).toEqual({
            systemText: "sys",
            userTemplate: "t1 {{x}}",
            defaultParams: { temperature: 0.5, max_tokens: 5 }
          })
          // sha256 of the body's JSON with sorted keys
          expect(v1.hash).toBe(
            sha256(
              '{"defaultParams":{"max_tokens":5,"temperature":0.5},"systemText":"sys","userTemplate":"t1 {{x}}"}'
            )
          )
          expect((yield* prompts.get(owner, created.id)).latestVersion).toEqual({
            id: v1.id,
            lineage: 1,
            versionNumber: 1
          })

          const again = yield* prompts.freeze(owner, created.id)
          expect(again).toEqual(v1)

          // the same parameters written in another key order are the same body
          yield* prompts.update(owner, created.id, { defaultParams: { max_tokens: 5, temperature: 0.5 } })
          expect((yield* prompts.freeze(owner, created.id)).id).toBe(v1.id)

          yield* prompts.update(owner, created.id, { userTemplate: "t2 {{x}}" })
          const v2 = yield* prompts.freeze(owner, created.id)
          expect([v2.lineage, v2.versionNumber]).toEqual([1, 2])
          expect(v2.id).not.toBe(v1.id)

          yield* prompts.update(owner, created.id, { name: "B", userTemplate: "t3 {{x}}" })
          const v3 = yield* prompts.freeze(owner, created.id)
          expect([v3.lineage, v3.versionNumber, v3.name]).toEqual([2, 1, "B"])

          // back to the old name and an old body: the existing version, nothing new
          const renamedBack = yield* prompts.update(owner, created.id, {
            name: "A",
            userTemplate: "t2 {{x}}"
          })
          expect(renamedBack.lineage).toBe(3)
          const existing = yield* prompts.freeze(owner, created.id)
          expect(existing).toEqual(v2)
          expect(yield* countVersions(created.id)).toBe(3)
          // the latest version is the one made last, not the one returned last
          expect((yield* prompts.get(owner, created.id)).latestVersion).toEqual({
            id: v3.id,
            lineage: 2,
            versionNumber: 1
          })

          yield* prompts.update(owner, created.id, { userTemplate: "t4 {{x}}" })
          const v4 = yield* prompts.freeze(owner, created.id)
          expect([v4.lineage, v4.versionNumber, v4.name]).toEqual([3, 1, "A"])

          expect(yield* prompts.version(owner, created.id, v2.id)).toEqual(v2)
          const unknown = yield* Effect.flip(
            prompts.version(owner, created.id, PromptVersionId.make(crypto.randomUUID()))
          )
          expect(unknown.code).toBe("version_not_found")
          // a version of another prompt is not found through this one
          const other = yield* prompts.create(owner, draft({ userTemplate: "other" }))
          const otherVersion = yield* prompts.freeze(owner, other.id)
          const crossed = yield* Effect.flip(prompts.version(owner, created.id, otherVersion.id))
          expect(crossed.code).toBe("version_not_found")
        })
      )

      it.effect("concurrent freezes of one draft make one version, which all of them get", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))
          const results = yield* Effect.all(
            Array.from({ length: 8 }, () => prompts.freeze(owner, created.id)),
            { concurrency: "unbounded" }
          )
          expect(new Set(results.map((v) => v.id)).size).toBe(1)
          expect(results[0]!.versionNumber).toBe(1)
          expect(yield* countVersions(created.id)).toBe(1)

          yield* prompts.update(owner, created.id, { userTemplate: "{{text}}!" })
          const next = yield* Effect.all(
            Array.from({ length: 8 }, () => prompts.freeze(owner, created.id)),
            { concurrency: "unbounded" }
          )
          expect(new Set(next.map((v) => v.id)).size).toBe(1)
          expect(next[0]!.versionNumber).toBe(2)
          expect(yield* countVersions(created.id)).toBe(2)
        })
      )

      it.effect("concurrent edits and freezes number every new body once, without gaps or clashes", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "start" }))
          const frozen = yield* Effect.all(
            Array.from({ length: 10 }, (_, i) =>
              Effect.zipRight(
                prompts.update(owner, created.id, { userTemplate: `body ${i % 4}` }),
                prompts.freeze(owner, created.id)
              )
            ),
            { concurrency: "unbounded" }
          )
          const listed = yield* prompts.versions(owner, created.id)
          expect(new Set(frozen.map((v) => v.id))).toEqual(new Set(listed.map((v) => v.id)))
          expect(new Set(listed.map((v) => v.hash)).size).toBe(listed.length)
          expect(listed.map((v) => v.versionNumber).sort((a, b) => a - b)).toEqual(
            Array.from({ length: listed.length }, (_, i) => i + 1)
          )
        })
      )

      it.effect("freezes inside a caller's transaction, and rolls back with it", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))

          const failed = yield* Effect.flip(
            sql.withTransaction(
              Effect.zipRight(prompts.freeze(owner, created.id), Effect.fail("the run could not be created"))
            )
          )
          expect(failed).toBe("the run could not be created")
          expect(yield* countVersions(created.id)).toBe(0)

          const inside = yield* sql.withTransaction(prompts.freeze(owner, created.id))
          expect(inside.versionNumber).toBe(1)
          expect(yield* countVersions(created.id)).toBe(1)
        })
      )

      it.effect("records the run of a version only when the freeze creates it", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))
          const v1 = yield* prompts.freeze(owner, created.id)
          const firstRun = yield* insertRun(owner, created.id, v1.id)
          const secondRun = yield* insertRun(owner, created.id, v1.id)

          // unchanged body: the existing version keeps its (absent) run
          const reused = yield* prompts.freeze(owner, created.id, { runId: firstRun })
          expect(reused.id).toBe(v1.id)
          expect(reused.runId).toBeNull()

          yield* prompts.update(owner, created.id, { userTemplate: "{{ text }} please" })
          const v2 = yield* prompts.freeze(owner, created.id, { runId: firstRun })
          expect(v2.versionNumber).toBe(2)
          expect(v2.runId).toBe(firstRun)
          const v2Again = yield* prompts.freeze(owner, created.id, { runId: secondRun })
          expect(v2Again.id).toBe(v2.id)
          expect(v2Again.runId).toBe(firstRun)
        })
      )

      it.effect("refuses to freeze a draft whose template does not parse", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))
          // a draft written around the service (an older release, a manual fix)
          yield* sql`update assay.prompt set user_template = 'line\n{{ broken' where id = ${created.id}`
          const error = yield* Effect.flip(prompts.freeze(owner, created.id))
          expect(error._tag).toBe("Unprocessable")
          expect(error.code).toBe("invalid_template")
          expect(yield* countVersions(created.id)).toBe(0)
        })
      )

      it.effect("lists versions newest first, unchanged by later edits", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "one" }))
          expect(yield* prompts.versions(owner, created.id)).toEqual([])
          const v1 = yield* prompts.freeze(owner, created.id)
          yield* prompts.update(owner, created.id, { userTemplate: "two" })
          const v2 = yield* prompts.freeze(owner, created.id)
          yield* prompts.update(owner, created.id, { name: "Renamed", userTemplate: "three" })
          const v3 = yield* prompts.freeze(owner, created.id)

          const listed = yield* prompts.versions(owner, created.id)
          expect(listed.map((v) => v.id)).toEqual([v3.id, v2.id, v1.id])
          expect(listed.map((v) => [v.lineage, v.versionNumber])).toEqual([
            [2, 1],
            [1, 2],
            [1, 1]
          ])
          expect(listed.map((v) => v.body.userTemplate)).toEqual(["three", "two", "one"])

          yield* prompts.update(owner, created.id, {
            name: "Again",
            systemText: "new system",
            userTemplate: "four",
            defaultParams: { seed: 7 }
          })
          expect(yield* prompts.versions(owner, created.id)).toEqual(listed)
          expect(yield* prompts.version(owner, created.id, v1.id)).toEqual(v1)
        })
      )

      it.effect("diffs two versions: both texts by line, and the changed parameters", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(
            owner,
            draft({
              systemText: "You are helpful.\nBe brief.",
              userTemplate: "Summarise {{text}}",
              defaultParams: { temperature: 0.2, max_tokens: 100, stop: ["END"] }
            })
          )
          const v1 = yield* prompts.freeze(owner, created.id)
          yield* prompts.update(owner, created.id, {
            systemText: "You are helpful.\nBe thorough.\nCite sources.",
            defaultParams: { temperature: 0.7, top_p: 0.9, stop: ["END"] }
          })
          const v2 = yield* prompts.freeze(owner, created.id)

          const diff = yield* prompts.diff(owner, created.id, v1.id, v2.id)
          expect(diff.from).toEqual({ id: v1.id, lineage: 1, versionNumber: 1 })
          expect(diff.to).toEqual({ id: v2.id, lineage: 1, versionNumber: 2 })
          expect(diff.systemText).toEqual([
            { op: "equal", text: "You are helpful." },
            { op: "delete", text: "Be brief." },
            { op: "insert", text: "Be thorough." },
            { op: "insert", text: "Cite sources." }
          ])
          expect(diff.userTemplate).toEqual([{ op: "equal", text: "Summarise {{text}}" }])
          expect(diff.params).toEqual([
            { key: "max_tokens", from: 100 },
            { key: "temperature", from: 0.2, to: 0.7 },
            { key: "top_p", to: 0.9 }
          ])
          expect(diff.stats).toEqual({ added: 2, removed: 1 })

          const backwards = yield* prompts.diff(owner, created.id, v2.id, v1.id)
          expect(backwards.params).toEqual([
            { key: "max_tokens", to: 100 },
            { key: "temperature", from: 0.7, to: 0.2 },
            { key: "top_p", from: 0.9 }
          ])
          expect(backwards.stats).toEqual({ added: 1, removed: 2 })

          const same = yield* prompts.diff(owner, created.id, v1.id, v1.id)
          expect(same.params).toEqual([])
          expect(same.stats).toEqual({ added: 0, removed: 0 })

          const missing = yield* Effect.flip(
            prompts.diff(owner, created.id, v1.id, PromptVersionId.make(crypto.randomUUID()))
          )
          expect(missing.code).toBe("version_not_found")
        })
      )

      it.effect("another owner's prompt is not found, and stays untouched", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const stranger = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))
          const v1 = yield* prompts.freeze(owner, created.id)

          const attempts: ReadonlyArray<
            Effect.Effect<unknown, { readonly _tag: string; readonly code: string }>
          > = [
            prompts.get(stranger, created.id),
            prompts.update(stranger, created.id, { name: "Hijacked", userTemplate: "mine" }),
            prompts.remove(stranger, created.id),
            prompts.versions(stranger, created.id),
            prompts.freeze(stranger, created.id),
            prompts.version(stranger, created.id, v1.id),
            prompts.diff(stranger, created.id, v1.id, v1.id)
          ]
          for (const attempt of attempts) {
            const error = yield* Effect.flip(attempt)
            expect(error._tag).toBe("NotFound")
            expect(error.code).toBe("prompt_not_found")
          }
          expect((yield* prompts.list(stranger, {})).items).toEqual([])

          const after = yield* prompts.get(owner, created.id)
          expect(after.name).toBe("Summarise")
          expect(after.userTemplate).toBe("{{text}}")
          expect(yield* countVersions(created.id)).toBe(1)
        })
      )

      it.effect("deleting a prompt deletes its versions", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const owner = newOwner()
          const created = yield* prompts.create(owner, draft({ userTemplate: "one" }))
          const kept = yield* prompts.create(owner, draft({ name: "Kept", userTemplate: "kept" }))
          yield* prompts.freeze(owner, created.id)
          yield* prompts.update(owner, created.id, { userTemplate: "two" })
          yield* prompts.freeze(owner, created.id)
          yield* prompts.freeze(owner, kept.id)
          expect(yield* countVersions(created.id)).toBe(2)

          yield* prompts.remove(owner, created.id)
          expect(yield* countVersions(created.id)).toBe(0)
          expect((yield* Effect.flip(prompts.get(owner, created.id))).code).toBe("prompt_not_found")
          expect((yield* Effect.flip(prompts.remove(owner, created.id))).code).toBe("prompt_not_found")
          expect(yield* countVersions(kept.id)).toBe(1)
          expect((yield* prompts.list(owner, {})).items.map((p) => p.id)).toEqual([kept.id])
        })
      )

      it.effect("a grader used by a run cannot be deleted; deleting the generator takes the run along", () =>
        Effect.gen(function* () {
          const prompts = yield* Prompts
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          const generator = yield* prompts.create(owner, draft({ userTemplate: "{{text}}" }))
          const grader = yield* prompts.create(
            owner,
            draft({ name: "Judge", type: "grader", userTemplate: "Is {{output}} right?" })
          )
          const generatorVersion = yield* prompts.freeze(owner, generator.id)
          const graderVersion = yield* prompts.freeze(owner, grader.id)
          const runId = yield* insertRun(owner, generator.id, generatorVersion.id, graderVersion.id)

          const blocked = yield* Effect.flip(prompts.remove(owner, grader.id))
          expect(blocked._tag).toBe("Conflict")
          expect(blocked.code).toBe("prompt_in_use")
          expect((yield* prompts.get(owner, grader.id)).id).toBe(grader.id)
          expect(yield* countVersions(grader.id)).toBe(1)

          yield* prompts.remove(owner, generator.id)
          const runs = yield* sql<{ n: number }>`select count(*)::int as n from assay.run where id = ${runId}`
          expect(runs[0]!.n).toBe(0)

          yield* prompts.remove(owner, grader.id)
          expect(yield* countVersions(grader.id)).toBe(0)
        })
      )
    }
  )
}
