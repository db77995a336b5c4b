import { Effect } from "effect"

/**
 * Work that many callers ask for and one run of it covers: the returned effect asks for it; it runs at once when
 * idle, then at most once every `intervalMs` while asks keep coming (each run covers every ask before it). The
 * work keeps its own state (what there is to send or check) and runs in a fiber of the current scope.
 */
export const throttled = (intervalMs: number, work: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const asked = yield* Effect.makeLatch(false)
    yield* Effect.forkScoped(
      Effect.forever(
        asked.await.pipe(
          Effect.zipRight(asked.close),
          Effect.zipRight(work),
          Effect.zipRight(Effect.sleep(intervalMs))
        )
      )
    )
    return asked.open
  })
