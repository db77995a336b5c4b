import { Deferred, Effect, Exit, FiberId } from "effect"
import type { RateLimitInfo, Usage } from "./Provider.ts"

/**
 * Pacing for one provider + API key (+ model where the provider limits per model).
 *
 * A gate holds two token buckets refilled continuously (requests/min and tokens/min, each unknown until a model
 * config or the provider's headers say), an adaptive concurrency limit and a pause. Callers queue FIFO; only the
 * head of the queue looks at the clock and sleeps for exactly as long as the bucket math says, so waiting costs
 * no polling and a release wakes one fiber, not all of them.
 *
 * Concurrency: starts at 64 and grows by one per success while the gate is using at least half of its limit
 * (slow start: doubling per round trip); the first pushback (429 / 529) halves it and switches to additive
 * increase (one per round trip) / multiplicative decrease. Only requests sent after the last decrease can
 * decrease it again, so one burst of 429s halves it once.
 */

export interface GateConfig {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
  readonly maxConcurrency?: number | undefined
}

export type GateOutcome =
  /** Answered: the token charge is corrected to `usage` (input + output). */
  | { readonly _tag: "Success"; readonly usage: Usage; readonly rateLimit: RateLimitInfo }
  /** 429: pause until retry-after (1 s when absent), shrink concurrency. */
  | { readonly _tag: "RateLimited"; readonly rateLimit: RateLimitInfo }
  /** 529 / 503: shrink concurrency, short pause (retry-after when given, else 500 ms). */
  | { readonly _tag: "Overloaded"; readonly rateLimit: RateLimitInfo }
  /** Any other failure: the slot is released, charges stay, no adaptation. */
  | { readonly _tag: "Failed" }
  /** Interrupted before an answer: the token estimate is refunded (the request may have reached the provider). */
  | { readonly _tag: "Canceled" }

export interface GateSnapshot {
  readonly key: string
  readonly concurrencyLimit: number
  readonly inFlight: number
  /** Callers queued in `acquire`. */
  readonly waiting: number
  readonly pausedUntilMs: number | null
  /** Whole requests left in the bucket; null while the limit is unknown. */
  readonly requestsAvailable: number | null
  /** Tokens left in the bucket (negative after an oversized request); null while the limit is unknown. */
  readonly tokensAvailable: number | null
  readonly rateLimited: number
  readonly acquired: number
}

export interface Permit {
  /** Call exactly once; later calls do nothing. */
  readonly release: (outcome: GateOutcome) => Effect.Effect<void>
}

export interface Gate {
  readonly key: string
  /**
   * Waits (FIFO, interruptibly) for a concurrency slot, request and token budget and the end of any pause, then
   * charges 1 request and `estimatedTokens`. Interrupted while waiting: nothing is charged and nothing held.
   * An estimate above the token capacity waits for a full bucket and then goes, leaving the bucket in debt,
   * so it can never block forever.
   */
  readonly acquire: (estimatedTokens: number) => Effect.Effect<Permit>
  /** How many requests could start right now (0 when paused, out of budget or with callers already queued). */
  readonly available: Effect.Effect<number>
  readonly snapshot: Effect.Effect<GateSnapshot>
  /** Model-config limits; a limit left undefined is learned from the provider's headers. */
  readonly configure: (config: GateConfig) => Effect.Effect<void>
}

const INITIAL_CONCURRENCY = 64
const MAX_CONCURRENCY = 1024
const DECREASE_FACTOR = 0.5
const RATE_LIMITED_BACKOFF_MS = 1000
const OVERLOADED_PAUSE_MS = 500
const MINUTE_MS = 60_000
// Float slack so that sleeping exactly the computed wait is always enough.
const EPSILON = 1e-6
const ESTIMATE_SMOOTHING = 0.1

const positive = (value: number | undefined): number | undefined =>
  value !== undefined && Number.isFinite(value) && value > 0 ? value : undefined

const minDefined = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b)

/** A bucket of `capacity` per minute, refilled continuously; `level` may go negative (debt). */
class Bucket {
  constructor(
    public capacity: number,
    public level: number,
    private at: number
  ) {}

  refill(now: number): void {
    if (now <= this.at) return
    this.level = Math.min(this.capacity, this.level + ((now - this.at) * this.capacity) / MINUTE_MS)
    this.at = now
  }

  /** Milliseconds until `cost` fits; a cost above the capacity only waits for a full bucket. */
  waitMs(cost: number): number {
    const need = Math.min(cost, this.capacity)
    if (this.level + EPSILON >= need) return 0
    return Math.ceil(((need - this.level) * MINUTE_MS) / this.capacity)
  }

  setCapacity(capacity: number): void {
    this.capacity = capacity
    this.level = Math.min(this.level, capacity)
  }

  /** Gives back tokens (or takes more when negative), never above capacity. */
  credit(amount: number): void {
    this.level = Math.min(this.capacity, this.level + amount)
  }
}

interface Waiter {
  readonly cost: number
  signal: Deferred.Deferred<void>
  next: Waiter | undefined
  /** Granted or interrupted: skipped when it reaches the head. */
  done: boolean
}

type Decision =
  { readonly _tag: "Grant" } | { readonly _tag: "Slot" } | { readonly _tag: "Time"; readonly ms: number }

const GRANT: Decision = { _tag: "Grant" }
const SLOT: Decision = { _tag: "Slot" }

type Step =
  | { readonly _tag: "Acquired"; readonly permit: Permit }
  | { readonly _tag: "Wait"; readonly waiter: Waiter; readonly ms: number | undefined }

const newSignal = () => Deferred.unsafeMake<void>(FiberId.none)

/** Runs `f` atomically with the current time of the fiber's Clock (TestClock in tests). */
const atNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
  Effect.clockWith((clock) => Effect.sync(() => f(clock.unsafeCurrentTimeMillis())))

export const makeGate = (key: string): Gate => {
  let configuredRequests: number | undefined
  let configuredTokens: number | undefined
  let configuredMaxConcurrency: number | undefined
  let learnedRequests: number | undefined
  let learnedTokens: number | undefined
  let requests: Bucket | null = null
  let tokens: Bucket | null = null

  let limit = INITIAL_CONCURRENCY
  let slowStart = true
  // Permits with a sequence number below this were sent before the last decrease: their pushback is old news.
  let decreaseEpoch = 0
  let inFlight = 0
  let inFlightTokens = 0
  let pausedUntil = 0
  let acquired = 0
  let rateLimited = 0
  let averageEstimate = 0

  let first: Waiter | undefined
  let last: Waiter | undefined
  let waiting = 0

  const cap = () =>
    Math.max(1, Math.floor(Math.min(MAX_CONCURRENCY, configuredMaxConcurrency ?? MAX_CONCURRENCY)))
  const slots = () => Math.max(1, Math.floor(limit))

  const head = (): Waiter | undefined => {
    while (first !== undefined && first.done) first = first.next
    if (first === undefined) last = undefined
    return first
  }

  const wakeHead = () => {
    const waiter = head()
    if (waiter !== undefined) Deferred.unsafeDone(waiter.signal, Exit.void)
  }

  const enqueue = (cost: number): Waiter => {
    const waiter: Waiter = { cost, signal: newSignal(), next: undefined, done: false }
    if (last === undefined) first = waiter
    else last.next = waiter
    last = waiter
    waiting++
    return waiter
  }

  const settleCapacity = (now: number) => {
    const requestCapacity = minDefined(configuredRequests, learnedRequests)
    if (requestCapacity === undefined) requests = null
    else if (requests === null) requests = new Bucket(requestCapacity, requestCapacity - inFlight, now)
    else {
      requests.refill(now)
      requests.setCapacity(requestCapacity)
    }
    const tokenCapacity = minDefined(configuredTokens, learnedTokens)
    if (tokenCapacity === undefined) tokens = null
    else if (tokens === null) tokens = new Bucket(tokenCapacity, tokenCapacity - inFlightTokens, now)
    else {
      tokens.refill(now)
      tokens.setCapacity(tokenCapacity)
    }
  }

  const pauseUntil = (until: number) => {
    pausedUntil = Math.max(pausedUntil, until)
  }

  const learn = (now: number, info: RateLimitInfo) => {
    const requestsLimit = positive(info.requestsLimit)
    const tokensLimit = positive(info.tokensLimit)
    if (requestsLimit !== undefined || tokensLimit !== undefined) {
      if (requestsLimit !== undefined) learnedRequests = requestsLimit
      if (tokensLimit !== undefined) learnedTokens = tokensLimit
      settleCapacity(now)
    }
    // The provider's count wins only when it is lower: requests still on their way are not in it yet.
    if (info.requestsRemaining !== undefined) {
      if (requests !== null) {
        requests.refill(now)
        requests.level = Math.min(requests.level, info.requestsRemaining)
      } else if (info.requestsRemaining <= 0 && info.requestsResetMs !== undefined)
        pauseUntil(now + info.requestsResetMs)
    }
    if (info.tokensRemaining !== undefined) {
      if (tokens !== null) {
        tokens.refill(now)
        tokens.level = Math.min(tokens.level, info.tokensRemaining)
      } else if (info.tokensRemaining <= 0 && info.tokensResetMs !== undefined)
        pauseUntil(now + info.tokensResetMs)
    }
    if (info.retryAfterMs !== undefined && info.retryAfterMs > 0) pauseUntil(now + info.retryAfterMs)
  }

  const grow = (inFlightBefore: number) => {
    // Only a limit that is actually used says anything about whether more would be accepted.
    if (inFlightBefore * 2 < slots()) return
    limit = Math.min(cap(), slowStart ? limit + 1 : limit + 1 / limit)
  }

  const shrink = (sequence: number) => {
    slowStart = false
    if (sequence < decreaseEpoch) return
    limit = Math.max(1, limit * DECREASE_FACTOR)
    decreaseEpoch = acquired
  }

  const decide = (now: number, cost: number): Decision => {
    if (pausedUntil > now) return { _tag: "Time", ms: pausedUntil - now }
    if (inFlight >= slots()) return SLOT
    requests?.refill(now)
    tokens?.refill(now)
    const wait = Math.max(requests?.waitMs(1) ?? 0, tokens?.waitMs(cost) ?? 0)
    return wait > 0 ? { _tag: "Time", ms: wait } : GRANT
  }

  const settle = (now: number, sequence: number, cost: number, outcome: GateOutcome) => {
    const inFlightBefore = inFlight
    inFlight--
    inFlightTokens -= cost
    switch (outcome._tag) {
      case "Success": {
        if (tokens !== null) {
          tokens.refill(now)
          tokens.credit(cost - outcome.usage.inputTokens - outcome.usage.outputTokens)
        }
        learn(now, outcome.rateLimit)
        grow(inFlightBefore)
        break
      }
      case "RateLimited": {
        rateLimited++
        learn(now, outcome.rateLimit)
        if (outcome.rateLimit.retryAfterMs === undefined) pauseUntil(now + RATE_LIMITED_BACKOFF_MS)
        shrink(sequence)
        break
      }
      case "Overloaded": {
        learn(now, outcome.rateLimit)
        if (outcome.rateLimit.retryAfterMs === undefined) pauseUntil(now + OVERLOADED_PAUSE_MS)
        shrink(sequence)
        break
      }
      case "Failed":
        break
      case "Canceled": {
        if (tokens !== null) {
          tokens.refill(now)
          tokens.credit(cost)
        }
        break
      }
    }
    wakeHead()
  }

  const grant = (cost: number): Permit => {
    const sequence = acquired++
    inFlight++
    inFlightTokens += cost
    if (requests !== null) requests.level -= 1
    if (tokens !== null) tokens.level -= cost
    averageEstimate =
      averageEstimate === 0 ? cost : averageEstimate + ESTIMATE_SMOOTHING * (cost - averageEstimate)
    let released = false
    return {
      release: (outcome) =>
        atNow((now) => {
          if (released) return
          released = true
          settle(now, sequence, cost, outcome)
        })
    }
  }

  const cancel = (waiter: Waiter) => {
    if (waiter.done) return
    const wasHead = head() === waiter
    waiter.done = true
    waiting--
    if (wasHead) wakeHead()
  }

  const acquire = (estimatedTokens: number): Effect.Effect<Permit> => {
    const cost = Number.isFinite(estimatedTokens) ? Math.max(0, estimatedTokens) : 0
    let waiter: Waiter | undefined
    const step = (now: number): Step => {
      if (waiter === undefined) {
        if (head() === undefined && decide(now, cost)._tag === "Grant")
          return { _tag: "Acquired", permit: grant(cost) }
        waiter = enqueue(cost)
      }
      if (head() !== waiter) {
        waiter.signal = newSignal()
        return { _tag: "Wait", waiter, ms: undefined }
      }
      const decision = decide(now, cost)
      if (decision._tag === "Grant") {
        waiter.done = true
        waiting--
        const permit = grant(cost)
        wakeHead()
        return { _tag: "Acquired", permit }
      }
      waiter.signal = newSignal()
      return { _tag: "Wait", waiter, ms: decision._tag === "Time" ? decision.ms : undefined }
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        while (true) {
          const next = yield* atNow(step)
          if (next._tag === "Acquired") return next.permit
          const wake = Deferred.await(next.waiter.signal)
          yield* restore(next.ms === undefined ? wake : Effect.race(wake, Effect.sleep(next.ms))).pipe(
            Effect.onInterrupt(() => Effect.sync(() => cancel(next.waiter)))
          )
        }
      })
    )
  }

  const available = atNow((now) => {
    if (pausedUntil > now) return 0
    let count = slots() - inFlight
    if (requests !== null) {
      requests.refill(now)
      count = Math.min(count, Math.floor(requests.level + EPSILON))
    }
    if (tokens !== null) {
      tokens.refill(now)
      const need = Math.min(averageEstimate, tokens.capacity)
      const fits = tokens.level + EPSILON >= need
      count = Math.min(count, !fits ? 0 : need > 0 ? Math.max(1, Math.floor(tokens.level / need)) : count)
    }
    return Math.max(0, count - waiting)
  })

  const snapshot = atNow((now): GateSnapshot => {
    requests?.refill(now)
    tokens?.refill(now)
    return {
      key,
      concurrencyLimit: slots(),
      inFlight,
      waiting,
      pausedUntilMs: pausedUntil > now ? pausedUntil : null,
      requestsAvailable: requests === null ? null : Math.floor(requests.level + EPSILON),
      tokensAvailable: tokens === null ? null : Math.floor(tokens.level + EPSILON),
      rateLimited,
      acquired
    }
  })

  const configure = (config: GateConfig) =>
    atNow((now) => {
      configuredRequests = positive(config.requestsPerMinute)
      configuredTokens = positive(config.tokensPerMinute)
      configuredMaxConcurrency = positive(config.maxConcurrency)
      settleCapacity(now)
      limit = Math.min(limit, cap())
      wakeHead()
    })

  return { key, acquire, available, snapshot, configure }
}

/** One gate per key, for the whole process: two engines sharing a key must share its budget. */
export class ProviderGates extends Effect.Service<ProviderGates>()("assay/ProviderGates", {
  effect: Effect.sync(() => {
    const gates = new Map<string, Gate>()

    const get = Effect.fn("ProviderGates.get")(function* (key: string, config: GateConfig) {
      let gate = gates.get(key)
      if (gate === undefined) {
        gate = makeGate(key)
        gates.set(key, gate)
      }
      yield* gate.configure(config)
      return gate
    })

    const all: Effect.Effect<ReadonlyArray<GateSnapshot>> = Effect.suspend(() =>
      Effect.all(Array.from(gates.values(), (gate) => gate.snapshot))
    )

    return { get, all } as const
  })
}) {}
