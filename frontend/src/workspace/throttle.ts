/**
 * Calls `fn` at most once per `ms`: the first call runs at once, calls during the wait make one more call at
 * its end (so the last state is always fetched).
 */
export const throttle = (fn: () => void, ms: number) => {
  let timer: ReturnType<typeof setTimeout> | undefined
  let last = 0
  let queued = false
  const fire = () => {
    last = Date.now()
    queued = false
    fn()
  }
  return {
    call: () => {
      const wait = last + ms - Date.now()
      if (wait <= 0 && timer === undefined) return fire()
      if (queued) return
      queued = true
      timer = setTimeout(
        () => {
          timer = undefined
          fire()
        },
        Math.max(0, wait)
      )
    },
    cancel: () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      queued = false
    }
  }
}
