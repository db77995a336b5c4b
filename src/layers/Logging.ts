import { Effect, Layer, Logger } from "effect"
import { AppConfig } from "./Config.ts"

/** One JSON object per line (or a readable format for development), at the configured level. */
export const layer = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Layer.merge(
      config.logFormat === "json" ? Logger.json : Logger.pretty,
      Logger.minimumLogLevel(config.logLevel)
    )
  )
)
