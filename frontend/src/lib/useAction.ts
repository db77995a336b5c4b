import { useCallback, useState } from "react"
import { toApiError, type ApiError } from "./errors.ts"
import { toastError } from "./toast.tsx"

export interface Action {
  /** True while any request started through `run` is in flight: buttons disable on it. */
  readonly busy: boolean
  /**
   * Runs `f`; a failure is toasted with the server's message, handed to `onError` (to show it in place too) and
   * turned into `undefined`.
   */
  readonly run: <A>(f: () => Promise<A>, onError?: (error: ApiError) => void) => Promise<A | undefined>
}

export const useAction = (): Action => {
  const [inFlight, setInFlight] = useState(0)
  const run = useCallback(async <A>(f: () => Promise<A>, onError?: (error: ApiError) => void) => {
    setInFlight((n) => n + 1)
    try {
      return await f()
    } catch (error) {
      const apiError = toApiError(error)
      toastError(apiError)
      onError?.(apiError)
      return undefined
    } finally {
      setInFlight((n) => n - 1)
    }
  }, [])
  return { busy: inFlight > 0, run }
}
