import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"

/** Postgres' error fields, as node-postgres and PGlite both report them on the cause. */
export interface PgFailure {
  readonly code: string
  readonly constraint?: string | undefined
  readonly detail?: string | undefined
}

export const pgFailure = (error: SqlError): Option.Option<PgFailure> => {
  const cause = error.cause as { code?: unknown; constraint?: unknown; detail?: unknown } | undefined
  return typeof cause?.code === "string"
    ? Option.some({
        code: cause.code,
        constraint: typeof cause.constraint === "string" ? cause.constraint : undefined,
        detail: typeof cause.detail === "string" ? cause.detail : undefined
      })
    : Option.none()
}

export const UNIQUE_VIOLATION = "23505"
export const FOREIGN_KEY_VIOLATION = "23503"
/** PGlite (Postgres 18) reports a blocked `on delete restrict` with this code rather than 23503. */
export const RESTRICT_VIOLATION = "23001"

/**
 * Turns the SQL failures a caller expects (by SQLSTATE) into domain errors; every other SQL failure is a
 * defect: the request answers 500 and the cause is logged.
 */
export const mapSqlFailure =
  <E>(expected: Partial<Record<string, (failure: PgFailure) => E>>) =>
  <A, E0, R>(effect: Effect.Effect<A, E0 | SqlError, R>): Effect.Effect<A, Exclude<E0, SqlError> | E, R> =>
    Effect.catchIf(
      effect,
      (e): e is SqlError =>
        typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "SqlError",
      (error) => {
        const failure = pgFailure(error)
        const handler = Option.isSome(failure) ? expected[failure.value.code] : undefined
        return handler && Option.isSome(failure) ? Effect.fail(handler(failure.value)) : Effect.die(error)
      }
    ) as Effect.Effect<A, Exclude<E0, SqlError> | E, R>

/** Every SQL failure is a defect (the default for queries with no expected failure). */
export const orDieSql = <A, E, R>(
  effect: Effect.Effect<A, E | SqlError, R>
): Effect.Effect<A, Exclude<E, SqlError>, R> =>
  mapSqlFailure({})(effect) as Effect.Effect<A, Exclude<E, SqlError>, R>
