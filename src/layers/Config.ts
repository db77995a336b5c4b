import { PlatformConfigProvider } from "@effect/platform"
import { BunContext } from "@effect/platform-bun"
import {
  Config,
  ConfigError,
  Context,
  Effect,
  Either,
  Layer,
  LogLevel,
  Option,
  Redacted,
  type ConfigProvider
} from "effect"

export type AuthMode = "local" | "supabase"
export type LogFormat = "json" | "pretty"

export interface AppConfigShape {
  readonly host: string
  readonly port: number
  /** Absent: the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly authMode: AuthMode
  readonly supabaseUrl: Option.Option<URL>
  readonly supabaseAnonKey: Option.Option<Redacted.Redacted<string>>
  readonly supabaseServiceRoleKey: Option.Option<Redacted.Redacted<string>>
  readonly supabaseJwtSecret: Option.Option<Redacted.Redacted<string>>
  /** 32 raw bytes for AES-256-GCM, given as 64 hex characters or base64. */
  readonly encryptionKey: Option.Option<Redacted.Redacted<Uint8Array>>
  readonly openaiApiKey: Option.Option<Redacted.Redacted<string>>
  readonly anthropicApiKey: Option.Option<Redacted.Redacted<string>>
  /** When set, `GET /metrics` takes it as a bearer token; unset, metrics are open in local mode only. */
  readonly metricsToken: Option.Option<Redacted.Redacted<string>>
  readonly logLevel: LogLevel.LogLevel
  readonly logFormat: LogFormat
  /** How long in-flight requests may run after SIGTERM/SIGINT before they are cut. */
  readonly shutdownTimeoutMs: number
  /** Where uploaded files are kept: under `dataDir/files`, or in a Supabase Storage bucket. */
  readonly storage: "local" | "supabase"
  readonly storageBucket: string
  readonly maxUploadBytes: number
  readonly maxDatasetRows: number
  /** The run engine in this process: off for API-only processes that share a database with engines. */
  readonly engine: boolean
  /** Cells in flight at once in this process, across all providers. */
  readonly workers: number
  readonly leaseMs: number
  /** Attempts per cell before it fails (retryable errors only). */
  readonly maxAttempts: number
  readonly providerTimeoutMs: number
}

export class AppConfig extends Context.Tag("assay/AppConfig")<AppConfig, AppConfigShape>() {}

const optionalSecret = (name: string) =>
  Config.option(Config.map(Config.nonEmptyString(name), (value) => Redacted.make(value)))

const port = Config.integer("ASSAY_PORT").pipe(
  Config.validate({
    message: "must be an integer from 0 to 65535 (0 picks a free port)",
    validation: (n) => n >= 0 && n <= 65535
  }),
  Config.withDefault(3000)
)

const databaseUrl = Config.option(
  Config.map(
    Config.string("DATABASE_URL").pipe(
      Config.validate({
        message: "must be a postgres:// or postgresql:// URL",
        validation: (value) => {
          try {
            const url = new URL(value)
            return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== ""
          } catch {
            return false
          }
        }
      })
    ),
    (value) => Redacted.make(value)
  )
)

const supabaseUrl = Config.option(
  Config.string("SUPABASE_URL").pipe(
    Config.mapOrFail((value) => {
      try {
        const url = new URL(value)
        if (url.protocol === "https:" || url.protocol === "http:") return Either.right(url)
      } catch {
        // fall through to the error below
      }
      return Either.left(
        ConfigError.InvalidData([], "must be an http(s) URL such as https://abc.supabase.co")
      )
    })
  )
)

const decodeEncryptionKey = (text: string): Uint8Array | undefined => {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Uint8Array.from(Buffer.from(trimmed, "hex"))
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed, "base64")
    if (bytes.length === 32) return Uint8Array.from(bytes)
  }
  return undefined
}

const encryptionKey = Config.option(
  Config.string("ASSAY_ENCRYPTION_KEY").pipe(
    Config.mapOrFail((text) => {
      const key = decodeEncryptionKey(text)
      return key
        ? Either.right(Redacted.make(key))
        : Either.left(ConfigError.InvalidData([], "must be 32 bytes, written as 64 hex characters or base64"))
    })
  )
)

const shutdownTimeoutMs = Config.integer("ASSAY_SHUTDOWN_TIMEOUT_MS").pipe(
  Config.validate({
    message: "must be an integer from 0 to 600000",
    validation: (n) => n >= 0 && n <= 600_000
  }),
  Config.withDefault(10_000)
)

const positive = (name: string, fallback: number, max: number) =>
  Config.integer(name).pipe(
    Config.validate({
      message: `must be an integer from 1 to ${max}`,
      validation: (n) => n >= 1 && n <= max
    }),
    Config.withDefault(fallback)
  )

/** Effect's labels (WARN, OFF) and the usual names (warning, none), in any case. */
const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None
}

const base = Config.all({
  host: Config.string("ASSAY_HOST").pipe(
    Config.validate({ message: "must not be empty", validation: (s) => s.trim() !== "" }),
    Config.withDefault("127.0.0.1")
  ),
  port,
  databaseUrl,
  dataDir: Config.string("ASSAY_DATA_DIR").pipe(
    Config.validate({ message: "must not be empty", validation: (s) => s.trim() !== "" }),
    Config.withDefault("./.assay")
  ),
  authMode: Config.literal("local", "supabase")("ASSAY_AUTH_MODE").pipe(Config.withDefault("local" as const)),
  supabaseUrl,
  supabaseAnonKey: optionalSecret("SUPABASE_ANON_KEY"),
  supabaseServiceRoleKey: optionalSecret("SUPABASE_SERVICE_ROLE_KEY"),
  supabaseJwtSecret: optionalSecret("SUPABASE_JWT_SECRET"),
  encryptionKey,
  openaiApiKey: optionalSecret("OPENAI_API_KEY"),
  anthropicApiKey: optionalSecret("ANTHROPIC_API_KEY"),
  metricsToken: optionalSecret("ASSAY_METRICS_TOKEN"),
  logLevel: Config.string("LOG_LEVEL").pipe(
    Config.mapOrFail((text) => {
      const level = LOG_LEVELS[text.trim().toLowerCase()]
      return level
        ? Either.right(level)
        : Either.left(
            ConfigError.InvalidData(
              [],
              `must be one of ${Object.keys(LOG_LEVELS).join(", ")} (got "${text}")`
            )
          )
    }),
    Config.withDefault(LogLevel.Info)
  ),
  logFormat: Config.literal("json", "pretty")("ASSAY_LOG_FORMAT").pipe(Config.withDefault("json" as const)),
  shutdownTimeoutMs,
  storage: Config.literal("local", "supabase")("ASSAY_STORAGE").pipe(Config.withDefault("local" as const)),
  storageBucket: Config.string("SUPABASE_STORAGE_BUCKET").pipe(
    Config.validate({
      message: "must be a bucket name (lowercase letters, digits, dots, dashes)",
      validation: (s) => /^[a-z0-9][a-z0-9.-]{1,62}$/.test(s)
    }),
    Config.withDefault("datasets")
  ),
  maxUploadBytes: positive("ASSAY_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, 2 * 1024 * 1024 * 1024),
  maxDatasetRows: positive("ASSAY_MAX_DATASET_ROWS", 100_000, 10_000_000),
  engine: Config.boolean("ASSAY_ENGINE").pipe(Config.withDefault(true)),
  workers: positive("ASSAY_WORKERS", 256, 10_000),
  leaseMs: positive("ASSAY_LEASE_MS", 30_000, 3_600_000),
  maxAttempts: positive("ASSAY_MAX_ATTEMPTS", 4, 100),
  providerTimeoutMs: positive("ASSAY_PROVIDER_TIMEOUT_MS", 120_000, 3_600_000)
})

const required = (name: string, why: string) => ConfigError.MissingData([name], why)

/** Rules that tie variables together; each names the variable that is wrong. */
const crossCheck = (config: AppConfigShape): Either.Either<AppConfigShape, ConfigError.ConfigError> => {
  if (config.storage === "supabase") {
    if (Option.isNone(config.supabaseUrl))
      return Either.left(required("SUPABASE_URL", "is required when ASSAY_STORAGE=supabase"))
    if (Option.isNone(config.supabaseServiceRoleKey))
      return Either.left(required("SUPABASE_SERVICE_ROLE_KEY", "is required when ASSAY_STORAGE=supabase"))
  }
  if (config.authMode !== "supabase") return Either.right(config)
  if (Option.isNone(config.supabaseUrl))
    return Either.left(required("SUPABASE_URL", "is required when ASSAY_AUTH_MODE=supabase"))
  if (Option.isNone(config.supabaseAnonKey))
    return Either.left(required("SUPABASE_ANON_KEY", "is required when ASSAY_AUTH_MODE=supabase"))
  if (Option.isNone(config.encryptionKey))
    return Either.left(
      required(
        "ASSAY_ENCRYPTION_KEY",
        "is required when ASSAY_AUTH_MODE=supabase (provider keys are encrypted)"
      )
    )
  if (Option.isNone(config.databaseUrl))
    return Either.left(required("DATABASE_URL", "is required when ASSAY_AUTH_MODE=supabase"))
  return Either.right(config)
}

export const appConfig: Config.Config<AppConfigShape> = Config.mapOrFail(base, crossCheck)

/** One line per problem, each naming the variable; never a value. */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  const lines: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        walk(e.right)
        return
      case "MissingData":
        lines.push(`${e.path.join(".")}: ${e.message.startsWith("Expected") ? "is missing" : e.message}`)
        return
      case "InvalidData":
        lines.push(`${e.path.join(".")}: ${e.message}`)
        return
      case "SourceUnavailable":
      case "Unsupported":
        lines.push(`${e.path.join(".")}: ${e.message}`)
        return
    }
  }
  walk(error)
  return `invalid configuration: ${[...new Set(lines)].join("; ")}`
}

export class ConfigInvalid extends Error {
  override readonly name = "ConfigInvalid"
}

export const loadAppConfig = (provider?: ConfigProvider.ConfigProvider) => {
  const load = provider ? Effect.withConfigProvider(appConfig, provider) : appConfig
  return load.pipe(Effect.mapError((error) => new ConfigInvalid(describeConfigError(error))))
}

/** The environment, then `./.env` for what the environment does not set. */
export const layer: Layer.Layer<AppConfig, ConfigInvalid> = Layer.effect(AppConfig, loadAppConfig()).pipe(
  Layer.provide(PlatformConfigProvider.layerDotEnvAdd(".env")),
  Layer.provide(BunContext.layer)
)

export const layerFrom = (provider: ConfigProvider.ConfigProvider): Layer.Layer<AppConfig, ConfigInvalid> =>
  Layer.effect(AppConfig, loadAppConfig(provider))
