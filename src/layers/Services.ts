import { BunContext } from "@effect/platform-bun"
import { Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { LOCAL_USER_ID } from "../domain/Ids.ts"
import { Identity } from "../http/Auth.ts"
import { Engine } from "../execution/Engine.ts"
import { EngineStats } from "../execution/EngineStats.ts"
import { JobQueue } from "../execution/JobQueue.ts"
import { ProviderGates } from "../execution/ProviderGate.ts"
import { ApiKeys } from "../services/ApiKeys.ts"
import { Grades } from "../services/Grades.ts"
import { RunCells } from "../services/RunCells.ts"
import { RunEvents } from "../services/RunEvents.ts"
import { RunMetrics } from "../services/RunMetrics.ts"
import { Datasets } from "../services/Datasets.ts"
import * as KeyCipher from "../services/KeyCipher.ts"
import { Models } from "../services/Models.ts"
import { Prompts } from "../services/Prompts.ts"
import { Runs } from "../services/Runs.ts"
import * as Storage from "../services/Storage.ts"
import { AppConfig } from "./Config.ts"

/** Raw uploads: under ASSAY_DATA_DIR/files, or a Supabase Storage bucket. */
export const StorageLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    config.storage === "supabase" &&
    Option.isSome(config.supabaseUrl) &&
    Option.isSome(config.supabaseServiceRoleKey)
      ? Storage.layerSupabase({
          url: config.supabaseUrl.value.href,
          serviceRoleKey: config.supabaseServiceRoleKey.value,
          bucket: config.storageBucket
        })
      : Storage.layerLocal({ root: path.resolve(config.dataDir, "files") })
  )
)

/** ASSAY_ENCRYPTION_KEY, or in local mode a key generated once and kept in the data dir. */
export const KeyCipherLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const key = Option.isSome(config.encryptionKey)
      ? config.encryptionKey.value
      : yield* KeyCipher.loadOrCreateLocalKey(path.resolve(config.dataDir))
    return KeyCipher.layer(key)
  })
).pipe(Layer.provide(BunContext.layer))

/** The run engine and what it stands on: built once, so the gates and the event feed are shared. */
export const EngineLive = Engine.Default.pipe(
  Layer.provideMerge(Layer.mergeAll(JobQueue.Default, ProviderGates.Default, EngineStats.Default))
)

/** Every domain service, each built once. */
export const ServicesLive = Layer.mergeAll(
  Runs.Default,
  RunCells.Default,
  Grades.Default,
  RunMetrics.Default
).pipe(
  Layer.provideMerge(EngineLive),
  Layer.provideMerge(RunEvents.Default),
  Layer.provideMerge(Layer.mergeAll(Prompts.Default, Datasets.Default, Models.Default, ApiKeys.Default)),
  Layer.provideMerge(Layer.mergeAll(StorageLive, KeyCipherLive)),
  Layer.provideMerge(Identity.Default)
)

/** In local mode the one user starts with the default models (idempotent, so every start may run it). */
export const SeedLocalDefaults = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (config.authMode !== "local") return
    const models = yield* Models
    yield* models.seedDefaults(LOCAL_USER_ID)
  })
)
