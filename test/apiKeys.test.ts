import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option, Redacted } from "effect"
import { UserId } from "../src/domain/Ids.ts"
import { ApiKeys } from "../src/services/ApiKeys.ts"
import * as KeyCipher from "../src/services/KeyCipher.ts"
import { testConfig } from "./support/TestConfig.ts"
import { testDatabases } from "./support/TestDatabase.ts"

const ENV_OPENAI = "sk-env-openai-0000000000000000000000"
const ENV_ANTHROPIC = "sk-ant-env-11111111111111111111111"

const newOwner = () => UserId.make(crypto.randomUUID())
const secret = () => `sk-proj-${crypto.randomUUID().replaceAll("-", "")}`
const randomKey = () => Redacted.make(crypto.getRandomValues(new Uint8Array(32)))

const reveal = (key: Option.Option<Redacted.Redacted<string>>) => Option.map(key, Redacted.value)

for (const db of testDatabases) {
  layer(
    ApiKeys.Default.pipe(
      Layer.provideMerge(db.layer),
      Layer.provideMerge(KeyCipher.layer(randomKey())),
      Layer.provide(testConfig({ OPENAI_API_KEY: ENV_OPENAI, ANTHROPIC_API_KEY: ENV_ANTHROPIC }))
    ),
    { excludeTestServices: true, timeout: 60_000 }
  )(`ApiKeys on ${db.kind}`, (it) => {
    it.effect("put, list and remove; the listing shows only provider, masked suffix and dates", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const owner = newOwner()
        expect(yield* keys.list(owner)).toEqual([])
        const plaintext = secret()
        const info = yield* keys.put(owner, "openai", Redacted.make(plaintext))
        expect(info.provider).toBe("openai")
        expect(info.masked).toBe(`…${plaintext.slice(-4)}`)
        yield* keys.put(owner, "anthropic", Redacted.make(secret()))

        const listed = yield* keys.list(owner)
        expect(listed.map((k) => k.provider)).toEqual(["anthropic", "openai"])
        expect(Object.keys(listed[1]!).sort()).toEqual(["createdAt", "masked", "provider", "updatedAt"])
        expect(listed[1]!.masked).toBe(info.masked)
        expect(JSON.stringify(listed)).not.toContain(plaintext)
        expect(JSON.stringify(listed)).not.toContain(plaintext.slice(0, -4))
        expect(JSON.stringify(info)).not.toContain(plaintext)

        yield* keys.remove(owner, "openai")
        expect((yield* keys.list(owner)).map((k) => k.provider)).toEqual(["anthropic"])
        const missing = yield* Effect.flip(keys.remove(owner, "openai"))
        expect(missing._tag).toBe("NotFound")
        expect(missing.code).toBe("api_key_not_found")
      })
    )

    it.effect("the stored bytes do not contain the key, and the suffix column holds only the mask", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const sql = yield* SqlClient.SqlClient
        const owner = newOwner()
        const plaintext = secret()
        yield* keys.put(owner, "openai-compatible", Redacted.make(plaintext))
        const [row] = yield* sql<{ encrypted_key: Uint8Array; key_suffix: string }>`
          select encrypted_key, key_suffix from assay.api_key where owner_id = ${owner}`
        const bytes = Buffer.from(row!.encrypted_key)
        expect(bytes.length).toBe(1 + 12 + plaintext.length + 16)
        expect(bytes.toString("latin1")).not.toContain(plaintext)
        expect(bytes.toString("latin1")).not.toContain(plaintext.slice(0, 12))
        expect(bytes.toString("hex")).not.toContain(Buffer.from(plaintext).toString("hex"))
        expect(row!.key_suffix).toBe(`…${plaintext.slice(-4)}`)
      })
    )

    it.effect("putting a key again replaces it and keeps its creation date", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const owner = newOwner()
        const first = yield* keys.put(owner, "openai", Redacted.make(secret()))
        yield* Effect.sleep("20 millis")
        const replacement = secret()
        const second = yield* keys.put(owner, "openai", Redacted.make(replacement))
        expect(second.masked).toBe(`…${replacement.slice(-4)}`)
        expect(second.createdAt).toEqual(first.createdAt)
        expect(second.updatedAt.epochMillis).toBeGreaterThan(first.updatedAt.epochMillis)
        const listed = yield* keys.list(owner)
        expect(listed).toHaveLength(1)
        expect(listed[0]!.masked).toBe(second.masked)
        expect(reveal(yield* keys.resolve(owner, "openai"))).toEqual(Option.some(replacement))
      })
    )

    it.effect("resolve prefers the stored key, falls back to the environment, and has none for mock", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const owner = newOwner()
        expect(reveal(yield* keys.resolve(owner, "openai"))).toEqual(Option.some(ENV_OPENAI))
        expect(reveal(yield* keys.resolve(owner, "anthropic"))).toEqual(Option.some(ENV_ANTHROPIC))
        // there is no environment key for openai-compatible servers
        expect(yield* keys.resolve(owner, "openai-compatible")).toEqual(Option.none())
        expect(yield* keys.resolve(owner, "mock")).toEqual(Option.none())

        const stored = secret()
        yield* keys.put(owner, "openai", Redacted.make(stored))
        const local = secret()
        yield* keys.put(owner, "openai-compatible", Redacted.make(local))
        expect(reveal(yield* keys.resolve(owner, "openai"))).toEqual(Option.some(stored))
        expect(reveal(yield* keys.resolve(owner, "openai-compatible"))).toEqual(Option.some(local))
        expect(reveal(yield* keys.resolve(owner, "anthropic"))).toEqual(Option.some(ENV_ANTHROPIC))

        yield* keys.remove(owner, "openai")
        expect(reveal(yield* keys.resolve(owner, "openai"))).toEqual(Option.some(ENV_OPENAI))
      })
    )

    it.effect("without environment keys, resolve finds none", () =>
      Effect.gen(function* () {
        const bare = yield* ApiKeys.pipe(Effect.provide(ApiKeys.Default.pipe(Layer.provide(testConfig({})))))
        const owner = newOwner()
        expect(yield* bare.resolve(owner, "openai")).toEqual(Option.none())
        expect(yield* bare.resolve(owner, "anthropic")).toEqual(Option.none())
        yield* bare.put(owner, "anthropic", Redacted.make("sk-ant-stored-2222222222"))
        expect(reveal(yield* bare.resolve(owner, "anthropic"))).toEqual(
          Option.some("sk-ant-stored-2222222222")
        )
      })
    )

    it.effect("one owner's keys are invisible to another", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const owner = newOwner()
        const other = newOwner()
        const plaintext = secret()
        yield* keys.put(owner, "openai", Redacted.make(plaintext))
        yield* keys.put(owner, "openai-compatible", Redacted.make(secret()))
        expect(yield* keys.list(other)).toEqual([])
        expect(reveal(yield* keys.resolve(other, "openai"))).toEqual(Option.some(ENV_OPENAI))
        expect(yield* keys.resolve(other, "openai-compatible")).toEqual(Option.none())
        const error = yield* Effect.flip(keys.remove(other, "openai"))
        expect(error.code).toBe("api_key_not_found")
        // the other owner's key of the same provider is independent
        yield* keys.put(other, "openai", Redacted.make(secret()))
        expect(reveal(yield* keys.resolve(owner, "openai"))).toEqual(Option.some(plaintext))
        expect((yield* keys.list(owner)).map((k) => k.provider)).toEqual(["openai", "openai-compatible"])
      })
    )

    it.effect("a key saved under another ASSAY_ENCRYPTION_KEY is a defect naming it, never the key", () =>
      Effect.gen(function* () {
        const keys = yield* ApiKeys
        const owner = newOwner()
        const plaintext = secret()
        const foreign = yield* ApiKeys.pipe(
          Effect.provide(
            ApiKeys.Default.pipe(Layer.provide(KeyCipher.layer(randomKey())), Layer.provide(testConfig({})))
          )
        )
        yield* foreign.put(owner, "openai", Redacted.make(plaintext))

        const exit = yield* Effect.exit(keys.resolve(owner, "openai"))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        const shown = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
        expect(shown).toContain("ASSAY_ENCRYPTION_KEY")
        expect(shown).not.toContain(plaintext)
        // the listing still works: it never decrypts
        expect((yield* keys.list(owner)).map((k) => k.provider)).toEqual(["openai"])
      })
    )
  })
}
