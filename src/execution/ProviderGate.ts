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
 * Cold start: until the provider first answers, the gate knows neither its limits nor what is left of them (another
 * process or tool may have drained the key). It lets requests out on a ramp, COLD_START at once and twice as many
 * every COLD_DOUBLING_MS, and the first answer ends the ramp: its headers (limit, remaining, reset, retry-after,
 * also sent with a 429) set the buckets. A drained key answers 429 within one round trip, long before a completion
 * comes back, so the 429s are what the ramp lets out in one round trip after the bucket runs dry; a key with room
 * waits only for the ramp (~0.15 s to 120 requests) instead of a whole completion (seconds), as a probe request
 * would make it. The doubling period is the trade-off: a longer one costs a latency-bound run that much more time,
 * a shorter one lets more out per round trip. Round trips grow on a busy machine, and with them the 429s: a drained
 * key in bench/rate-limited.ts drew 0.3–2 % of the calls as 429s on 2 cores shared with other work, once 5 %.
 *
 * Concurrency: no limit to begin with (1024, above any worker pool): the buckets, not the concurrency limit, keep a
 * gate under a provider's rate limits. Pushback halves what was in flight (not a nominal limit nobody reached), then
 * it grows by one per round trip while at least half of it is used: additive increase, multiplicative decrease.
 * Pushback is a 529 / 503 or a 429 the headers do not explain; a 429 saying that no requests or tokens remain is a
 * rate problem the buckets already handle, and shrinking concurrency for it would starve a slow provider for many
 * round trips after the bucket refills. Only requests sent after the last decrease can decrease it again, so one
 * burst of pushback halves it once.
 */

export interface GateConfig {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
  readonly maxConcurrency?: number | undefined
}

export type GateOutcome =
  /** Answered: the token charge is corrected to `usage` (input + output). */
  | { readonly _tag: "Success"; readonly usage: Usage; readonly rateLimit: RateLimitInfo }
  /** 429: pause until retry-after (1 s when absent); shrink concurrency unless its headers explain it. */
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
  /** Nothing heard from the provider yet: requests go out on the cold-start ramp. */
  readonly cold: boolean
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
  /**
   * Milliseconds until time alone gives the gate more room: a pause ending, a dry bucket refilling, a cold gate's
   * ramp widening. Undefined when nothing of the kind is pending (only an answer can make room, or none is needed).
   */
  readonly opensInMs: Effect.Effect<number | undefined>
  readonly snapshot: Effect.Effect<GateSnapshot>
  /** Model-config limits; a limit left undefined is learned from the provider's headers. */
  readonly configure: (config: GateConfig) => Effect.Effect<void>
}

const MAX_CONCURRENCY = 1024
const COLD_START = 2
const COLD_DOUBLING_MS = 25
// Waking a dispatcher for every single request the ramp adds would be busy-waiting.
const COLD_POLL_MS = 10
// How long after offering its first room a cold gate keeps a dispatcher polling for the ramp to start.
const COLD_OFFER_MS = 1000
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

  let limit = MAX_CONCURRENCY
  // Permits with a sequence number below this were sent before the last decrease: their pushback is old news.
  let decreaseEpoch = 0
  // Cold until the provider answers (success, 429 or overload). The ramp's clock runs from the first request
  // out, and only while requests keep going out: a gap counts for at most one doubling period, so a process that
  // stalled (or a caller that paused) does not come back to a window that grew on its own and send it at once.
  let cold = true
  let rampStarted = false
  let rampMs = 0
  let lastGrantAt = 0
  // When `available` first offered a cold gate's room: the callers it was offered to are on their way.
  let offeredAt: number | undefined
  let inFlight = 0
  let inFlightTokens = 0
  let pausedUntil = 0
  let acquired = 0
  let rateLimited = 0
  let averageEstimate = 0

  let first: Waiter | undefined
  let last: Waiter | undefined
  let waiting = 0

  const slots = () => Math.max(1, Math.floor(Math.min(limit, configuredMaxConcurrency ?? MAX_CONCURRENCY)))

  const rampAt = (now: number) => rampMs + Math.min(now - lastGrantAt, COLD_DOUBLING_MS)

  /** How many requests the cold-start ramp lets out by `now` (all of them once the gate has heard back). */
  const coldWindow = (now: number) =>
    !cold
      ? Number.POSITIVE_INFINITY
      : Math.floor(COLD_START * 2 ** (rampStarted ? rampAt(now) / COLD_DOUBLING_MS : 0) + EPSILON)

  /**
   * Milliseconds until the ramp lets out request number `count` (counting from 1); undefined when only another
   * request going out can move the ramp that far.
   */
  const coldWaitMs = (now: number, count: number): number | undefined => {
    if (!rampStarted) return count <= COLD_START ? 0 : undefined
    const at = COLD_DOUBLING_MS * Math.log2(count / COLD_START)
    if (at <= rampAt(now)) return 0
    return at - rampMs > COLD_DOUBLING_MS
      ? undefined
      : Math.max(1, Math.ceil(lastGrantAt + at - rampMs - now))
  }

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
    limit = Math.min(MAX_CONCURRENCY, limit + 1 / limit)
  }

  const shrink = (sequence: number, inFlightBefore: number) => {
    if (sequence < decreaseEpoch) return
    limit = Math.max(1, Math.min(slots(), inFlightBefore) * DECREASE_FACTOR)
    decreaseEpoch = acquired
  }

  /** A 429 whose own headers say the requests or tokens it needed had run out. */
  const explained = (info: RateLimitInfo, cost: number) =>
    (info.requestsRemaining !== undefined && info.requestsRemaining < 1) ||
    (info.tokensRemaining !== undefined && info.tokensRemaining < cost)

  const decide = (now: number, cost: number): Decision => {
    if (pausedUntil > now) return { _tag: "Time", ms: pausedUntil - now }
    if (inFlight >= slots()) return SLOT
    // Within one period of the last grant the window doubles past it, so the fallback only keeps this finite.
    if (acquired >= coldWindow(now))
      return { _tag: "Time", ms: coldWaitMs(now, acquired + 1) ?? COLD_DOUBLING_MS }
    requests?.refill(now)
    tokens?.refill(now)
    const wait = Math.max(requests?.waitMs(1) ?? 0, tokens?.waitMs(cost) ?? 0)
    return wait > 0 ? { _tag: "Time", ms: wait } : GRANT
  }

  const settle = (now: number, sequence: number, cost: number, outcome: GateOutcome) => {
    const inFlightBefore = inFlight
    inFlight--
    inFlightTokens -= cost
    if (outcome._tag === "Success" || outcome._tag === "RateLimited" || outcome._tag === "Overloaded")
      cold = false
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
        if (!explained(outcome.rateLimit, cost)) shrink(sequence, inFlightBefore)
        break
      }
      case "Overloaded": {
        learn(now, outcome.rateLimit)
        if (outcome.rateLimit.retryAfterMs === undefined) pauseUntil(now + OVERLOADED_PAUSE_MS)
        shrink(sequence, inFlightBefore)
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

  const grant = (now: number, cost: number): Permit => {
    if (cold) {
      if (rampStarted) rampMs = rampAt(now)
      rampStarted = true
      lastGrantAt = now
    }
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
          return { _tag: "Acquired", permit: grant(now, cost) }
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
        const permit = grant(now, cost)
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
    let count = Math.min(slots() - inFlight, coldWindow(now) - acquired)
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
    const room = Math.max(0, count - waiting)
    if (cold && room > 0 && offeredAt === undefined) offeredAt = now
    return room
  })

  const opensInMs = atNow((now) => {
    if (pausedUntil > now) return pausedUntil - now
    let soonest: number | undefined
    const consider = (ms: number) => {
      soonest = soonest === undefined ? ms : Math.min(soonest, ms)
    }
    if (cold && !rampStarted) {
      // The ramp starts with the first request out, a little after its room was offered.
      if (offeredAt !== undefined && now - offeredAt < COLD_OFFER_MS) consider(COLD_POLL_MS)
    } else if (cold) {
      const window = coldWindow(now)
      const wait = window < slots() ? coldWaitMs(now, window + 1) : undefined
      if (wait !== undefined) consider(Math.max(COLD_POLL_MS, wait))
    }
    if (requests !== null) {
      requests.refill(now)
      if (requests.waitMs(1) > 0) consider(requests.waitMs(1))
    }
    if (tokens !== null && averageEstimate > 0) {
      tokens.refill(now)
      if (tokens.waitMs(averageEstimate) > 0) consider(tokens.waitMs(averageEstimate))
    }
    return soonest
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
      acquired,
      cold
    }
  })

  const configure = (config: GateConfig) =>
    atNow((now) => {
      configuredRequests = positive(config.requestsPerMinute)
      configuredTokens = positive(config.tokensPerMinute)
      configuredMaxConcurrency = positive(config.maxConcurrency)
      settleCapacity(now)
      wakeHead()
    })

  return { key, acquire, available, opensInMs, snapshot, configure }
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

    /** The soonest `opensInMs` of all gates: how long a dispatcher with nothing to claim may sleep. */
    const opensInMs: Effect.Effect<number | undefined> = Effect.suspend(() =>
      Effect.map(Effect.all(Array.from(gates.values(), (gate) => gate.opensInMs)), (all) =>
        all.reduce<number | undefined>(
          (a, b) => (b === undefined || (a !== undefined && a <= b) ? a : b),
          undefined
        )
      )
    )

    return { get, all, opensInMs } as const
  })
}) {}
