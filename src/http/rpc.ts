import { Effect } from "effect"
import { CurrentUser } from "../domain/Auth.ts"
import { CellRpcs, CoreRpcs } from "../domain/Rpc.ts"
import { ApiKeys } from "../services/ApiKeys.ts"
import { Datasets } from "../services/Datasets.ts"
import { Models } from "../services/Models.ts"
import { Prompts } from "../services/Prompts.ts"
import { Runs } from "../services/Runs.ts"
import { CellRpcHandlers } from "./rpcCells.ts"

/** The RPC doors onto the same services REST uses; the current user comes from RpcAuthentication. */
export const RpcHandlers = CoreRpcs.merge(CellRpcs).toLayer(
  Effect.gen(function* () {
    const prompts = yield* Prompts
    const datasets = yield* Datasets
    const models = yield* Models
    const keys = yield* ApiKeys
    const runs = yield* Runs
    const cells = yield* CellRpcHandlers
    const asUser = <A, E, R>(f: (owner: CurrentUser["Type"]["id"]) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(CurrentUser, (user) => f(user.id))

    return CoreRpcs.merge(CellRpcs).of({
      "prompts.list": (p) => asUser((owner) => prompts.list(owner, p)),
      "prompts.create": (p) => asUser((owner) => prompts.create(owner, p)),
      "prompts.get": ({ id }) => asUser((owner) => prompts.get(owner, id)),
      "prompts.update": ({ id, changes }) => asUser((owner) => prompts.update(owner, id, changes)),
      "prompts.delete": ({ id }) => asUser((owner) => prompts.remove(owner, id)),
      "prompts.versions": ({ id }) => asUser((owner) => prompts.versions(owner, id)),
      "prompts.freeze": ({ id }) => asUser((owner) => prompts.freeze(owner, id)),
      "prompts.version": ({ id, versionId }) => asUser((owner) => prompts.version(owner, id, versionId)),
      "prompts.diff": ({ id, from, to }) => asUser((owner) => prompts.diff(owner, id, from, to)),

      "datasets.list": (p) => asUser((owner) => datasets.list(owner, p)),
      "datasets.get": ({ id }) => asUser((owner) => datasets.get(owner, id)),
      "datasets.rename": ({ id, name }) => asUser((owner) => datasets.rename(owner, id, name)),
      "datasets.delete": ({ id }) => asUser((owner) => datasets.remove(owner, id)),
      "datasets.preview": ({ id, offset, limit }) =>
        asUser((owner) => datasets.preview(owner, id, { offset, limit })),

      "models.list": () => asUser((owner) => models.list(owner)),
      "models.create": (p) => asUser((owner) => models.create(owner, p)),
      "models.seedDefaults": () => asUser((owner) => models.seedDefaults(owner)),
      "models.get": ({ id }) => asUser((owner) => models.get(owner, id)),
      "models.update": ({ id, changes }) => asUser((owner) => models.update(owner, id, changes)),
      "models.delete": ({ id }) => asUser((owner) => models.remove(owner, id)),

      "apiKeys.list": () => asUser((owner) => keys.list(owner)),
      "apiKeys.put": ({ provider, key }) => asUser((owner) => keys.put(owner, provider, key)),
      "apiKeys.delete": ({ provider }) => asUser((owner) => keys.remove(owner, provider)),

      "runs.create": (p) => asUser((owner) => runs.create(owner, p)),
      "runs.list": (p) => asUser((owner) => runs.list(owner, p)),
      "runs.get": ({ id }) => asUser((owner) => runs.get(owner, id)),
      "runs.cancel": ({ id }) => asUser((owner) => runs.cancel(owner, id)),
      "runs.rerunFailed": ({ id }) => asUser((owner) => runs.rerunFailed(owner, id)),
      "runs.rerunCell": ({ id, cellId }) => asUser((owner) => runs.rerunCell(owner, id, cellId)),
      ...cells
    })
  })
)
