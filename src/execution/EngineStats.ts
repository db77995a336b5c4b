import { Cause, Effect, Exit, Option } from "effect"
import type { Provider } from "../domain/Model.ts"
import type { Completion, ProviderError } from "./Provider.ts"

/** Latency buckets in seconds, Prometheus-style (cumulative). */
export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120] as const

export interface ProviderCounters {
  calls: number
  succeeded: number
  failed: number
  rateLimited: number
  retries: number
  latencySum: number
  latencyBuckets: Array<number>
}

/** In-process counters of provider calls, for GET /metrics. Cheap: plain numbers, updated in place. */
export class EngineStats extends Effect.Service<EngineStats>()("assay/EngineStats", {
  succeed: (() => {
    const providers = new Map<Provider, ProviderCounters>()
    const counters = (provider: Provider) => {
      let entry = providers.get(provider)
      if (!entry) {
        entry = {
          calls: 0,
          succeeded: 0,
          failed: 0,
          rateLimited: 0,
          retries: 0,
          latencySum: 0,
          latencyBuckets: LATENCY_BUCKETS.map(() => 0)
        }
        providers.set(provider, entry)
      }
      return entry
    }
    return {
      recordCall: (provider: Provider, exit: Exit.Exit<Completion, ProviderError>) => {
        const entry = counters(provider)
        entry.calls += 1
        if (Exit.isSuccess(exit)) {
          entry.succeeded += 1
          const seconds = exit.value.latencyMs / 1000
          entry.latencySum += seconds
          LATENCY_BUCKETS.forEach((bound, i) => {
            if (seconds <= bound) entry.latencyBuckets[i]! += 1
          })
          return
        }
        entry.failed += 1
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure) && failure.value.code === "rate_limited") entry.rateLimited += 1
      },
      recordRetry: (provider: Provider) => {
        counters(provider).retries += 1
      },
      snapshot: () =>
        new Map([...providers].map(([p, c]) => [p, { ...c, latencyBuckets: [...c.latencyBuckets] }]))
    } as const
  })()
}) {}
