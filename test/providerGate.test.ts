import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, TestClock } from "effect"
import type { RateLimitInfo, Usage } from "../src/execution/Provider.ts"
import {
  type Gate,
  type GateOutcome,
  makeGate,
  type Permit,
  ProviderGates
} from "../src/execution/ProviderGate.ts"
import * as FakeProvider from "./support/FakeProvider.ts"

const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0 }
const success = (rateLimit: RateLimitInfo = {}, usage: Usage = NO_USAGE): GateOutcome => ({
  _tag: "Success",
  usage,
  rateLimit
})
const FAILED: GateOutcome = { _tag: "Failed" }

/** Lets every forked fiber run until it suspends (the TestClock waits for them before moving). */
const flush = TestClock.adjust(0)

const isDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) => Effect.map(Fiber.poll(fiber), Option.isSome)

/** Forks an acquire and lets it run as far as it can without the clock moving. */
const startAcquire = (gate: Gate, tokens = 0) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(gate.acquire(tokens))
    yield* flush
    return fiber
  })

/** An acquire that must not wait at all. */
const acquireNow = (gate: Gate, tokens = 0) =>
  Effect.gen(function* () {
    const fiber = yield* startAcquire(gate, tokens)
    expect(yield* isDone(fiber)).toBe(true)
    return yield* Fiber.join(fiber)
  })

const acquireMany = (gate: Gate, count: number, tokens = 0) =>
  Effect.forEach(Array.from({ length: count }), () => acquireNow(gate, tokens))

/** Many acquires the gate says it has room for, without a fiber each (so they cannot wait). */
const takeRoom = (gate: Gate, count: number) =>
  Effect.gen(function* () {
    expect(yield* gate.available).toBeGreaterThanOrEqual(count)
    return yield* Effect.forEach(Array.from({ length: count }), () => gate.acquire(0))
  })

const releaseAll = (permits: ReadonlyArray<Permit>, outcome: GateOutcome) =>
  Effect.forEach(permits, (permit) => permit.release(outcome), { discard: true })

/** Keeps the gate saturated: each success is replaced by as many new requests as the gate lets through. */
const cycle = (gate: Gate, held: Array<Permit>, successes: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < successes; i++) {
      yield* held.shift()!.release(success())
      let room = yield* gate.available
      while (room-- > 0) held.push(yield* gate.acquire(0))
    }
  })

/** Ends the cold start with one answer that says nothing of limits, so the gate is open and its buckets full. */
const warm = (gate: Gate) => Effect.flatMap(acquireNow(gate), (permit) => permit.release(success()))

/** A gate that has heard from its provider once, then configured (so its buckets start full). */
const configured = (config: Parameters<Gate["configure"]>[0]) =>
  Effect.gen(function* () {
    const gate = makeGate("test")
    yield* warm(gate)
    yield* gate.configure(config)
    return gate
  })

const COLD_START = 2

describe("ProviderGate buckets", () => {
  it.effect("refills the request bucket continuously, up to its capacity", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ requestsPerMinute: 60 })
      expect((yield* gate.snapshot).requestsAvailable).toBe(60)
      const permits = yield* acquireMany(gate, 60)
      yield* releaseAll(permits, FAILED)
      expect(yield* gate.available).toBe(0)

      const next = yield* startAcquire(gate)
      yield* TestClock.adjust(999)
      expect(yield* isDone(next)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(next)).toBe(true)
      expect((yield* gate.snapshot).requestsAvailable).toBe(0)

      yield* TestClock.adjust(30_000)
      expect((yield* gate.snapshot).requestsAvailable).toBe(30)
      expect(yield* gate.available).toBe(30)
      yield* TestClock.adjust(60_000)
      expect((yield* gate.snapshot).requestsAvailable).toBe(60)
    })
  )

  it.effect("waits for the token budget an estimate needs", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ tokensPerMinute: 6000 })
      yield* acquireNow(gate, 5000)
      expect((yield* gate.snapshot).tokensAvailable).toBe(1000)
      const next = yield* startAcquire(gate, 2000)
      yield* TestClock.adjust(9_999)
      expect(yield* isDone(next)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(next)).toBe(true)
      expect((yield* gate.snapshot).tokensAvailable).toBe(0)
    })
  )

  it.effect("lets a request larger than the token capacity through once the bucket is full", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ tokensPerMinute: 1000 })
      yield* acquireNow(gate, 5000)
      expect((yield* gate.snapshot).tokensAvailable).toBe(-4000)
      // The debt is paid off by refill before anyone else goes: 4100 tokens at 1000/min.
      const small = yield* startAcquire(gate, 100)
      yield* TestClock.adjust(245_999)
      expect(yield* isDone(small)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(small)).toBe(true)

      const other = yield* configured({ tokensPerMinute: 1000 })
      yield* acquireNow(other, 500)
      const big = yield* startAcquire(other, 5000)
      yield* TestClock.adjust(29_999)
      expect(yield* isDone(big)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(big)).toBe(true)
      expect((yield* other.snapshot).tokensAvailable).toBe(-4000)
    })
  )

  it.effect("corrects the token charge with the actual usage", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ tokensPerMinute: 6000 })
      const tokens = () => Effect.map(gate.snapshot, (s) => s.tokensAvailable)

      const answered = yield* acquireNow(gate, 1000)
      expect(yield* tokens()).toBe(5000)
      yield* answered.release(success({}, { inputTokens: 100, outputTokens: 200 }))
      expect(yield* tokens()).toBe(5700)

      const canceled = yield* acquireNow(gate, 1000)
      yield* canceled.release({ _tag: "Canceled" })
      expect(yield* tokens()).toBe(5700)

      const failed = yield* acquireNow(gate, 1000)
      yield* failed.release(FAILED)
      expect(yield* tokens()).toBe(4700)

      const underestimated = yield* acquireNow(gate, 100)
      yield* underestimated.release(success({}, { inputTokens: 300, outputTokens: 300 }))
      expect(yield* tokens()).toBe(4100)
    })
  )

  it.effect("ignores a second release of the same permit", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ tokensPerMinute: 6000 })
      const permit = yield* acquireNow(gate, 1000)
      yield* permit.release({ _tag: "Canceled" })
      yield* permit.release({ _tag: "Canceled" })
      const snapshot = yield* gate.snapshot
      expect(snapshot.inFlight).toBe(0)
      expect(snapshot.tokensAvailable).toBe(6000)
    })
  )
})

describe("ProviderGate fairness", () => {
  it.effect("serves waiters in arrival order, one per refill", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ requestsPerMinute: 60 })
      yield* releaseAll(yield* acquireMany(gate, 60), FAILED)
      const a = yield* startAcquire(gate)
      const b = yield* startAcquire(gate)
      const c = yield* startAcquire(gate)
      expect((yield* gate.snapshot).waiting).toBe(3)
      const done = () => Effect.all([isDone(a), isDone(b), isDone(c)])
      yield* TestClock.adjust(1000)
      expect(yield* done()).toEqual([true, false, false])
      yield* TestClock.adjust(1000)
      expect(yield* done()).toEqual([true, true, false])
      yield* TestClock.adjust(1000)
      expect(yield* done()).toEqual([true, true, true])
    })
  )

  it.effect("does not let a small request overtake a large one queued before it", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ tokensPerMinute: 6000 })
      yield* (yield* acquireNow(gate, 6000)).release(FAILED)
      const large = yield* startAcquire(gate, 3000)
      // 100 tokens have come back: enough for the newcomer, but the large request is first in line.
      yield* TestClock.adjust(1000)
      const small = yield* startAcquire(gate, 100)
      expect(yield* isDone(small)).toBe(false)
      yield* TestClock.adjust(29_000)
      expect(yield* isDone(large)).toBe(true)
      expect(yield* isDone(small)).toBe(false)
      yield* TestClock.adjust(1000)
      expect(yield* isDone(small)).toBe(true)
    })
  )

  it.effect("holds nothing for a waiter interrupted at the head or in the middle of the queue", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ requestsPerMinute: 60 })
      yield* releaseAll(yield* acquireMany(gate, 60), FAILED)
      const head = yield* startAcquire(gate)
      yield* Fiber.interrupt(head)
      let snapshot = yield* gate.snapshot
      expect(snapshot.waiting).toBe(0)
      expect(snapshot.acquired).toBe(61)
      expect(snapshot.inFlight).toBe(0)

      const a = yield* startAcquire(gate)
      const b = yield* startAcquire(gate)
      const c = yield* startAcquire(gate)
      yield* TestClock.adjust(500)
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(b)
      expect((yield* gate.snapshot).waiting).toBe(1)
      // The request that became available at 1 s goes to c, the only one still waiting.
      yield* TestClock.adjust(500)
      expect(yield* isDone(c)).toBe(true)
      snapshot = yield* gate.snapshot
      expect(snapshot.acquired).toBe(62)
      expect(snapshot.inFlight).toBe(1)
      expect(snapshot.requestsAvailable).toBe(0)
    })
  )

  it.effect("holds no slot for a waiter interrupted while waiting for concurrency", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ maxConcurrency: 1 })
      const held = yield* acquireNow(gate)
      const waiter = yield* startAcquire(gate)
      expect(yield* isDone(waiter)).toBe(false)
      yield* Fiber.interrupt(waiter)
      yield* held.release(FAILED)
      expect((yield* gate.snapshot).inFlight).toBe(0)
      yield* acquireNow(gate)
      expect((yield* gate.snapshot).inFlight).toBe(1)
    })
  )
})

describe("ProviderGate pauses", () => {
  it.effect("pauses on a 429 until its retry-after, then resumes", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      const permit = yield* acquireNow(gate)
      yield* permit.release({ _tag: "RateLimited", rateLimit: { retryAfterMs: 5000 } })
      const snapshot = yield* gate.snapshot
      expect(snapshot.pausedUntilMs).toBe(5000)
      expect(snapshot.rateLimited).toBe(1)
      expect(yield* gate.available).toBe(0)

      const next = yield* startAcquire(gate)
      yield* TestClock.adjust(4999)
      expect(yield* isDone(next)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(next)).toBe(true)
      expect((yield* gate.snapshot).pausedUntilMs).toBe(null)
    })
  )

  it.effect("backs off 1 s on a 429 without retry-after and 500 ms on an overload", () =>
    Effect.gen(function* () {
      const limited = makeGate("limited")
      yield* (yield* acquireNow(limited)).release({ _tag: "RateLimited", rateLimit: {} })
      expect((yield* limited.snapshot).pausedUntilMs).toBe(1000)

      const overloaded = makeGate("overloaded")
      yield* (yield* acquireNow(overloaded)).release({ _tag: "Overloaded", rateLimit: {} })
      expect((yield* overloaded.snapshot).pausedUntilMs).toBe(500)
      const told = makeGate("told")
      yield* (yield* acquireNow(told)).release({ _tag: "Overloaded", rateLimit: { retryAfterMs: 2000 } })
      expect((yield* told.snapshot).pausedUntilMs).toBe(2000)
    })
  )

  it.effect("pauses only the gate that was throttled", () =>
    Effect.gen(function* () {
      const gates = yield* ProviderGates
      const a = yield* gates.get("openai:key-a", {})
      const b = yield* gates.get("openai:key-b", {})
      yield* (yield* acquireNow(a)).release({ _tag: "RateLimited", rateLimit: { retryAfterMs: 10_000 } })
      expect(yield* a.available).toBe(0)
      expect(yield* b.available).toBe(COLD_START)
      yield* acquireNow(b)
    }).pipe(Effect.provide(ProviderGates.Default))
  )
})

describe("ProviderGate cold start", () => {
  it.effect("lets requests out on a ramp, timed from the first one, until the provider first answers", () =>
    Effect.gen(function* () {
      // A gate created long before it is used still starts its ramp with its first request.
      yield* TestClock.adjust(10_000)
      const gate = makeGate("test")
      expect((yield* gate.snapshot).cold).toBe(true)
      expect(yield* gate.available).toBe(COLD_START)
      const held = [...(yield* acquireMany(gate, COLD_START))]
      expect(yield* gate.available).toBe(0)

      // Twice as many every 25 ms: the 3rd at 25 × log2(3/2) ≈ 15 ms, the 4th at 25 ms, the 5th at ≈ 34 ms.
      const third = yield* startAcquire(gate)
      const fourth = yield* startAcquire(gate)
      const fifth = yield* startAcquire(gate)
      const done = () => Effect.all([isDone(third), isDone(fourth), isDone(fifth)])
      yield* TestClock.adjust(14)
      expect(yield* done()).toEqual([false, false, false])
      yield* TestClock.adjust(1)
      expect(yield* done()).toEqual([true, false, false])
      yield* TestClock.adjust(10)
      expect(yield* done()).toEqual([true, true, false])
      yield* TestClock.adjust(8)
      expect(yield* done()).toEqual([true, true, false])
      yield* TestClock.adjust(1)
      expect(yield* done()).toEqual([true, true, true])
      held.push(...(yield* Effect.all([Fiber.join(third), Fiber.join(fourth), Fiber.join(fifth)])))
      expect(yield* gate.available).toBe(0)

      // The ramp's clock runs only while requests go out: after a long gap, one doubling (5 at 34 ms: 10), not 2^40.
      yield* TestClock.adjust(60_000)
      expect(yield* gate.available).toBe(5)
      held.push(...(yield* takeRoom(gate, 5)))
      expect(yield* gate.available).toBe(0)

      // The first answer opens the gate: nothing but its concurrency limit holds it now.
      yield* held.shift()!.release(success())
      const snapshot = yield* gate.snapshot
      expect(snapshot.cold).toBe(false)
      expect(snapshot.concurrencyLimit).toBe(1024)
      expect(yield* gate.available).toBe(1024 - 9)
      yield* takeRoom(gate, 1024 - 9)
      expect(yield* gate.available).toBe(0)
    })
  )

  it.effect(
    "takes the limits from a cold gate's first 429 and paces by them, without shrinking concurrency",
    () =>
      Effect.gen(function* () {
        const gate = makeGate("test")
        const [first, second] = yield* acquireMany(gate, COLD_START)
        yield* first!.release({
          _tag: "RateLimited",
          rateLimit: { requestsLimit: 600, requestsRemaining: 0, requestsResetMs: 60_000, retryAfterMs: 100 }
        })
        const snapshot = yield* gate.snapshot
        expect(snapshot.cold).toBe(false)
        expect(snapshot.requestsAvailable).toBe(0)
        expect(snapshot.pausedUntilMs).toBe(100)
        expect(snapshot.concurrencyLimit).toBe(1024)
        // The request still out was sent blind: its answer may only lower what the gate thinks is left.
        yield* second!.release(success({ requestsRemaining: 3 }))
        expect((yield* gate.snapshot).requestsAvailable).toBe(0)

        // 600 per minute: one request every 100 ms, as the provider refills.
        const next = yield* startAcquire(gate)
        const after = yield* startAcquire(gate)
        yield* TestClock.adjust(99)
        expect(yield* isDone(next)).toBe(false)
        yield* TestClock.adjust(1)
        expect(yield* isDone(next)).toBe(true)
        yield* TestClock.adjust(99)
        expect(yield* isDone(after)).toBe(false)
        yield* TestClock.adjust(1)
        expect(yield* isDone(after)).toBe(true)
      })
  )
})

describe("ProviderGate concurrency", () => {
  it.effect("has no limit below its ceiling of 1024 until the provider pushes back", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      yield* warm(gate)
      const held = [...(yield* takeRoom(gate, 1024))]
      expect(yield* gate.available).toBe(0)
      const blocked = yield* startAcquire(gate)
      expect(yield* isDone(blocked)).toBe(false)
      yield* Fiber.interrupt(blocked)
      yield* cycle(gate, held, 200)
      const snapshot = yield* gate.snapshot
      expect(snapshot.concurrencyLimit).toBe(1024)
      expect(snapshot.inFlight).toBe(1024)
    })
  )

  it.effect("halves what was in flight once per burst of pushback, then grows by one per round trip", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      yield* warm(gate)
      const held = [...(yield* acquireMany(gate, 64))]

      // An overload with 64 in flight: 32, not half of a limit of 1024 that was never reached.
      yield* held.shift()!.release({ _tag: "Overloaded", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(32)
      // A 429 without headers is pushback too, but one for a request sent before the decrease is old news.
      yield* held.shift()!.release({ _tag: "RateLimited", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(32)

      yield* releaseAll(held.splice(0), FAILED)
      yield* TestClock.adjust(1000)
      held.push(...(yield* acquireMany(gate, 32)))
      yield* cycle(gate, held, 40)
      expect((yield* gate.snapshot).concurrencyLimit).toBe(33)

      const late = held.pop()!
      yield* late.release({ _tag: "RateLimited", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(16)
    })
  )

  it.effect("leaves concurrency alone for a 429 whose headers say the requests or tokens ran out", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      yield* warm(gate)
      const held = [...(yield* acquireMany(gate, 10, 100))]
      yield* held.shift()!.release({ _tag: "RateLimited", rateLimit: { requestsRemaining: 0 } })
      yield* held.shift()!.release({ _tag: "RateLimited", rateLimit: { tokensRemaining: 99 } })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(1024)
      // Requests and tokens left: the 429 is about something else, and concurrency is the lever left.
      yield* held.shift()!.release({
        _tag: "RateLimited",
        rateLimit: { requestsRemaining: 5, tokensRemaining: 100 }
      })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(4)
    })
  )

  it.effect("does not grow a limit that is not being used", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      yield* warm(gate)
      const held = yield* acquireMany(gate, 16)
      yield* held[0]!.release({ _tag: "Overloaded", rateLimit: {} })
      yield* releaseAll(held, FAILED)
      expect((yield* gate.snapshot).concurrencyLimit).toBe(8)
      yield* TestClock.adjust(500)
      for (let i = 0; i < 100; i++) yield* (yield* acquireNow(gate)).release(success())
      expect((yield* gate.snapshot).concurrencyLimit).toBe(8)
    })
  )

  it.effect("is capped by the model config's maxConcurrency", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ maxConcurrency: 8 })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(8)
      const held = [...(yield* acquireMany(gate, 8))]
      const ninth = yield* startAcquire(gate)
      expect(yield* isDone(ninth)).toBe(false)
      yield* held.shift()!.release(success())
      yield* flush
      expect(yield* isDone(ninth)).toBe(true)
      held.push(yield* Fiber.join(ninth))
      yield* cycle(gate, held, 50)
      const snapshot = yield* gate.snapshot
      expect(snapshot.concurrencyLimit).toBe(8)
      expect(snapshot.inFlight).toBe(8)
      // Lifting the cap lifts the limit: nothing pushed back.
      yield* gate.configure({})
      expect((yield* gate.snapshot).concurrencyLimit).toBe(1024)
    })
  )
})

describe("ProviderGate opensInMs", () => {
  it.effect("says when time alone gives room: the cold ramp, a pause, a dry bucket; nothing otherwise", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      expect(yield* gate.opensInMs).toBe(undefined)
      // Room offered to callers on their way: look again soon, until the first request is out (at most 1 s).
      expect(yield* gate.available).toBe(COLD_START)
      expect(yield* gate.opensInMs).toBe(10)
      yield* TestClock.adjust(1000)
      expect(yield* gate.opensInMs).toBe(undefined)
      // Ramp started: the 3rd request may go 15 ms after the first.
      const held = yield* acquireMany(gate, COLD_START)
      expect(yield* gate.opensInMs).toBe(15)
      yield* held[0]!.release(success())
      expect(yield* gate.opensInMs).toBe(undefined)

      yield* held[1]!.release({ _tag: "RateLimited", rateLimit: { retryAfterMs: 300 } })
      expect(yield* gate.opensInMs).toBe(300)
      yield* TestClock.adjust(300)
      expect(yield* gate.opensInMs).toBe(undefined)

      const dry = yield* configured({ requestsPerMinute: 60 })
      yield* acquireMany(dry, 60)
      expect(yield* dry.opensInMs).toBe(1000)
    })
  )

  it.effect("across all gates, is the soonest", () =>
    Effect.gen(function* () {
      const gates = yield* ProviderGates
      expect(yield* gates.opensInMs).toBe(undefined)
      const a = yield* gates.get("a", {})
      const b = yield* gates.get("b", {})
      yield* (yield* acquireNow(a)).release({ _tag: "RateLimited", rateLimit: { retryAfterMs: 700 } })
      yield* (yield* acquireNow(b)).release({ _tag: "Overloaded", rateLimit: { retryAfterMs: 400 } })
      expect(yield* gates.opensInMs).toBe(400)
      yield* TestClock.adjust(400)
      expect(yield* gates.opensInMs).toBe(300)
    }).pipe(Effect.provide(ProviderGates.Default))
  )
})

describe("ProviderGate header learning", () => {
  it.effect("takes capacities from the limits and lowers the level to what remains, never raising it", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      let snapshot = yield* gate.snapshot
      expect(snapshot.requestsAvailable).toBe(null)
      expect(snapshot.tokensAvailable).toBe(null)

      yield* (yield* acquireNow(gate, 100)).release(
        success({ requestsLimit: 600, requestsRemaining: 100, tokensLimit: 60_000, tokensRemaining: 5000 })
      )
      snapshot = yield* gate.snapshot
      expect(snapshot.requestsAvailable).toBe(100)
      expect(snapshot.tokensAvailable).toBe(5000)

      yield* (yield* acquireNow(gate, 0)).release(
        success({ requestsRemaining: 500, tokensRemaining: 50_000 })
      )
      snapshot = yield* gate.snapshot
      expect(snapshot.requestsAvailable).toBe(99)
      expect(snapshot.tokensAvailable).toBe(5000)

      // 600 requests and 60,000 tokens per minute: 10 and 1000 per second.
      yield* TestClock.adjust(6000)
      snapshot = yield* gate.snapshot
      expect(snapshot.requestsAvailable).toBe(159)
      expect(snapshot.tokensAvailable).toBe(11_000)

      // A configured limit and a learned one: the lower wins.
      yield* gate.configure({ requestsPerMinute: 300 })
      yield* TestClock.adjust(60_000)
      expect((yield* gate.snapshot).requestsAvailable).toBe(300)
      yield* gate.configure({ requestsPerMinute: 1200 })
      yield* TestClock.adjust(60_000)
      expect((yield* gate.snapshot).requestsAvailable).toBe(600)
    })
  )

  it.effect("with nothing remaining, waits by the bucket's refill rate rather than the full reset", () =>
    Effect.gen(function* () {
      const gate = yield* configured({ requestsPerMinute: 600 })
      yield* (yield* acquireNow(gate)).release(success({ requestsRemaining: 0, requestsResetMs: 60_000 }))
      const snapshot = yield* gate.snapshot
      expect(snapshot.requestsAvailable).toBe(0)
      expect(snapshot.pausedUntilMs).toBe(null)
      const next = yield* startAcquire(gate)
      yield* TestClock.adjust(99)
      expect(yield* isDone(next)).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* isDone(next)).toBe(true)
    })
  )

  it.effect("pauses until the reset when nothing remains of an unknown limit, or on a retry-after", () =>
    Effect.gen(function* () {
      const unknown = makeGate("unknown")
      yield* (yield* acquireNow(unknown)).release(success({ requestsRemaining: 0, requestsResetMs: 2000 }))
      expect((yield* unknown.snapshot).pausedUntilMs).toBe(2000)

      const told = makeGate("told")
      yield* (yield* acquireNow(told)).release(success({ retryAfterMs: 300 }))
      expect((yield* told.snapshot).pausedUntilMs).toBe(300)
    })
  )
})

describe("ProviderGates", () => {
  it.effect("keeps one gate per key, applies the config and lists them", () =>
    Effect.gen(function* () {
      const gates = yield* ProviderGates
      const first = yield* gates.get("anthropic:k1:claude", { requestsPerMinute: 50 })
      const again = yield* gates.get("anthropic:k1:claude", { requestsPerMinute: 50, maxConcurrency: 4 })
      expect(again).toBe(first)
      expect((yield* first.snapshot).concurrencyLimit).toBe(4)
      yield* gates.get("openai:k2", {})
      const all = yield* gates.all
      expect(all.map((s) => s.key).sort()).toEqual(["anthropic:k1:claude", "openai:k2"])
      expect(all.find((s) => s.key === "anthropic:k1:claude")?.requestsAvailable).toBe(50)
    }).pipe(Effect.provide(ProviderGates.Default))
  )
})

// The OpenAI headers the fake sends, as an adapter would read them.
const goDurationMs = (text: string | null): number | undefined => {
  if (text === null) return undefined
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }
  let total = 0
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g))
    total += Number(amount) * units[unit!]!
  return total
}

const rateLimitOf = (headers: Headers): RateLimitInfo => {
  const number = (name: string) => {
    const value = headers.get(name)
    return value === null ? undefined : Number(value)
  }
  const retryAfterSeconds = number("retry-after")
  const entries = {
    requestsLimit: number("x-ratelimit-limit-requests"),
    requestsRemaining: number("x-ratelimit-remaining-requests"),
    requestsResetMs: goDurationMs(headers.get("x-ratelimit-reset-requests")),
    tokensLimit: number("x-ratelimit-limit-tokens"),
    tokensRemaining: number("x-ratelimit-remaining-tokens"),
    tokensResetMs: goDurationMs(headers.get("x-ratelimit-reset-tokens")),
    retryAfterMs:
      number("retry-after-ms") ?? (retryAfterSeconds === undefined ? undefined : retryAfterSeconds * 1000)
  }
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined))
}

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly usage: Usage
}

describe("ProviderGate against the fake provider", () => {
  it.scopedLive(
    "paces 720 requests at 600/min (a full 600 burst, then 120 at the refill rate) with almost no 429s",
    () =>
      Effect.gen(function* () {
        const requestsPerMinute = 600
        const latencyMs = 200
        const burst = 600
        const measured = 120
        const provider = yield* FakeProvider.scoped({ requestsPerMinute, latencyMs })
        const gate = makeGate("fake:openai")
        const maxTokens = 16

        const call = (content: string) =>
          Effect.tryPromise({
            try: async (signal): Promise<Answer> => {
              const response = await fetch(`${provider.url}/v1/chat/completions`, {
                method: "POST",
                signal,
                headers: { authorization: "Bearer sk-test", "content-type": "application/json" },
                body: JSON.stringify({
                  model: "gpt-test",
                  max_completion_tokens: maxTokens,
                  messages: [{ role: "user", content }]
                })
              })
              const body = (await response.json()) as {
                usage?: { prompt_tokens: number; completion_tokens: number }
              }
              return {
                status: response.status,
                headers: response.headers,
                usage: {
                  inputTokens: body.usage?.prompt_tokens ?? 0,
                  outputTokens: body.usage?.completion_tokens ?? 0
                }
              }
            },
            catch: (error) => new Error(String(error))
          })

        const outcomeOf = (answer: Answer): GateOutcome => {
          const rateLimit = rateLimitOf(answer.headers)
          if (answer.status === 200) return { _tag: "Success", usage: answer.usage, rateLimit }
          if (answer.status === 429) return { _tag: "RateLimited", rateLimit }
          return { _tag: "Failed" }
        }

        // One row: acquire, call, report; a 429 goes back through the gate, as the engine would retry it.
        const row = (index: number): Effect.Effect<number, Error> => {
          const content = `row ${index}`
          const estimate = Math.ceil(`user: ${content}`.length / 4) + maxTokens
          return Effect.acquireUseRelease(
            gate.acquire(estimate),
            () => call(content),
            (permit, exit) =>
              permit.release(Exit.isSuccess(exit) ? outcomeOf(exit.value) : { _tag: "Canceled" })
          ).pipe(
            Effect.flatMap((answer) => (answer.status === 429 ? row(index) : Effect.succeed(answer.status)))
          )
        }

        const started = performance.now()
        const statuses = yield* Effect.forEach(
          Array.from({ length: burst + measured }, (_, i) => i),
          row,
          { concurrency: "unbounded" }
        )
        const elapsedMs = performance.now() - started

        const ideal = (measured / requestsPerMinute) * 60_000 + latencyMs
        const ratio = elapsedMs / ideal
        const calls = provider.stats.requests
        console.log(
          `gate vs fake: ${burst + measured} rows in ${Math.round(elapsedMs)} ms, ideal ${ideal} ms, ` +
            `ratio ${ratio.toFixed(3)}, ${provider.stats.rateLimited} 429s of ${calls} calls, ` +
            `max in flight ${provider.stats.maxInFlight}`
        )
        expect(statuses.every((status) => status === 200)).toBe(true)
        expect(provider.stats.successes).toBe(burst + measured)
        expect(provider.stats.rateLimited).toBeLessThanOrEqual(Math.floor(calls * 0.01))
        expect(ratio).toBeGreaterThan(0.95)
        expect(ratio).toBeLessThan(1.15)
      }),
    { timeout: 60_000 }
  )
})
