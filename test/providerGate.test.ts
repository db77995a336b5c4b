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

const configured = (config: Parameters<Gate["configure"]>[0]) =>
  Effect.gen(function* () {
    const gate = makeGate("test")
    yield* gate.configure(config)
    return gate
  })

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
      expect(snapshot.acquired).toBe(60)
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
      expect(snapshot.acquired).toBe(61)
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
      expect(yield* b.available).toBe(64)
      yield* acquireNow(b)
    }).pipe(Effect.provide(ProviderGates.Default))
  )
})

describe("ProviderGate concurrency", () => {
  it.effect("starts at 64 and doubles per round trip while nothing pushes back", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      const held = [...(yield* acquireMany(gate, 64))]
      expect(yield* gate.available).toBe(0)
      const blocked = yield* startAcquire(gate)
      expect(yield* isDone(blocked)).toBe(false)
      yield* Fiber.interrupt(blocked)

      yield* cycle(gate, held, 64)
      const snapshot = yield* gate.snapshot
      expect(snapshot.concurrencyLimit).toBe(128)
      expect(snapshot.inFlight).toBe(128)
    })
  )

  it.effect("does not grow a limit that is not being used", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      for (let i = 0; i < 100; i++) yield* (yield* acquireNow(gate)).release(success())
      expect((yield* gate.snapshot).concurrencyLimit).toBe(64)
    })
  )

  it.effect("halves once per burst of pushback, then grows by one per round trip", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      const held = [...(yield* acquireMany(gate, 64))]
      yield* cycle(gate, held, 64)
      expect((yield* gate.snapshot).concurrencyLimit).toBe(128)

      // Two 429s for requests sent before the first decrease count as one.
      yield* held.shift()!.release({ _tag: "RateLimited", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(64)
      yield* held.shift()!.release({ _tag: "RateLimited", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(64)

      yield* releaseAll(held.splice(0), FAILED)
      yield* TestClock.adjust(1000)
      const late = yield* acquireNow(gate)
      yield* late.release({ _tag: "Overloaded", rateLimit: {} })
      expect((yield* gate.snapshot).concurrencyLimit).toBe(32)

      yield* TestClock.adjust(500)
      held.push(...(yield* acquireMany(gate, 32)))
      yield* cycle(gate, held, 40)
      expect((yield* gate.snapshot).concurrencyLimit).toBe(33)
    })
  )

  it.effect("never exceeds 1024", () =>
    Effect.gen(function* () {
      const gate = makeGate("test")
      const held = [...(yield* acquireMany(gate, 64))]
      yield* cycle(gate, held, 1200)
      const snapshot = yield* gate.snapshot
      expect(snapshot.concurrencyLimit).toBe(1024)
      expect(snapshot.inFlight).toBe(1024)
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
    })
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
