import { Duration, Effect, Redacted, Schema } from "effect"
import OpenAI from "openai"
import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions"
import type { CompletionRequest, ProviderAdapter, Usage } from "../Provider.ts"
import { ProviderError } from "../Provider.ts"
import {
  connectionFailed,
  fromErrorAnswer,
  malformed,
  missingKey,
  providerName,
  quote,
  timedOut,
  timeoutMillis,
  unexpected
} from "./ProviderFailure.ts"
import { parseRateLimitHeaders } from "./RateLimitHeaders.ts"

/**
 * OpenAI Chat Completions, for `openai` and for `openai-compatible` servers (vLLM, Ollama, LM Studio, OpenRouter...),
 * through the official SDK: one attempt (`maxRetries: 0`, the engine retries), the request's timeout, and an abort
 * when the calling fiber is interrupted. The config's `baseUrl` goes to the SDK as is (it includes `/v1`).
 *
 * Messages: a `system` message when the system text is not empty, then the `user` message.
 * Parameters: temperature, top_p, stop, presence_penalty, frequency_penalty and seed as they are. `max_tokens` is
 * sent as `max_completion_tokens` to OpenAI (its reasoning models reject `max_tokens`) and as `max_tokens` to
 * compatible servers (the field they all know). `top_k` is not an OpenAI parameter: dropped for OpenAI, sent as an
 * extra body field to compatible servers (vLLM, LM Studio and OpenRouter read it).
 *
 * Keys: `openai` needs one (`missing_api_key` otherwise); a compatible server may run without one, and then gets
 * the placeholder "not-needed" (the SDK insists on a key, and the environment's OPENAI_API_KEY must never travel
 * to a third-party server). Compatible servers are not sent OPENAI_ORG_ID / OPENAI_PROJECT_ID either.
 *
 * Usage: `prompt_tokens` / `completion_tokens`. A compatible server that reports no usage gets an estimate of
 * ceil(chars / 4) each way; OpenAI itself without usage is a `malformed_response`.
 * `finish_reason: "content_filter"`, or a refusal in place of content, is `content_filtered`.
 */

type Flavor = "openai" | "openai-compatible"

const NO_KEY_PLACEHOLDER = "not-needed"

const Tokens = Schema.NonNegativeInt

const ChatCompletion = Schema.Struct({
  choices: Schema.NonEmptyArray(
    Schema.Struct({
      message: Schema.Struct({
        content: Schema.optional(Schema.NullOr(Schema.String)),
        refusal: Schema.optional(Schema.NullOr(Schema.String))
      }),
      finish_reason: Schema.optional(Schema.NullOr(Schema.String))
    })
  ),
  usage: Schema.optional(Schema.NullOr(Schema.Struct({ prompt_tokens: Tokens, completion_tokens: Tokens })))
})

const estimateTokens = (text: string) => Math.ceil(text.length / 4)

const bodyOf = (flavor: Flavor, request: CompletionRequest): ChatCompletionCreateParamsNonStreaming => {
  const p = request.params
  const body: ChatCompletionCreateParamsNonStreaming = {
    model: request.model,
    messages: [
      ...(request.system === "" ? [] : [{ role: "system" as const, content: request.system }]),
      { role: "user", content: request.user }
    ]
  }
  if (p.temperature !== undefined) body.temperature = p.temperature
  if (p.top_p !== undefined) body.top_p = p.top_p
  if (p.stop !== undefined) body.stop = [...p.stop]
  if (p.presence_penalty !== undefined) body.presence_penalty = p.presence_penalty
  if (p.frequency_penalty !== undefined) body.frequency_penalty = p.frequency_penalty
  if (p.seed !== undefined) body.seed = p.seed
  if (p.max_tokens !== undefined) {
    if (flavor === "openai") body.max_completion_tokens = p.max_tokens
    else body.max_tokens = p.max_tokens
  }
  // The SDK sends the body object as it is, so an extra field reaches servers that understand it.
  if (flavor === "openai-compatible" && p.top_k !== undefined) Object.assign(body, { top_k: p.top_k })
  return body
}

const failureOf =
  (flavor: Flavor, request: CompletionRequest, apiKey: string | undefined) => (error: unknown) => {
    if (error instanceof OpenAI.APIConnectionTimeoutError || error instanceof OpenAI.APIUserAbortError)
      return timedOut(flavor, request.timeout)
    if (error instanceof OpenAI.APIConnectionError) return connectionFailed(flavor, error, apiKey)
    if (error instanceof OpenAI.APIError && typeof error.status === "number") {
      const body = error.error as { readonly message?: unknown } | undefined
      return fromErrorAnswer({
        provider: flavor,
        status: error.status,
        headers: error.headers,
        requestId: error.requestID,
        errorTypes: [error.type, error.code],
        providerMessage: typeof body?.message === "string" ? body.message : undefined,
        apiKey
      })
    }
    return unexpected(flavor, error, apiKey)
  }

const make = (flavor: Flavor): ProviderAdapter => ({
  complete: Effect.fn("OpenAi.complete")(function* (request: CompletionRequest) {
    const given = request.apiKey === undefined ? "" : Redacted.value(request.apiKey)
    if (given === "" && flavor === "openai") return yield* missingKey("openai", "OPENAI_API_KEY")
    const apiKey = given === "" ? NO_KEY_PLACEHOLDER : given
    const client = new OpenAI({
      apiKey,
      maxRetries: 0,
      ...(request.baseUrl === null ? {} : { baseURL: request.baseUrl }),
      ...(flavor === "openai-compatible" ? { organization: null, project: null } : {})
    })
    const secret = given === "" ? undefined : given
    const [elapsed, { data, response, request_id }] = yield* Effect.tryPromise({
      try: (signal) =>
        client.chat.completions
          .create(bodyOf(flavor, request), { signal, timeout: timeoutMillis(request.timeout) })
          .withResponse(),
      catch: failureOf(flavor, request, secret)
    }).pipe(Effect.timed)

    const meta = { requestId: request_id, rateLimit: parseRateLimitHeaders(response.headers) }
    const decoded = Schema.decodeUnknownEither(ChatCompletion)(data)
    if (decoded._tag === "Left") return yield* malformed(flavor, "no choices[0].message or bad usage", meta)
    const choice = decoded.right.choices[0]
    const content = choice.message.content ?? ""
    const refusal = choice.message.refusal
    if (choice.finish_reason === "content_filter" || (content === "" && refusal))
      return yield* new ProviderError({
        code: "content_filtered",
        message: `${providerName(flavor)}: content filtered${refusal ? `: ${quote(refusal, secret)}` : ""}`,
        status: 200,
        requestId: request_id ?? undefined,
        rateLimit: meta.rateLimit
      })

    const reported = decoded.right.usage
    if (reported == null && flavor === "openai") return yield* malformed(flavor, "no usage", meta)
    const usage: Usage =
      reported == null
        ? {
            inputTokens: estimateTokens(request.system) + estimateTokens(request.user),
            outputTokens: estimateTokens(content)
          }
        : { inputTokens: reported.prompt_tokens, outputTokens: reported.completion_tokens }

    return {
      text: content,
      usage,
      finishReason: choice.finish_reason ?? null,
      requestId: request_id ?? null,
      rateLimit: meta.rateLimit,
      latencyMs: Math.round(Duration.toMillis(elapsed))
    }
  })
})

export const openAiAdapter: ProviderAdapter = make("openai")

export const openAiCompatibleAdapter: ProviderAdapter = make("openai-compatible")
