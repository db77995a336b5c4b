import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Option, Redacted } from "effect"
import { NotFound } from "../domain/Errors.ts"
import type { UserId } from "../domain/Ids.ts"
import type { ApiKeyInfo, KeyedProvider, Provider } from "../domain/Model.ts"
import { AppConfig } from "../layers/Config.ts"
import { KeyCipher, maskKey } from "./KeyCipher.ts"
import { orDieSql } from "./SqlFailure.ts"

interface ApiKeyRow {
  readonly provider: KeyedProvider
  readonly key_suffix: string
  readonly created_at: Date
  readonly updated_at: Date
}

const toInfo = (row: ApiKeyRow): ApiKeyInfo => ({
  provider: row.provider,
  masked: row.key_suffix,
  createdAt: DateTime.unsafeFromDate(row.created_at),
  updatedAt: DateTime.unsafeFromDate(row.updated_at)
})

/**
 * Provider API keys, encrypted at rest (AES-256-GCM). A listing shows only the provider, a masked suffix and
 * dates; the plaintext leaves this service only through `resolve`, for the engine.
 */
export class ApiKeys extends Effect.Service<ApiKeys>()("assay/ApiKeys", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const cipher = yield* KeyCipher
    const config = yield* AppConfig

    const environmentKey = (provider: Provider): Option.Option<Redacted.Redacted<string>> => {
      switch (provider) {
        case "openai":
          return config.openaiApiKey
        case "anthropic":
          return config.anthropicApiKey
        default:
          return Option.none()
      }
    }

    const list = Effect.fn("ApiKeys.list")(function* (owner: UserId) {
      const rows = yield* sql<ApiKeyRow>`
        select provider, key_suffix, created_at, updated_at from assay.api_key
        where owner_id = ${owner} order by provider`.pipe(orDieSql)
      return rows.map(toInfo)
    })

    const put = Effect.fn("ApiKeys.put")(function* (
      owner: UserId,
      provider: KeyedProvider,
      key: Redacted.Redacted<string>
    ) {
      const encrypted = yield* cipher.encrypt(key)
      const masked = maskKey(Redacted.value(key))
      const rows = yield* sql<ApiKeyRow>`
        insert into assay.api_key (owner_id, provider, encrypted_key, key_suffix)
        values (${owner}, ${provider}, ${encrypted}, ${masked})
        on conflict (owner_id, provider)
          do update set encrypted_key = excluded.encrypted_key, key_suffix = excluded.key_suffix
        returning provider, key_suffix, created_at, updated_at`.pipe(orDieSql)
      return toInfo(rows[0]!)
    })

    const remove = Effect.fn("ApiKeys.remove")(function* (owner: UserId, provider: KeyedProvider) {
      const rows = yield* sql<{ id: string }>`
        delete from assay.api_key where owner_id = ${owner} and provider = ${provider} returning id`.pipe(
        orDieSql
      )
      if (rows.length === 0)
        return yield* new NotFound({
          code: "api_key_not_found",
          message: `No ${provider} API key is saved.`
        })
    })

    const resolve = Effect.fn("ApiKeys.resolve")(function* (owner: UserId, provider: Provider) {
      if (provider === "mock") return Option.none<Redacted.Redacted<string>>()
      const rows = yield* sql<{ encrypted_key: Uint8Array }>`
        select encrypted_key from assay.api_key
        where owner_id = ${owner} and provider = ${provider}`.pipe(orDieSql)
      if (rows.length === 0) return environmentKey(provider)
      const key = yield* cipher.decrypt(rows[0]!.encrypted_key).pipe(
        Effect.catchTag("KeyCipherError", (error) =>
          // a configuration defect, not the caller's: the message names the setting and never the key
          Effect.dieMessage(
            `The saved ${provider} API key cannot be decrypted (${error.reason}): ASSAY_ENCRYPTION_KEY (or the local encryption key file) is not the key it was saved with. Restore that key, or save the ${provider} API key again.`
          )
        )
      )
      return Option.some(key)
    })

    return { list, put, remove, resolve } as const
  })
}) {}
