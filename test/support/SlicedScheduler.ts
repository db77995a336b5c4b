import { Layer, Scheduler } from "effect"

/**
 * A scheduler for tests that need a busy process's timing: fiber work runs as microtasks (as Effect's default
 * scheduler) until the current turn of the event loop has run fibers for SLICE_MS; later resumptions wait for the
 * next turn (`setImmediate`, after timers and I/O). Under load a fiber's resumption and a timer can then land in
 * either order, which a default scheduler on an idle test process almost never shows.
 */
const SLICE_MS = 4

let sliceStartedAt = 0
const endSlice = () => {
  sliceStartedAt = 0
}

class SlicedScheduler implements Scheduler.Scheduler {
  private readonly runnerOf = Scheduler.SchedulerRunner.cached((depth, drain) => {
    const now = performance.now()
    if (sliceStartedAt === 0) {
      sliceStartedAt = now
      // runs once this turn's microtasks are done: the next turn starts a new slice
      setImmediate(endSlice)
    }
    if (depth >= 2048 || now - sliceStartedAt >= SLICE_MS) setImmediate(() => drain(0))
    else queueMicrotask(() => drain(depth + 1))
  })

  shouldYield(fiber: Parameters<Scheduler.Scheduler["shouldYield"]>[0]) {
    return Scheduler.defaultScheduler.shouldYield(fiber)
  }

  scheduleTask(
    task: Scheduler.Task,
    priority: number,
    fiber?: Parameters<Scheduler.Scheduler["scheduleTask"]>[2]
  ) {
    this.runnerOf(fiber).scheduleTask(task, priority)
  }
}

export const sliced: Scheduler.Scheduler = new SlicedScheduler()

/** Runs the fibers of the layers it is provided to (and those they fork) on `sliced`. */
export const layer = Layer.setScheduler(sliced)
