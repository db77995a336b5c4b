import { describe, expect, it } from "@effect/vitest"
import {
  parseGoDuration,
  parseRateLimitHeaders,
  parseRetryAfter
} from "../src/execution/providers/RateLimitHeaders.ts"
import { goDuration } from "./support/FakeProvider.ts"

const NOW = Date.parse("2026-11-28T10:00:00.000Z")

const parse = (headers: Record<string, string>) => parseRateLimitHeaders(new Headers(headers), NOW)

describe("parseGoDuration", () => {
  it("reads every unit and compound durations", () => {
    expect(parseGoDuration("0")).toBe(0)
    expect(parseGoDuration("0s")).toBe(0)
    expect(parseGoDuration("1s")).toBe(1000)
    expect(parseGoDuration("120ms")).toBe(120)
    expect(parseGoDuration("6m0s")).toBe(360_000)
    expect(parseGoDuration("1h2m3.5s")).toBe(3_723_500)
    expect(parseGoDuration("8.64s")).toBe(8640)
    expect(parseGoDuration("2h")).toBe(7_200_000)
    expect(parseGoDuration(".5s")).toBe(500)
    expect(parseGoDuration("1m30.25s")).toBe(90_250)
  })

  it("rounds sub-millisecond durations up, so that waiting them is enough", () => {
    expect(parseGoDuration("1.5ms")).toBe(2)
    expect(parseGoDuration("500us")).toBe(1)
    expect(parseGoDuration("250µs")).toBe(1)
    expect(parseGoDuration("1000ns")).toBe(1)
    expect(parseGoDuration("2000000ns")).toBe(2)
  })

  it("reads what the fake provider (and OpenAI) write", () => {
    for (const ms of [0, 1, 119.2, 999, 1000, 8640, 59_999, 360_000, 3_723_500])
      expect(parseGoDuration(goDuration(ms))).toBe(Math.ceil(ms))
  })

  it("refuses garbage, negatives and half-written durations", () => {
    for (const text of [
      "",
      " ",
      "abc",
      "1",
      "1x",
      "1s2",
      "-1s",
      "+-1s",
      "1.5.3s",
      "s",
      "1 s",
      "ms1",
      "1sms",
      "NaNs"
    ])
      expect(parseGoDuration(text), text).toBeUndefined()
  })
})

describe("parseRetryAfter", () => {
  const retryAfter = (headers: Record<string, string>) => parseRetryAfter(new Headers(headers), NOW)

  it("prefers retry-after-ms, then retry-after in seconds or as an HTTP date", () => {
    expect(retryAfter({ "retry-after-ms": "1500" })).toBe(1500)
    expect(retryAfter({ "retry-after-ms": "1500", "retry-after": "2" })).toBe(1500)
    expect(retryAfter({ "retry-after-ms": "12.2" })).toBe(13)
    expect(retryAfter({ "retry-after": "30" })).toBe(30_000)
    expect(retryAfter({ "retry-after": "1.5" })).toBe(1500)
    expect(retryAfter({ "retry-after": "0" })).toBe(0)
    expect(retryAfter({ "retry-after": "Sat, 28 Nov 2026 10:00:30 GMT" })).toBe(30_000)
  })

  it("reads a date in the past as no wait", () => {
    expect(retryAfter({ "retry-after": "Sat, 28 Nov 2026 09:59:00 GMT" })).toBe(0)
  })

  it("falls back to retry-after when retry-after-ms is unreadable, and leaves garbage absent", () => {
    expect(retryAfter({ "retry-after-ms": "soon", "retry-after": "3" })).toBe(3000)
    expect(retryAfter({})).toBeUndefined()
    expect(retryAfter({ "retry-after": "soon" })).toBeUndefined()
    expect(retryAfter({ "retry-after": "-5" })).toBeUndefined()
    expect(retryAfter({ "retry-after-ms": "-5" })).toBeUndefined()
    expect(retryAfter({ "retry-after": "2026-11-28" })).toBeUndefined()
    expect(retryAfter({ "retry-after": "Someday, 99 Foo 2026 10:00:30 GMT" })).toBeUndefined()
  })
})

describe("parseRateLimitHeaders", () => {
  it("reads OpenAI's x-ratelimit headers", () => {
    expect(
      parse({
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-tokens": "6m0s"
      })
    ).toEqual({
      requestsLimit: 60,
      requestsRemaining: 59,
      requestsResetMs: 1000,
      tokensLimit: 150_000,
      tokensRemaining: 149_984,
      tokensResetMs: 360_000
    })
  })

  it("reads bare reset numbers as seconds, and large ones as a Unix time", () => {
    expect(parse({ "x-ratelimit-reset-requests": "2" })).toEqual({ requestsResetMs: 2000 })
    expect(parse({ "x-ratelimit-reset-tokens": String(NOW / 1000 + 7) })).toEqual({ tokensResetMs: 7000 })
    expect(parse({ "x-ratelimit-reset-tokens": String(NOW / 1000 - 7) })).toEqual({ tokensResetMs: 0 })
  })

  it("reads Anthropic's headers, with RFC 3339 resets measured from now", () => {
    expect(
      parse({
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-11-28T10:00:01.500Z",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "79000",
        "anthropic-ratelimit-tokens-reset": "2026-11-28T12:00:30+02:00"
      })
    ).toEqual({
      requestsLimit: 50,
      requestsRemaining: 49,
      requestsResetMs: 1500,
      tokensLimit: 80_000,
      tokensRemaining: 79_000,
      tokensResetMs: 30_000
    })
  })

  it("takes the token family with the smallest remaining", () => {
    const families = {
      "anthropic-ratelimit-tokens-limit": "100000",
      "anthropic-ratelimit-tokens-remaining": "90000",
      "anthropic-ratelimit-tokens-reset": "2026-11-28T10:00:10Z",
      "anthropic-ratelimit-input-tokens-limit": "40000",
      "anthropic-ratelimit-input-tokens-remaining": "800",
      "anthropic-ratelimit-input-tokens-reset": "2026-11-28T10:00:20Z",
      "anthropic-ratelimit-output-tokens-limit": "8000",
      "anthropic-ratelimit-output-tokens-remaining": "2000",
      "anthropic-ratelimit-output-tokens-reset": "2026-11-28T10:00:05Z"
    }
    expect(parse(families)).toEqual({ tokensLimit: 40_000, tokensRemaining: 800, tokensResetMs: 20_000 })
    expect(parse({ ...families, "anthropic-ratelimit-output-tokens-remaining": "10" })).toEqual({
      tokensLimit: 8000,
      tokensRemaining: 10,
      tokensResetMs: 5000
    })
  })

  it("works with only the input and output families, filling a field the binding family lacks", () => {
    expect(
      parse({
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": "2026-11-28T10:00:02Z",
        "anthropic-ratelimit-output-tokens-remaining": "100"
      })
    ).toEqual({ tokensLimit: 40_000, tokensRemaining: 100, tokensResetMs: 2000 })
  })

  it("reads resets in the past as 0, and adds retry-after", () => {
    expect(
      parse({
        "anthropic-ratelimit-requests-reset": "2026-11-28T09:00:00Z",
        "retry-after": "4"
      })
    ).toEqual({ requestsResetMs: 0, retryAfterMs: 4000 })
  })

  it("is empty without headers, and trims values", () => {
    expect(parse({})).toEqual({})
    expect(Object.keys(parse({ "content-type": "application/json" }))).toHaveLength(0)
    expect(parse({ "x-ratelimit-limit-requests": " 60 ", "x-ratelimit-remaining-requests": "59.7" })).toEqual(
      {
        requestsLimit: 60,
        requestsRemaining: 59
      }
    )
  })

  it("leaves every unreadable value absent", () => {
    expect(
      parse({
        "x-ratelimit-limit-requests": "lots",
        "x-ratelimit-remaining-requests": "-1",
        "x-ratelimit-reset-requests": "tomorrow",
        "x-ratelimit-limit-tokens": "",
        "x-ratelimit-remaining-tokens": "1e3",
        "x-ratelimit-reset-tokens": "-2s",
        "retry-after": "whenever"
      })
    ).toEqual({})
    expect(
      parse({
        "anthropic-ratelimit-requests-limit": "0x10",
        "anthropic-ratelimit-requests-reset": "2026-11-28",
        "anthropic-ratelimit-tokens-reset": "1s",
        "anthropic-ratelimit-input-tokens-reset": "Sat, 28 Nov 2026 10:00:30 GMT",
        "anthropic-ratelimit-output-tokens-reset": "2026-13-45T99:99:99Z"
      })
    ).toEqual({})
  })

  it("keeps a zero remaining (an empty budget is information)", () => {
    expect(parse({ "x-ratelimit-remaining-requests": "0" })).toEqual({ requestsRemaining: 0 })
  })
})
