import { Data, type Duration, type Effect, type Redacted } from "effect"
import type { ModelParams } from "../domain/ModelParams.ts"
import type { Provider } from "../domain/Model.ts"

/** One chat completion to make: the rendered prompt and the model settings that apply. */
export interface CompletionRequest {
  readonly provider: Provider
  readonly model: string
  readonly baseUrl: string | null
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly system: string
  readonly user: string
  readonly params: ModelParams
  /** Which attempt of the cell this is, from 1 (the mock varies its failures by it). */
  readonly attempt?: number | undefined
  /** Per-attempt timeout; the engine aborts the call (fiber interruption) past it. */
  readonly timeout: Duration.DurationInput
}

export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/**
 * What the provider said about its limits on this response (`x-ratelimit-*`, `anthropic-ratelimit-*`),
 * normalised. Absent fields were not sent.
 */
export interface RateLimitInfo {
  readonly requestsLimit?: number
  readonly requestsRemaining?: number
  /** Milliseconds until the request budget is full again. */
  readonly requestsResetMs?: number
  readonly tokensLimit?: number
  readonly tokensRemaining?: number
  readonly tokensResetMs?: number
  /** From `retry-after-ms` or `retry-after` (seconds or HTTP date). */
  readonly retryAfterMs?: number
}

export interface Completion {
  readonly text: string
  readonly usage: Usage
  readonly finishReason: string | null
  readonly requestId: string | null
  readonly rateLimit: RateLimitInfo
  readonly latencyMs: number
}

export type ProviderErrorCode =
  | "rate_limited"
  | "overloaded"
  | "server_error"
  | "timeout"
  | "connection"
  | "bad_request"
  | "auth"
  | "not_found"
  | "content_filtered"
  | "malformed_response"
  | "missing_api_key"

/** Which failures are worth another attempt (the rest fail the cell at once). */
export const RETRYABLE: ReadonlySet<ProviderErrorCode> = new Set([
  "rate_limited",
  "overloaded",
  "server_error",
  "timeout",
  "connection"
])

/** A typed provider failure: a stable code, a readable message (never a key), and what the provider told us. */
export class ProviderError extends Data.TaggedError("ProviderError")<{
  readonly code: ProviderErrorCode
  readonly message: string
  readonly status?: number | undefined
  readonly requestId?: string | undefined
  readonly rateLimit?: RateLimitInfo | undefined
}> {
  get retryable(): boolean {
    return RETRYABLE.has(this.code)
  }
}

/** An adapter makes one attempt; pacing, retries and timeouts belong to the engine. */
export interface ProviderAdapter {
  readonly complete: (request: CompletionRequest) => Effect.Effect<Completion, ProviderError>
}

/** Dollars for `usage` at prices per million tokens. Exact to 1e-10, as the column stores it. */
export const costOf = (usage: Usage, prices: { readonly input: number; readonly output: number }): number =>
  Math.round(((usage.inputTokens * prices.input + usage.outputTokens * prices.output) / 1_000_000) * 1e10) /
  1e10
