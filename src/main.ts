#!/usr/bin/env bun
import { BunRuntime } from "@effect/platform-bun"
import { Cause, Effect, Layer, Option } from "effect"
import pgliteData from "@electric-sql/pglite/pglite.data" with { type: "file" }
import pgliteWasm from "@electric-sql/pglite/pglite.wasm" with { type: "file" }
import initdbWasm from "@electric-sql/pglite/initdb.wasm" with { type: "file" }
import { MigrateApp, ServerApp } from "./layers/App.ts"
import * as Config from "./layers/Config.ts"
import * as Logging from "./layers/Logging.ts"

// Imported as files so that `bun build --compile` embeds PGlite's runtime in the executable.
const assets = { wasm: pgliteWasm, initdbWasm, data: pgliteData }

const usage = `Usage: assay [command]

Commands:
  serve     start the server (default)
  migrate   apply database migrations and exit
  help      show this text

Configuration comes from the environment and ./.env (see config.example.env).`

const command = process.argv[2] ?? "serve"

const program = (() => {
  switch (command) {
    case "serve":
      return Layer.launch(ServerApp(assets))
    case "migrate":
      return Layer.build(MigrateApp(assets)).pipe(
        Effect.zipRight(Effect.logInfo("migrations applied")),
        Effect.scoped
      )
    case "help":
    case "--help":
    case "-h":
      return Effect.sync(() => console.log(usage))
    default:
      return Effect.sync(() => {
        console.error(`assay: unknown command "${command}"\n\n${usage}`)
        process.exitCode = 2
      })
  }
})()

/** Start-up failures get one readable line; anything else its full cause. */
const report = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    if (Cause.isInterruptedOnly(cause)) return
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof Config.ConfigInvalid) {
      console.error(`assay: ${failure.value.message}`)
    } else if (Option.isSome(failure) && failure.value instanceof Error) {
      const inner = failure.value.cause instanceof Error ? `: ${failure.value.cause.message}` : ""
      console.error(`assay: ${failure.value.message}${inner}`)
    } else {
      console.error(`assay: ${Cause.pretty(cause)}`)
    }
  })

BunRuntime.runMain(
  program.pipe(Effect.provide(Logging.layer), Effect.provide(Config.layer), Effect.tapErrorCause(report)),
  { disableErrorReporting: true, disablePrettyLogger: true }
)
