// The settings screen's data: model configurations and provider keys, each a list kept in step with the server.
// Every write reports failure with the server's message; deletes show at once and come back if the server refuses.
import { Redacted } from "effect"
import { useCallback, useRef } from "react"
import type { ModelConfigId } from "../../../src/domain/Ids.ts"
import type { ApiKeyInfo, KeyedProvider, ModelConfig, ModelConfigUpdate } from "../../../src/domain/Model.ts"
import { toApiError } from "../lib/errors.ts"
import { useApi } from "../lib/session.tsx"
import { toastError } from "../lib/toast.tsx"
import { useQuery } from "../lib/useQuery.ts"
import type { ModelPayload } from "./modelForm.ts"

/** Runs `f`; a failure is toasted and rethrown as an ApiError (forms keep their input and show it in place). */
const reported = async <A>(f: () => Promise<A>): Promise<A> => {
  try {
    return await f()
  } catch (error) {
    const apiError = toApiError(error)
    toastError(apiError)
    throw apiError
  }
}

/** Removes the item `matches` finds in `list` at once; puts it back where it was if `remove` fails. */
const optimisticRemove = async <A>(
  list: ReadonlyArray<A> | undefined,
  setData: (update: (previous: ReadonlyArray<A> | undefined) => ReadonlyArray<A> | undefined) => void,
  matches: (item: A) => boolean,
  remove: () => Promise<void>
) => {
  const index = list?.findIndex(matches) ?? -1
  const item = list?.[index]
  setData((current) => current?.filter((other) => !matches(other)))
  try {
    await reported(remove)
  } catch (error) {
    if (item !== undefined)
      setData((current) => {
        const next = [...(current ?? [])]
        next.splice(Math.min(index, next.length), 0, item)
        return next
      })
    throw error
  }
}

/** The server's order: defaults first, then by label regardless of case. */
const sortModels = (models: ReadonlyArray<ModelConfig>): ReadonlyArray<ModelConfig> =>
  [...models].sort(
    (x, y) =>
      Number(y.isDefault) - Number(x.isDefault) ||
      x.label.toLowerCase().localeCompare(y.label.toLowerCase()) ||
      x.label.localeCompare(y.label)
  )

export const useModels = () => {
  const api = useApi()
  const query = useQuery("models", () => api.call((client) => client.models.list({})))
  const { setData } = query
  const current = useRef(query.data)
  current.current = query.data

  const create = useCallback(
    async (payload: ModelPayload) => {
      const model = await reported(() => api.call((client) => client.models.create(payload)))
      setData((list) => sortModels([...(list ?? []), model]))
      return model
    },
    [api, setData]
  )

  const update = useCallback(
    async (id: ModelConfigId, changes: ModelConfigUpdate) => {
      const model = await reported(() => api.call((client) => client.models.update({ id, changes })))
      setData((list) => list && sortModels(list.map((item) => (item.id === id ? model : item))))
      return model
    },
    [api, setData]
  )

  const remove = useCallback(
    (id: ModelConfigId) =>
      optimisticRemove<ModelConfig>(
        current.current,
        setData,
        (model) => model.id === id,
        () => api.call((client) => client.models.delete({ id }))
      ),
    [api, setData]
  )

  const seedDefaults = useCallback(async () => {
    const models = await reported(() => api.call((client) => client.models.seedDefaults({})))
    setData(() => models)
    return models
  }, [api, setData])

  return {
    models: query.data,
    loading: query.loading,
    reload: query.reload,
    create,
    update,
    remove,
    seedDefaults
  }
}

export const useApiKeys = () => {
  const api = useApi()
  const query = useQuery("apiKeys", () => api.call((client) => client.apiKeys.list({})))
  const { setData } = query
  const current = useRef(query.data)
  current.current = query.data

  /** Stores `key` for `provider`; the answer holds only its masked tail, never the key. */
  const put = useCallback(
    async (provider: KeyedProvider, key: string) => {
      const info = await reported(() =>
        api.call((client) => client.apiKeys.put({ provider, key: Redacted.make(key) }))
      )
      setData((list) => [...(list ?? []).filter((item) => item.provider !== provider), info])
      return info
    },
    [api, setData]
  )

  const remove = useCallback(
    (provider: KeyedProvider) =>
      optimisticRemove<ApiKeyInfo>(
        current.current,
        setData,
        (info) => info.provider === provider,
        () => api.call((client) => client.apiKeys.delete({ provider }))
      ),
    [api, setData]
  )

  return { keys: query.data, loading: query.loading, put, remove }
}
