import { HttpApiScalar, HttpLayerRouter } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Duration, Effect, Layer } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { AssayRpcs } from "../domain/Rpc.ts"
import { AuthenticationLive, RpcAuthenticationLive } from "../http/Auth.ts"
import * as BunServer from "../http/BunServer.ts"
import { CellsHttp } from "../http/cells.ts"
import { DatasetsHttp } from "../http/datasets.ts"
import { StreamAuthenticationLive } from "../http/events.ts"
import { GradeRpcHandlers, GradesHttp } from "../http/grades.ts"
import { HealthRoute } from "../http/Health.ts"
import { MetricsRoute } from "../http/Metrics.ts"
import { RequestMiddleware } from "../http/Middleware.ts"
import { ApiKeysHttp, ModelsHttp } from "../http/models.ts"
import { PromptsHttp } from "../http/prompts.ts"
import { RpcHandlers } from "../http/rpc.ts"
import { RunsHttp } from "../http/runs.ts"
import { WebRoutes } from "../http/Web.ts"
import * as WebAssets from "../http/WebAssets.ts"
import { AppConfig } from "./Config.ts"

/** REST at /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /docs). */
export const RestRoutes = Layer.mergeAll(
  HttpLayerRouter.addHttpApi(AssayApi, { openapiPath: "/api/v1/openapi.json" }),
  HttpApiScalar.layerHttpLayerRouter({ api: AssayApi, path: "/docs" })
).pipe(
  Layer.provide([PromptsHttp, DatasetsHttp, ModelsHttp, ApiKeysHttp, RunsHttp, CellsHttp, GradesHttp]),
  Layer.provide([AuthenticationLive, StreamAuthenticationLive])
)

/** RPC at /rpc over HTTP, NDJSON; a defect in one call must not fail the others on its connection. */
export const RpcRoutes = RpcServer.layerHttpRouter({
  group: AssayRpcs,
  path: "/rpc",
  protocol: "http",
  disableFatalDefects: true
}).pipe(
  Layer.provide([RpcHandlers, GradeRpcHandlers]),
  Layer.provide(RpcAuthenticationLive),
  Layer.provide(RpcSerialization.layerNdjson)
)

/** Every route of the app; the web app takes every GET path no other route does. */
export const Routes = Layer.mergeAll(
  HealthRoute,
  MetricsRoute,
  RestRoutes,
  RpcRoutes,
  WebRoutes.pipe(Layer.provide(WebAssets.layer))
)

/** The Bun server on ASSAY_HOST:ASSAY_PORT; request bodies may be as large as an upload may be. */
export const ServerLayer = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    BunServer.layer({
      hostname: config.host,
      port: config.port,
      drainTimeout: Duration.millis(config.shutdownTimeoutMs),
      maxRequestBodySize: config.maxUploadBytes + 1024 * 1024
    })
  )
)

/** Serves `routes` (the app's, or a test's) with the request middleware on the configured server. */
export const serve = <E, R>(routes: Layer.Layer<never, E, R>) =>
  HttpLayerRouter.serve(Layer.mergeAll(routes, RequestMiddleware), { disableLogger: true })
