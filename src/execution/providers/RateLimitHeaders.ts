import type { RateLimitInfo } from "../Provider.ts"

/**
 * Reading what a provider says about its limits from the response headers, into `RateLimitInfo`.
 *
 * - OpenAI (and most OpenAI-compatible servers): `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; the
 *   resets are Go durations ("120ms", "1s", "6m0s", "1h2m3.5s"). A bare number is read as seconds, or as a Unix
 *   time in seconds when it is 1e9 or more (some compatible servers send those).
 * - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`; the
 *   resets are RFC 3339 timestamps. Of the token families, the one with the smallest remaining binds and gives the
 *   limit, remaining and reset (a field it lacks comes from the next family that has it).
 * - `retry-after-ms` (milliseconds) wins over `retry-after` (seconds, or an HTTP date).
 *
 * Durations are whole milliseconds, rounded up so that waiting them is always enough; times in the past are 0.
 * A header that is missing, negative or unreadable leaves its field absent: a provider's garbage never becomes a
 * number.
 */

/** What the parser needs of a `Headers` object. */
export interface HeaderSource {
  readonly get: (name: string) => string | null
}

const GO_DURATION = /^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)/
const GO_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000
}
const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/
const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/
const HTTP_DATE = /^[A-Za-z]{3},\s+\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}:\d{2}\s+GMT$/
// A bare reset number this large is a Unix time in seconds (2001 onwards), not a wait.
const UNIX_SECONDS_FROM = 1e9

// Float products like 8.64 * 1000 land a hair above the integer; this keeps them from rounding up a whole ms.
const wholeMs = (ms: number) => Math.max(0, Math.ceil(ms - 1e-6))

const header = (headers: HeaderSource, name: string): string | undefined => {
  const value = headers.get(name)?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** A Go duration ("1h2m3.5s", "120ms", "0") in milliseconds; negative or unreadable → undefined. */
export const parseGoDuration = (text: string): number | undefined => {
  const value = text.trim()
  if (value === "0") return 0
  if (value === "") return undefined
  let rest = value
  let total = 0
  while (rest.length > 0) {
    const match = GO_DURATION.exec(rest)
    if (match === null) return undefined
    const number = /^[\d.]+/.exec(match[0])![0]
    total += Number(number) * GO_UNIT_MS[match[0].slice(number.length)]!
    rest = rest.slice(match[0].length)
  }
  return Number.isFinite(total) ? wholeMs(total) : undefined
}

const count = (text: string | undefined): number | undefined =>
  text !== undefined && DECIMAL.test(text) ? Math.floor(Number(text)) : undefined

const openAiReset = (text: string | undefined, now: number): number | undefined => {
  if (text === undefined) return undefined
  if (DECIMAL.test(text)) {
    const seconds = Number(text)
    return wholeMs(seconds >= UNIX_SECONDS_FROM ? seconds * 1000 - now : seconds * 1000)
  }
  return parseGoDuration(text)
}

const timestampReset = (text: string | undefined, now: number): number | undefined => {
  if (text === undefined || !RFC_3339.test(text)) return undefined
  const at = Date.parse(text.replace(" ", "T"))
  return Number.isNaN(at) ? undefined : wholeMs(at - now)
}

/** `retry-after-ms`, else `retry-after` as seconds or an HTTP date, in milliseconds. */
export const parseRetryAfter = (headers: HeaderSource, now: number = Date.now()): number | undefined => {
  const ms = header(headers, "retry-after-ms")
  if (ms !== undefined && DECIMAL.test(ms)) return wholeMs(Number(ms))
  const after = header(headers, "retry-after")
  if (after === undefined) return undefined
  if (DECIMAL.test(after)) return wholeMs(Number(after) * 1000)
  if (!HTTP_DATE.test(after)) return undefined
  const at = Date.parse(after)
  return Number.isNaN(at) ? undefined : wholeMs(at - now)
}

interface Family {
  readonly limit: number | undefined
  readonly remaining: number | undefined
  readonly resetMs: number | undefined
}

const anthropicFamily = (headers: HeaderSource, name: string, now: number): Family => ({
  limit: count(header(headers, `anthropic-ratelimit-${name}-limit`)),
  remaining: count(header(headers, `anthropic-ratelimit-${name}-remaining`)),
  resetMs: timestampReset(header(headers, `anthropic-ratelimit-${name}-reset`), now)
})

const openAiFamily = (headers: HeaderSource, name: string, now: number): Family => ({
  limit: count(header(headers, `x-ratelimit-limit-${name}`)),
  remaining: count(header(headers, `x-ratelimit-remaining-${name}`)),
  resetMs: openAiReset(header(headers, `x-ratelimit-reset-${name}`), now)
})

/** The family with the smallest remaining (first on ties), its missing fields filled from the others in order. */
const binding = (families: ReadonlyArray<Family>): Family => {
  const withRemaining = families.filter((f) => f.remaining !== undefined)
  const first = withRemaining.reduce<Family | undefined>(
    (best, f) => (best === undefined || f.remaining! < best.remaining! ? f : best),
    undefined
  )
  const ordered = first === undefined ? families : [first, ...families.filter((f) => f !== first)]
  return {
    limit: ordered.find((f) => f.limit !== undefined)?.limit,
    remaining: first?.remaining,
    resetMs: ordered.find((f) => f.resetMs !== undefined)?.resetMs
  }
}

/** Everything the headers say about the limits; `now` (epoch ms) anchors timestamps. */
export const parseRateLimitHeaders = (headers: HeaderSource, now: number = Date.now()): RateLimitInfo => {
  const openAiRequests = openAiFamily(headers, "requests", now)
  const openAiTokens = openAiFamily(headers, "tokens", now)
  const anthropicRequests = anthropicFamily(headers, "requests", now)
  const anthropicTokens = binding(
    ["tokens", "input-tokens", "output-tokens"].map((name) => anthropicFamily(headers, name, now))
  )
  const fields: Record<keyof RateLimitInfo, number | undefined> = {
    requestsLimit: openAiRequests.limit ?? anthropicRequests.limit,
    requestsRemaining: openAiRequests.remaining ?? anthropicRequests.remaining,
    requestsResetMs: openAiRequests.resetMs ?? anthropicRequests.resetMs,
    tokensLimit: openAiTokens.limit ?? anthropicTokens.limit,
    tokensRemaining: openAiTokens.remaining ?? anthropicTokens.remaining,
    tokensResetMs: openAiTokens.resetMs ?? anthropicTokens.resetMs,
    retryAfterMs: parseRetryAfter(headers, now)
  }
  return Object.fromEntries(
    Object.entries(fields).filter(([, value]) => value !== undefined)
  ) as RateLimitInfo
}
