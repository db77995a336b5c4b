import { useCallback, useEffect, useRef, useState } from "react"
import { toApiError, type ApiError } from "./errors.ts"
import { toastError } from "./toast.tsx"

export interface Query<A> {
  readonly data: A | undefined
  readonly error: ApiError | undefined
  readonly loading: boolean
  readonly reload: () => Promise<void>
  /** Replaces the data locally (after a write that returned the new value). */
  readonly setData: (update: (previous: A | undefined) => A | undefined) => void
}

/**
 * Loads `load()` when `key` changes (null: nothing to load), keeps the last data while reloading, toasts a
 * failure and keeps it in `error`. Answers to an older key are dropped.
 */
export const useQuery = <A>(key: string | null, load: () => Promise<A>): Query<A> => {
  const [state, setState] = useState<{ key: string | null; data?: A; error?: ApiError; loading: boolean }>({
    key,
    loading: key !== null
  })
  const loadRef = useRef(load)
  loadRef.current = load
  const keyRef = useRef(key)
  keyRef.current = key

  const run = useCallback(async (forKey: string | null) => {
    if (forKey === null) return
    setState((previous) => ({ ...previous, key: forKey, loading: true }))
    try {
      const data = await loadRef.current()
      if (keyRef.current === forKey) setState({ key: forKey, data, loading: false })
    } catch (error) {
      const apiError = toApiError(error)
      toastError(apiError)
      if (keyRef.current === forKey)
        setState((previous) => ({ ...previous, error: apiError, loading: false }))
    }
  }, [])

  useEffect(() => {
    void run(key)
  }, [key, run])

  const reload = useCallback(() => run(keyRef.current), [run])
  const setData = useCallback(
    (update: (previous: A | undefined) => A | undefined) =>
      setState((previous) => {
        const data = update(previous.data)
        return data === undefined ? { key: previous.key, loading: previous.loading } : { ...previous, data }
      }),
    []
  )
  const current = state.key === key
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: key !== null && (!current || state.loading),
    reload,
    setData
  }
}
