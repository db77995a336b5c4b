import { Layer, Scheduler } from "effect"

/**
 * How long fibers may run in one turn of the event loop before sockets and timers get theirs. Effect's default
 * scheduler runs fiber work as microtasks, 2,048 drains in a row before it lets a macrotask in; an engine whose
 * statements go to the embedded database (PGlite answers in the same thread, as promises) never left the
 * microtask queue: every request, /healthz included, waited until a 20,000-cell mock run was done (14 s). With
 * slices of 4 ms: /healthz in 61 ms and a run's page in 50-70 ms (p50) during that run, for ~10 % of the run's speed.
 */
const SLICE_MS = 4

let sliceStartedAt = 0
const endSlice = () => {
  sliceStartedAt = 0
}

/**
 * Fiber work as microtasks, as Effect's default scheduler, until the current turn of the event loop has run
 * fibers for SLICE_MS; later drains wait for the next turn (`setImmediate`: after timers and I/O), in order.
 */
class TimeSlicedScheduler implements Scheduler.Scheduler {
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

export const timeSliced: Scheduler.Scheduler = new TimeSlicedScheduler()

/** Runs the fibers of the layers it is provided to (and those they fork) on `timeSliced`. */
export const layer = Layer.setScheduler(timeSliced)
