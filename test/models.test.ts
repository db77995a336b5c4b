import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { ModelConfigId, UserId } from "../src/domain/Ids.ts"
import { ModelConfigCreate } from "../src/domain/Model.ts"
import { DEFAULT_MODELS, Models } from "../src/services/Models.ts"
import { seedRun } from "./support/fixtures.ts"
import { testDatabases } from "./support/TestDatabase.ts"

const newOwner = () => UserId.make(crypto.randomUUID())

/** A create request as the HTTP layer would decode it, defaults filled in. */
const input = (fields: Record<string, unknown>) => Schema.decodeUnknownSync(ModelConfigCreate)(fields)

const count = (sql: SqlClient.SqlClient, owner: UserId) =>
  Effect.map(
    sql<{ n: number }>`select count(*)::int as n from assay.model_config where owner_id = ${owner}`,
    (rows) => rows[0]!.n
  )

for (const db of testDatabases) {
  layer(Models.Default.pipe(Layer.provideMerge(db.layer)), { excludeTestServices: true, timeout: 60_000 })(
    `Models on ${db.kind}`,
    (it) => {
      it.effect("creates with defaults, gets, lists defaults first then by label, updates and removes", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const owner = newOwner()
          const plain = yield* models.create(owner, input({ provider: "openai", model: "gpt-4.1" }))
          expect(plain.label).toBe("gpt-4.1")
          expect(plain.baseUrl).toBeNull()
          expect(plain.params).toEqual({})
          expect(plain.inputPricePerMTok).toBe(0)
          expect(plain.outputPricePerMTok).toBe(0)
          expect(plain.isDefault).toBe(false)
          expect(plain.requestsPerMinute).toBeNull()

          const full = yield* models.create(
            owner,
            input({
              provider: "openai-compatible",
              model: "llama3.1:8b",
              label: "Alpha local",
              baseUrl: "http://127.0.0.1:11434/v1",
              params: { temperature: 0.2, max_tokens: 256, top_p: 0.9 },
              inputPricePerMTok: 0.123456,
              outputPricePerMTok: 1.5,
              requestsPerMinute: 60,
              tokensPerMinute: 100_000,
              maxConcurrency: 2
            })
          )
          expect(typeof full.inputPricePerMTok).toBe("number")
          expect(full.inputPricePerMTok).toBe(0.123456)
          expect(full.outputPricePerMTok).toBe(1.5)
          expect(full.params).toEqual({ temperature: 0.2, max_tokens: 256, top_p: 0.9 })
          expect(full.baseUrl).toBe("http://127.0.0.1:11434/v1")
          expect([full.requestsPerMinute, full.tokensPerMinute, full.maxConcurrency]).toEqual([
            60, 100_000, 2
          ])

          const starred = yield* models.create(
            owner,
            input({ provider: "mock", model: "mock-z", label: "Zulu mock", isDefault: true })
          )
          expect(starred.isDefault).toBe(true)

          const got = yield* models.get(owner, full.id)
          expect(got).toEqual(full)
          expect((yield* models.list(owner)).map((m) => m.label)).toEqual([
            "Zulu mock",
            "Alpha local",
            "gpt-4.1"
          ])

          const updated = yield* models.update(owner, full.id, {
            label: "Beta local",
            outputPricePerMTok: 2.25,
            params: { temperature: 1 },
            maxConcurrency: null
          })
          expect(updated.label).toBe("Beta local")
          expect(updated.outputPricePerMTok).toBe(2.25)
          // untouched fields keep their values
          expect(updated.inputPricePerMTok).toBe(0.123456)
          expect(updated.baseUrl).toBe("http://127.0.0.1:11434/v1")
          expect(updated.requestsPerMinute).toBe(60)
          expect(updated.params).toEqual({ temperature: 1 })
          expect(updated.maxConcurrency).toBeNull()
          expect(yield* models.get(owner, full.id)).toEqual(updated)

          yield* models.remove(owner, plain.id)
          const gone = yield* Effect.flip(models.get(owner, plain.id))
          expect(gone._tag).toBe("NotFound")
          expect(gone.code).toBe("model_not_found")
          expect((yield* models.list(owner)).map((m) => m.id)).toEqual([starred.id, full.id])
          const again = yield* Effect.flip(models.remove(owner, plain.id))
          expect(again.code).toBe("model_not_found")
        })
      )

      it.effect(
        "a duplicate is a Conflict; another base URL is another model; blank and null base URLs match",
        () =>
          Effect.gen(function* () {
            const models = yield* Models
            const owner = newOwner()
            yield* models.create(owner, input({ provider: "openai", model: "gpt-4o-mini" }))
            const duplicate = yield* Effect.flip(
              models.create(owner, input({ provider: "openai", model: "gpt-4o-mini", label: "again" }))
            )
            expect(duplicate._tag).toBe("Conflict")
            expect(duplicate.code).toBe("model_exists")

            const blank = yield* Effect.flip(
              models.create(owner, { ...input({ provider: "openai", model: "gpt-4o-mini" }), baseUrl: "" })
            )
            expect(blank.code).toBe("model_exists")

            const proxied = yield* models.create(
              owner,
              input({ provider: "openai", model: "gpt-4o-mini", baseUrl: "https://gateway.example.com/v1" })
            )
            expect(proxied.baseUrl).toBe("https://gateway.example.com/v1")
            // the same model for another owner is no conflict
            yield* models.create(newOwner(), input({ provider: "openai", model: "gpt-4o-mini" }))

            // an update onto another model's identity is a Conflict too, and changes nothing
            const clash = yield* Effect.flip(models.update(owner, proxied.id, { baseUrl: null }))
            expect(clash.code).toBe("model_exists")
            expect((yield* models.get(owner, proxied.id)).baseUrl).toBe("https://gateway.example.com/v1")
            expect(yield* count(yield* SqlClient.SqlClient, owner)).toBe(2)
          })
      )

      it.effect("openai-compatible needs a base URL, on create and on update", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const owner = newOwner()
          const missing = yield* Effect.flip(
            models.create(owner, input({ provider: "openai-compatible", model: "qwen" }))
          )
          expect(missing._tag).toBe("BadRequest")
          expect(missing.code).toBe("base_url_required")
          expect(yield* count(yield* SqlClient.SqlClient, owner)).toBe(0)

          const local = yield* models.create(
            owner,
            input({ provider: "openai-compatible", model: "qwen", baseUrl: "http://localhost:8000/v1" })
          )
          const cleared = yield* Effect.flip(models.update(owner, local.id, { baseUrl: null }))
          expect(cleared.code).toBe("base_url_required")
          expect((yield* models.get(owner, local.id)).baseUrl).toBe("http://localhost:8000/v1")
        })
      )

      it.effect("getMany answers in the order asked and names the ids that are not the owner's", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const owner = newOwner()
          const a = yield* models.create(owner, input({ provider: "mock", model: "a" }))
          const b = yield* models.create(owner, input({ provider: "mock", model: "b" }))
          const c = yield* models.create(owner, input({ provider: "mock", model: "c" }))
          const theirs = yield* models.create(newOwner(), input({ provider: "mock", model: "d" }))

          expect((yield* models.getMany(owner, [c.id, a.id, b.id])).map((m) => m.model)).toEqual([
            "c",
            "a",
            "b"
          ])
          expect(yield* models.getMany(owner, [])).toEqual([])

          const unknown = ModelConfigId.make(crypto.randomUUID())
          const error = yield* Effect.flip(models.getMany(owner, [b.id, theirs.id, unknown]))
          expect(error._tag).toBe("NotFound")
          expect(error.code).toBe("model_not_found")
          expect(error.details).toEqual({ missing: [theirs.id, unknown] })
        })
      )

      it.effect("seedDefaults adds the defaults once, keeps edits, and is idempotent", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          const first = yield* models.seedDefaults(owner)
          expect(first).toHaveLength(DEFAULT_MODELS.length)
          expect(first[0]!.model).toBe("mock-1")
          expect(first[0]!.label).toBe("Mock (deterministic)")
          expect(first.filter((m) => m.isDefault).map((m) => m.model)).toEqual(["mock-1"])
          const sonnet = first.find((m) => m.model === "claude-sonnet-4-5")!
          expect([sonnet.provider, sonnet.inputPricePerMTok, sonnet.outputPricePerMTok]).toEqual([
            "anthropic",
            3,
            15
          ])
          const mini = first.find((m) => m.model === "gpt-4.1-mini")!
          expect([mini.provider, mini.inputPricePerMTok, mini.outputPricePerMTok]).toEqual([
            "openai",
            0.4,
            1.6
          ])

          const second = yield* models.seedDefaults(owner)
          expect(second).toEqual(first)
          expect(yield* count(sql, owner)).toBe(DEFAULT_MODELS.length)

          // an edited price survives a later seed, and a removed default comes back
          yield* models.update(owner, mini.id, { inputPricePerMTok: 0.5 })
          yield* models.remove(owner, sonnet.id)
          const third = yield* models.seedDefaults(owner)
          expect(third).toHaveLength(DEFAULT_MODELS.length)
          expect(third.find((m) => m.model === "gpt-4.1-mini")!.inputPricePerMTok).toBe(0.5)
          expect(third.find((m) => m.model === "claude-sonnet-4-5")!.id).not.toBe(sonnet.id)
        })
      )

      it.effect("a model used by a run cannot be removed", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const sql = yield* SqlClient.SqlClient
          const owner = newOwner()
          // seedRun makes the owner's models mock-a and mock-b and a run that uses both
          yield* seedRun(sql, { ownerId: owner, rows: 1 })
          const used = (yield* models.list(owner)).find((m) => m.model === "mock-a")!
          const error = yield* Effect.flip(models.remove(owner, used.id))
          expect(error._tag).toBe("Conflict")
          expect(error.code).toBe("model_in_use")
          expect((yield* models.get(owner, used.id)).id).toBe(used.id)
        })
      )

      it.effect("another owner's model is NotFound for every method", () =>
        Effect.gen(function* () {
          const models = yield* Models
          const owner = newOwner()
          const intruder = newOwner()
          const mine = yield* models.create(owner, input({ provider: "mock", model: "private" }))
          expect(yield* models.list(intruder)).toEqual([])
          const errors = [
            yield* Effect.flip(models.get(intruder, mine.id)),
            yield* Effect.flip(models.getMany(intruder, [mine.id])),
            yield* Effect.flip(models.update(intruder, mine.id, { label: "mine now" })),
            yield* Effect.flip(models.remove(intruder, mine.id))
          ]
          expect(errors.map((e) => `${e._tag}:${e.code}`)).toEqual(Array(4).fill("NotFound:model_not_found"))
          const still = yield* models.get(owner, mine.id)
          expect(still.label).toBe("private")
        })
      )
    }
  )
}
