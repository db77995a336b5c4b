import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, LogLevel, Option, Redacted } from "effect"
import { type AppConfigShape, ConfigInvalid, loadAppConfig } from "../src/layers/Config.ts"

const load = (env: Record<string, string>) =>
  Effect.runPromiseExit(loadAppConfig(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const ok = async (env: Record<string, string>): Promise<AppConfigShape> => {
  const exit = await load(env)
  if (Exit.isFailure(exit)) throw new Error(`expected a valid configuration, got ${String(exit.cause)}`)
  return exit.value
}

const problem = async (env: Record<string, string>): Promise<string> => {
  const exit = await load(env)
  if (Exit.isSuccess(exit)) throw new Error("expected an invalid configuration")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  expect(failure).toBeInstanceOf(ConfigInvalid)
  return (failure as ConfigInvalid).message
}

const supabaseEnv = {
  ASSAY_AUTH_MODE: "supabase",
  SUPABASE_URL: "https://abc.supabase.co",
  SUPABASE_ANON_KEY: "anon-key-value",
  DATABASE_URL: "postgresql://postgres:hunter2@db.abc.supabase.co:5432/postgres",
  ASSAY_ENCRYPTION_KEY: "a".repeat(64)
}

describe("configuration", () => {
  it("has embedded defaults: local mode, PGlite in ./.assay, 127.0.0.1:3000", async () => {
    const config = await ok({})
    expect(config.host).toBe("127.0.0.1")
    expect(config.port).toBe(3000)
    expect(Option.isNone(config.databaseUrl)).toBe(true)
    expect(config.dataDir).toBe("./.assay")
    expect(config.authMode).toBe("local")
    expect(config.logLevel).toEqual(LogLevel.Info)
    expect(config.logFormat).toBe("json")
    expect(config.shutdownTimeoutMs).toBe(10_000)
  })

  it("reads every variable", async () => {
    const config = await ok({
      ...supabaseEnv,
      ASSAY_HOST: "0.0.0.0",
      ASSAY_PORT: "8080",
      ASSAY_DATA_DIR: "/var/lib/assay",
      SUPABASE_SERVICE_ROLE_KEY: "service-key",
      SUPABASE_JWT_SECRET: "jwt-secret",
      OPENAI_API_KEY: "sk-openai",
      ANTHROPIC_API_KEY: "sk-ant",
      LOG_LEVEL: "Debug",
      ASSAY_LOG_FORMAT: "pretty",
      ASSAY_SHUTDOWN_TIMEOUT_MS: "2500"
    })
    expect(config.host).toBe("0.0.0.0")
    expect(config.port).toBe(8080)
    expect(config.authMode).toBe("supabase")
    expect(Option.map(config.databaseUrl, Redacted.value)).toEqual(Option.some(supabaseEnv.DATABASE_URL))
    expect(Option.map(config.supabaseUrl, (u) => u.host)).toEqual(Option.some("abc.supabase.co"))
    expect(Option.map(config.openaiApiKey, Redacted.value)).toEqual(Option.some("sk-openai"))
    expect(Option.map(config.encryptionKey, (k) => Redacted.value(k).length)).toEqual(Option.some(32))
    expect(config.logLevel).toEqual(LogLevel.Debug)
    expect(config.logFormat).toBe("pretty")
    expect(config.shutdownTimeoutMs).toBe(2500)
  })

  it.each([
    [{ ASSAY_PORT: "70000" }, "ASSAY_PORT"],
    [{ ASSAY_PORT: "http" }, "ASSAY_PORT"],
    [{ ASSAY_PORT: "-1" }, "ASSAY_PORT"],
    [{ DATABASE_URL: "mysql://root@localhost/db" }, "DATABASE_URL"],
    [{ DATABASE_URL: "not a url" }, "DATABASE_URL"],
    [{ ASSAY_AUTH_MODE: "oauth" }, "ASSAY_AUTH_MODE"],
    [{ SUPABASE_URL: "ftp://abc" }, "SUPABASE_URL"],
    [{ ASSAY_ENCRYPTION_KEY: "too-short" }, "ASSAY_ENCRYPTION_KEY"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ ASSAY_LOG_FORMAT: "xml" }, "ASSAY_LOG_FORMAT"],
    [{ ASSAY_SHUTDOWN_TIMEOUT_MS: "soon" }, "ASSAY_SHUTDOWN_TIMEOUT_MS"],
    [{ ASSAY_HOST: "  " }, "ASSAY_HOST"]
  ])("rejects %j naming %s", async (env, variable) => {
    const message = await problem(env)
    expect(message).toMatch(new RegExp(`^invalid configuration: ${variable}: `))
    expect(message.split("\n")).toHaveLength(1)
  })

  it.each(["SUPABASE_URL", "SUPABASE_ANON_KEY", "ASSAY_ENCRYPTION_KEY", "DATABASE_URL"])(
    "supabase mode without %s stops start-up",
    async (variable) => {
      const env: Record<string, string> = { ...supabaseEnv }
      delete env[variable]
      const message = await problem(env)
      expect(message).toContain(`${variable}: is required when ASSAY_AUTH_MODE=supabase`)
    }
  )

  it("accepts log levels by Effect's labels and the usual names, in any case", async () => {
    expect((await ok({ LOG_LEVEL: "Warning" })).logLevel).toEqual(LogLevel.Warning)
    expect((await ok({ LOG_LEVEL: "WARN" })).logLevel).toEqual(LogLevel.Warning)
    expect((await ok({ LOG_LEVEL: "none" })).logLevel).toEqual(LogLevel.None)
    expect((await ok({ LOG_LEVEL: "OFF" })).logLevel).toEqual(LogLevel.None)
    expect((await ok({ LOG_LEVEL: "trace" })).logLevel).toEqual(LogLevel.Trace)
  })

  it("accepts the encryption key as hex or base64", async () => {
    const hex = await ok({ ASSAY_ENCRYPTION_KEY: "0f".repeat(32) })
    const b64 = await ok({ ASSAY_ENCRYPTION_KEY: Buffer.alloc(32, 15).toString("base64") })
    const bytes = (c: AppConfigShape) => Array.from(Redacted.value(Option.getOrThrow(c.encryptionKey)))
    expect(bytes(hex)).toEqual(bytes(b64))
  })

  it("never prints a secret: not in errors, not when the config is logged", async () => {
    const secret = "postgres://u:s3cr3t-pw@host:5432/db"
    const config = await ok({ DATABASE_URL: secret, OPENAI_API_KEY: "sk-very-secret" })
    const printed = `${String(config.databaseUrl)} ${JSON.stringify(config)} ${String(config.openaiApiKey)}`
    expect(printed).not.toContain("s3cr3t-pw")
    expect(printed).not.toContain("sk-very-secret")
    const message = await problem({ DATABASE_URL: "mysql://u:s3cr3t-pw@host/db" })
    expect(message).not.toContain("s3cr3t-pw")
    const keyMessage = await problem({ ASSAY_ENCRYPTION_KEY: "my-secret-key-material" })
    expect(keyMessage).not.toContain("my-secret-key-material")
  })
})
