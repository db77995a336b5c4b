import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"

/** `GET /healthz`: 200 when the database answers within 2 s, else 503. */
export const HealthRoute = Layer.unwrapEffect(
  Effect.map(SqlClient.SqlClient, (sql) =>
    HttpLayerRouter.add(
      "GET",
      "/healthz",
      sql`select 1 as ok`.pipe(
        Effect.timeout("2 seconds"),
        Effect.as(HttpServerResponse.unsafeJson({ status: "ok" })),
        Effect.catchAllCause((cause) =>
          Effect.logWarning("health check failed: database unavailable", cause).pipe(
            Effect.as(
              HttpServerResponse.unsafeJson(
                {
                  status: "unavailable",
                  error: { code: "database_unavailable", message: "The database did not answer." }
                },
                { status: 503 }
              )
            )
          )
        )
      )
    )
  )
)
