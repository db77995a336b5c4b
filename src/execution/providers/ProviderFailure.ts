import { Duration } from "effect"
import type { Provider } from "../../domain/Model.ts"
import { ProviderError, type ProviderErrorCode, type RateLimitInfo } from "../Provider.ts"
import { parseRateLimitHeaders, type HeaderSource } from "./RateLimitHeaders.ts"

/**
 * What the HTTP adapters share: turning an error answer, a network failure or an unreadable body into a
 * `ProviderError`, and keeping the API key out of every message.
 *
 * HTTP status → code:
 * - 429 → `rate_limited`, except OpenAI's `insufficient_quota` (→ `auth`: retrying cannot help until the account is
 *   topped up) and a 429 sent with `x-should-retry: false` (→ `bad_request`: the request exceeds the limit itself).
 * - 529, or an Anthropic `overloaded_error` at any status → `overloaded`.
 * - 408 → `timeout` and 409 → `server_error`: both are transient, worth another attempt.
 * - other 5xx → `server_error`; 400, 413, 422 and any other 4xx → `bad_request`; 401, 402, 403 → `auth`;
 *   404 → `not_found`.
 */

const NAMES: Record<Provider, string> = {
  mock: "The mock provider",
  openai: "OpenAI",
  anthropic: "Anthropic",
  "openai-compatible": "The OpenAI-compatible server"
}

export const providerName = (provider: Provider): string => NAMES[provider]

// Provider messages are quoted for the user, but kept short: a cell's error is a line, not a page.
const MAX_DETAIL_CHARS = 300

const redact = (text: string, apiKey: string | undefined) =>
  apiKey === undefined || apiKey === "" ? text : text.replaceAll(apiKey, "[redacted]")

/** A provider's own words, on one line, shortened, and never with the key in them. */
export const quote = (text: string, apiKey: string | undefined): string => {
  const line = redact(text, apiKey).replace(/\s+/g, " ").trim()
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS - 1)}…` : line
}

/** The SDK timeout for a request: its duration in whole ms, capped at what `setTimeout` can hold. */
export const timeoutMillis = (timeout: Duration.DurationInput): number => {
  const ms = Duration.toMillis(Duration.decode(timeout))
  return Number.isFinite(ms) ? Math.min(Math.max(1, Math.ceil(ms)), 2_147_483_647) : 2_147_483_647
}

/** What an HTTP error answer said, whichever SDK read it. */
export interface ErrorAnswer {
  readonly provider: Provider
  readonly status: number
  readonly headers: HeaderSource | undefined
  readonly requestId: string | null | undefined
  /** OpenAI's `error.type` and `error.code`, Anthropic's `error.type`. */
  readonly errorTypes: ReadonlyArray<string | null | undefined>
  readonly providerMessage: string | null | undefined
  readonly apiKey: string | undefined
}

const codeOf = (answer: ErrorAnswer): ProviderErrorCode => {
  const { errorTypes, headers, status } = answer
  if (status === 529 || errorTypes.includes("overloaded_error")) return "overloaded"
  if (status === 429) {
    if (errorTypes.includes("insufficient_quota")) return "auth"
    return headers?.get("x-should-retry") === "false" ? "bad_request" : "rate_limited"
  }
  if (status === 401 || status === 402 || status === 403) return "auth"
  if (status === 404) return "not_found"
  if (status === 408) return "timeout"
  if (status === 409 || status >= 500) return "server_error"
  return "bad_request"
}

const SUMMARY: Record<ProviderErrorCode, string> = {
  rate_limited: "rate limit reached",
  overloaded: "overloaded",
  server_error: "server error",
  timeout: "request timed out",
  connection: "connection failed",
  bad_request: "request rejected",
  auth: "API key rejected or not allowed",
  not_found: "not found",
  content_filtered: "content filtered",
  malformed_response: "unreadable response",
  missing_api_key: "no API key"
}

/** A `ProviderError` for an HTTP error answer, with its request id and whatever its headers said. */
export const fromErrorAnswer = (answer: ErrorAnswer): ProviderError => {
  const code = codeOf(answer)
  const type = answer.errorTypes.find((t): t is string => typeof t === "string" && t !== "")
  // Auth failures quote no provider text: OpenAI's echoes a masked piece of the key.
  const detail =
    code === "auth" || !answer.providerMessage ? "" : `: ${quote(answer.providerMessage, answer.apiKey)}`
  const kind = type === undefined ? "" : `, ${quote(type, answer.apiKey)}`
  return new ProviderError({
    code,
    message: `${providerName(answer.provider)}: ${SUMMARY[code]} (HTTP ${answer.status}${kind})${detail}`,
    status: answer.status,
    requestId: answer.requestId ?? undefined,
    rateLimit: answer.headers === undefined ? undefined : parseRateLimitHeaders(answer.headers)
  })
}

export const timedOut = (provider: Provider, timeout: Duration.DurationInput): ProviderError =>
  new ProviderError({
    code: "timeout",
    message: `${providerName(provider)}: no answer within ${Duration.format(Duration.decode(timeout))}`
  })

const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "ConnectionClosed",
  "ConnectionRefused",
  "FailedToOpenSocket"
])

const networkCode = (error: unknown): string | undefined => {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === "string" && CONNECTION_CODES.has(code)) return code
    cause = cause.cause
  }
  return undefined
}

/** A connection that failed or broke before a whole answer arrived. */
export const connectionFailed = (provider: Provider, error: unknown, apiKey: string | undefined) => {
  const code = networkCode(error)
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined
  const reason = code ?? (cause === undefined ? undefined : quote(cause, apiKey))
  return new ProviderError({
    code: "connection",
    message: `${providerName(provider)}: connection failed${reason === undefined || reason === "" ? "" : ` (${reason})`}`
  })
}

export interface AnswerMeta {
  readonly requestId: string | null | undefined
  readonly rateLimit: RateLimitInfo
}

/** A 200 answer we cannot use: not JSON, or missing what a completion needs. */
export const malformed = (provider: Provider, what: string, meta?: AnswerMeta): ProviderError =>
  new ProviderError({
    code: "malformed_response",
    message: `${providerName(provider)}: unreadable response (${what})`,
    status: 200,
    requestId: meta?.requestId ?? undefined,
    rateLimit: meta?.rateLimit
  })

/**
 * Anything the SDK threw that is not an HTTP answer: a body that is not JSON (`SyntaxError`), a socket that broke
 * while the body was read, or a failure we do not know (unreadable, so not worth a retry).
 */
export const unexpected = (provider: Provider, error: unknown, apiKey: string | undefined): ProviderError => {
  if (networkCode(error) !== undefined) return connectionFailed(provider, error, apiKey)
  if (error instanceof SyntaxError) return malformed(provider, "the body is not valid JSON")
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  return malformed(provider, quote(text, apiKey))
}

export const missingKey = (provider: "openai" | "anthropic", variable: string): ProviderError =>
  new ProviderError({
    code: "missing_api_key",
    message: `No ${provider} API key: save one in the settings or set ${variable}.`
  })
