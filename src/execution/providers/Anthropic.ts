import Anthropic from "@anthropic-ai/sdk"
import type { MessageCreateParamsNonStreaming } from "@anthropic-ai/sdk/resources/messages"
import { Duration, Effect, Redacted, Schema } from "effect"
import type { CompletionRequest, ProviderAdapter } from "../Provider.ts"
import { ProviderError } from "../Provider.ts"
import {
  connectionFailed,
  fromErrorAnswer,
  malformed,
  missingKey,
  providerName,
  timedOut,
  timeoutMillis,
  unexpected
} from "./ProviderFailure.ts"
import { parseRateLimitHeaders } from "./RateLimitHeaders.ts"

/**
 * Anthropic Messages through the official SDK: one attempt (`maxRetries: 0`, the engine retries), the request's
 * timeout (given explicitly, which also keeps the SDK from refusing large `max_tokens` without streaming), and an
 * abort when the calling fiber is interrupted. The config's `baseUrl` goes to the SDK as is (without `/v1`).
 *
 * The system text goes in `system` when not empty; the user text is the one message. Parameters: `max_tokens`
 * (required by Anthropic: 1024 when the settings have none) and `stop` as `stop_sequences`. The rest are dropped:
 * the SDK speaks API version 2026-10-21, which answers 400 to temperature, top_p and top_k (even at their
 * defaults), and presence_penalty, frequency_penalty and seed have no Anthropic equivalent.
 *
 * The text is the concatenation of the text blocks. Input tokens are `input_tokens` plus the cache writes and
 * reads (all are input the model read); output tokens are `output_tokens`. `stop_reason: "refusal"` is
 * `content_filtered`.
 */

export const DEFAULT_MAX_TOKENS = 1024

const Tokens = Schema.NonNegativeInt

const Message = Schema.Struct({
  content: Schema.Array(Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })),
  stop_reason: Schema.optional(Schema.NullOr(Schema.String)),
  usage: Schema.Struct({
    input_tokens: Tokens,
    output_tokens: Tokens,
    cache_creation_input_tokens: Schema.optional(Schema.NullOr(Tokens)),
    cache_read_input_tokens: Schema.optional(Schema.NullOr(Tokens))
  })
})

const bodyOf = (request: CompletionRequest): MessageCreateParamsNonStreaming => {
  const p = request.params
  const body: MessageCreateParamsNonStreaming = {
    model: request.model,
    max_tokens: p.max_tokens ?? DEFAULT_MAX_TOKENS,
    messages: [{ role: "user", content: request.user }]
  }
  if (request.system !== "") body.system = request.system
  if (p.stop !== undefined) body.stop_sequences = [...p.stop]
  return body
}

const failureOf = (request: CompletionRequest, apiKey: string) => (error: unknown) => {
  if (error instanceof Anthropic.APIConnectionTimeoutError || error instanceof Anthropic.APIUserAbortError)
    return timedOut("anthropic", request.timeout)
  if (error instanceof Anthropic.APIConnectionError) return connectionFailed("anthropic", error, apiKey)
  if (error instanceof Anthropic.APIError && typeof error.status === "number")
    return fromErrorAnswer({
      provider: "anthropic",
      status: error.status,
      headers: error.headers,
      requestId: error.requestID,
      errorTypes: [error.type],
      providerMessage: error.apiMessage,
      apiKey
    })
  return unexpected("anthropic", error, apiKey)
}

export const anthropicAdapter: ProviderAdapter = {
  complete: Effect.fn("Anthropic.complete")(function* (request: CompletionRequest) {
    const apiKey = request.apiKey === undefined ? "" : Redacted.value(request.apiKey)
    if (apiKey === "") return yield* missingKey("anthropic", "ANTHROPIC_API_KEY")
    const client = new Anthropic({
      apiKey,
      maxRetries: 0,
      ...(request.baseUrl === null ? {} : { baseURL: request.baseUrl })
    })
    const [elapsed, { data, response, request_id }] = yield* Effect.tryPromise({
      try: (signal) =>
        client.messages
          .create(bodyOf(request), { signal, timeout: timeoutMillis(request.timeout) })
          .withResponse(),
      catch: failureOf(request, apiKey)
    }).pipe(Effect.timed)

    const meta = { requestId: request_id, rateLimit: parseRateLimitHeaders(response.headers) }
    const decoded = Schema.decodeUnknownEither(Message)(data)
    if (decoded._tag === "Left") return yield* malformed("anthropic", "no content or usage", meta)
    const message = decoded.right
    if (message.stop_reason === "refusal")
      return yield* new ProviderError({
        code: "content_filtered",
        message: `${providerName("anthropic")}: content filtered (the model refused)`,
        status: 200,
        requestId: request_id ?? undefined,
        rateLimit: meta.rateLimit
      })

    const { usage } = message
    return {
      text: message.content.map((block) => (block.type === "text" ? (block.text ?? "") : "")).join(""),
      usage: {
        inputTokens:
          usage.input_tokens +
          (usage.cache_creation_input_tokens ?? 0) +
          (usage.cache_read_input_tokens ?? 0),
        outputTokens: usage.output_tokens
      },
      finishReason: message.stop_reason ?? null,
      requestId: request_id ?? null,
      rateLimit: meta.rateLimit,
      latencyMs: Math.round(Duration.toMillis(elapsed))
    }
  })
}
