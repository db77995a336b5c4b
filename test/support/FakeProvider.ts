import { Effect } from "effect"

/**
 * A local fake of the OpenAI Chat Completions and Anthropic Messages APIs, close enough to the wire formats that
 * the real `openai` and `@anthropic-ai/sdk` clients work against it. It rate-limits with token buckets, injects
 * faults on demand and counts what it served, so engine tests and benchmarks can check retries and concurrency.
 */

export interface FakeProviderOptions {
  /** Request bucket: capacity = this, refilled continuously at this / 60 per second. Exceeding it → 429. */
  readonly requestsPerMinute?: number
  /** Token bucket charged input tokens + max_tokens on arrival, corrected to the actual usage on answer. */
  readonly tokensPerMinute?: number
  /** Added to every successful answer (the buckets are charged when the request arrives). */
  readonly latencyMs?: number
  /** Counts tokens in a text; default ceil(chars / 4). */
  readonly tokenizer?: (text: string) => number
}

export type FaultStatus = 400 | 401 | 403 | 404 | 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529

export type Fault =
  | {
      readonly kind: "status"
      readonly status: FaultStatus
      readonly retryAfterSeconds?: number
      readonly retryAfterMs?: number
      /** Overrides the error type in the body (OpenAI `error.type` and `error.code`, Anthropic `error.type`). */
      readonly errorType?: string
    }
  /** Never answer, until the client aborts or the server closes. */
  | { readonly kind: "hang" }
  /** 200 with a JSON content type and a truncated JSON body. */
  | { readonly kind: "malformed" }
  /** Close the connection before any byte of the response. */
  | { readonly kind: "reset" }
  /** OpenAI: finish_reason "content_filter", content null; Anthropic: stop_reason "refusal", no content. */
  | { readonly kind: "content_filter" }

export interface FakeProviderStats {
  /** Every HTTP request received. */
  requests: number
  /** Completions answered (200 with content), including those cut by max_tokens. */
  successes: number
  /** 429s, from the buckets or injected. */
  rateLimited: number
  /** Injected faults served. */
  faults: number
  /** Completions answered per `promptKey(model, conversation)`. */
  readonly byPrompt: Map<string, number>
  /** Responses sent per HTTP status (hangs and resets send none). */
  readonly byStatus: Map<number, number>
  inFlight: number
  maxInFlight: number
}

export interface FakeProviderLimits {
  readonly requestsPerMinute?: number
  readonly tokensPerMinute?: number
}

export interface FakeProvider {
  /** `http://127.0.0.1:PORT`. OpenAI SDK: baseURL `${url}/v1`; Anthropic SDK: baseURL `url`. */
  readonly url: string
  /** Live counters (reset in place by `reset`). */
  readonly stats: FakeProviderStats
  /** The next `times` completion requests (after auth and body checks) get `fault`. */
  readonly failNext: (fault: Fault, times?: number) => void
  /** The next `times` completion requests whose rendered prompt matches get `fault`. */
  readonly failWhen: (match: (prompt: string, model: string) => boolean, fault: Fault, times?: number) => void
  /** New limits; the buckets start full at the new capacity. */
  readonly setLimits: (limits: FakeProviderLimits) => void
  readonly setLatency: (ms: number) => void
  /** Zeroes the stats (but in-flight), drops queued faults and refills the buckets. */
  readonly reset: () => void
  /** Stops listening and cuts open connections (hanging requests included). */
  readonly close: () => Promise<void>
}

/** A conversation as both formats carry it; `system` is Anthropic's field or OpenAI's system messages. */
export interface Conversation {
  readonly system?: string
  readonly messages: ReadonlyArray<{ readonly role: string; readonly content: string }>
}

// Effectively unlimited, yet still reported in the rate-limit headers.
const DEFAULT_REQUESTS_PER_MINUTE = 1_000_000
const DEFAULT_TOKENS_PER_MINUTE = 1_000_000_000
const REPLY_PREVIEW_CHARS = 48

const defaultTokenizer = (text: string) => Math.ceil(text.length / 4)

/** The prompt text the fake hashes, matches `failWhen` against and counts: `role: content` lines, system first. */
export const renderPrompt = (conversation: Conversation): string =>
  [
    ...(conversation.system ? [`system: ${conversation.system}`] : []),
    ...conversation.messages.map((m) => `${m.role}: ${m.content}`)
  ].join("\n")

/** The key of `stats.byPrompt`. */
export const promptKey = (model: string, conversation: Conversation): string =>
  `${model}\n${renderPrompt(conversation)}`

// FNV-1a: a short, stable hash that tests can recompute through fakeReply.
const fnv1a = (text: string) => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, "0")
}

/** The full answer the fake gives to a conversation (before any max_tokens cut), identical on both APIs. */
export const fakeReply = (conversation: Conversation): string => {
  const lastUser = conversation.messages.findLast((m) => m.role === "user")?.content ?? ""
  return `echo:${fnv1a(renderPrompt(conversation))} ${lastUser.slice(0, REPLY_PREVIEW_CHARS)}`
}

/** Go-style duration as OpenAI's x-ratelimit-reset-* headers use it: "120ms", "1s", "8.64s", "6m0s". */
export const goDuration = (ms: number): string => {
  const whole = Math.ceil(ms)
  if (whole <= 0) return "0s"
  if (whole < 1000) return `${whole}ms`
  const hours = Math.floor(whole / 3_600_000)
  const minutes = Math.floor((whole % 3_600_000) / 60_000)
  const seconds = (whole % 60_000) / 1000
  return `${hours ? `${hours}h` : ""}${hours || minutes ? `${minutes}m` : ""}${seconds}s`
}

interface Bucket {
  readonly capacity: number
  readonly perMs: number
  level: number
  at: number
}

const makeBucket = (perMinute: number): Bucket => ({
  capacity: perMinute,
  perMs: perMinute / 60_000,
  level: perMinute,
  at: performance.now()
})

const refill = (bucket: Bucket, now: number) => {
  bucket.level = Math.min(bucket.capacity, bucket.level + (now - bucket.at) * bucket.perMs)
  bucket.at = now
}

// A hair of tolerance so that waiting exactly the advertised retry-after is always enough despite float error.
const waitMs = (bucket: Bucket, cost: number) =>
  bucket.level + 1e-6 >= cost ? 0 : Math.ceil((cost - bucket.level) / bucket.perMs)

const untilFullMs = (bucket: Bucket) => (bucket.capacity - bucket.level) / bucket.perMs

type Api = "openai" | "anthropic"

interface Completion {
  readonly model: string
  readonly conversation: Conversation
  readonly maxTokens: number | undefined
}

class BadRequest {
  constructor(readonly message: string) {}
}

type Json = Record<string, unknown>

const isRecord = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value)

// Both APIs accept a string or an array of content parts; only text parts matter here.
const textOf = (content: unknown): string => {
  if (typeof content === "string") return content
  if (content === null || content === undefined) return ""
  if (!Array.isArray(content)) throw new BadRequest("content must be a string or an array of content parts")
  return content
    .map((part) => (isRecord(part) && part.type === "text" && typeof part.text === "string" ? part.text : ""))
    .join("")
}

const parseCommon = (body: Json) => {
  if (typeof body.model !== "string" || body.model === "") throw new BadRequest("model: a string is required")
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw new BadRequest("messages: a non-empty array is required")
  if (body.stream === true) throw new BadRequest("stream: streaming is not supported by the fake provider")
  const messages = body.messages.map((m) => {
    if (!isRecord(m) || typeof m.role !== "string") throw new BadRequest("messages: each needs a role")
    return { role: m.role, content: textOf(m.content) }
  })
  return { model: body.model, messages }
}

const positiveInt = (value: unknown, name: string): number | undefined => {
  if (value === undefined || value === null) return undefined
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
    throw new BadRequest(`${name}: a positive integer is required`)
  return value
}

const parseOpenAI = (body: Json): Completion => {
  const { messages, model } = parseCommon(body)
  const system = messages
    .filter((m) => m.role === "system" || m.role === "developer")
    .map((m) => m.content)
    .join("\n")
  return {
    model,
    conversation: {
      ...(system ? { system } : {}),
      messages: messages.filter((m) => m.role !== "system" && m.role !== "developer")
    },
    maxTokens:
      positiveInt(body.max_completion_tokens, "max_completion_tokens") ??
      positiveInt(body.max_tokens, "max_tokens")
  }
}

const parseAnthropic = (body: Json): Completion => {
  const { messages, model } = parseCommon(body)
  const maxTokens = positiveInt(body.max_tokens, "max_tokens")
  if (maxTokens === undefined) throw new BadRequest("max_tokens: Field required")
  const system = textOf(body.system)
  return { model, conversation: { ...(system ? { system } : {}), messages }, maxTokens }
}

const openAIErrorType = (status: number): { type: string; code: string | null } => {
  switch (status) {
    case 401:
      return { type: "invalid_request_error", code: "invalid_api_key" }
    case 403:
      return { type: "invalid_request_error", code: "unsupported_country_region_territory" }
    case 404:
      return { type: "invalid_request_error", code: "model_not_found" }
    case 429:
      return { type: "requests", code: "rate_limit_exceeded" }
    default:
      return status >= 500
        ? { type: "server_error", code: null }
        : { type: "invalid_request_error", code: null }
  }
}

const anthropicErrorType = (status: number): string => {
  switch (status) {
    case 401:
      return "authentication_error"
    case 403:
      return "permission_error"
    case 404:
      return "not_found_error"
    case 408:
    case 504:
      return "timeout_error"
    case 409:
      return "conflict_error"
    case 429:
      return "rate_limit_error"
    case 529:
      return "overloaded_error"
    default:
      return status >= 500 ? "api_error" : "invalid_request_error"
  }
}

interface ErrorOverride {
  readonly type?: string | undefined
  readonly code?: string | undefined
}

const errorBody = (
  api: Api,
  status: number,
  message: string,
  requestId: string,
  override: ErrorOverride = {}
) => {
  if (api === "openai") {
    const known = openAIErrorType(status)
    return {
      error: { message, type: override.type ?? known.type, param: null, code: override.code ?? known.code }
    }
  }
  return {
    type: "error",
    error: { type: override.type ?? anthropicErrorType(status), message },
    request_id: requestId
  }
}

const randomId = () => crypto.randomUUID().replaceAll("-", "").slice(0, 24)

interface QueuedFault {
  readonly fault: Fault
  readonly match: ((prompt: string, model: string) => boolean) | undefined
  remaining: number
}

export const startFakeProvider = async (options: FakeProviderOptions = {}): Promise<FakeProvider> => {
  const tokenizer = options.tokenizer ?? defaultTokenizer
  let latencyMs = options.latencyMs ?? 0
  let limits: Required<FakeProviderLimits> = {
    requestsPerMinute: options.requestsPerMinute ?? DEFAULT_REQUESTS_PER_MINUTE,
    tokensPerMinute: options.tokensPerMinute ?? DEFAULT_TOKENS_PER_MINUTE
  }
  let requestBucket = makeBucket(limits.requestsPerMinute)
  let tokenBucket = makeBucket(limits.tokensPerMinute)
  const faults: Array<QueuedFault> = []
  const hanging = new Set<() => void>()
  const stats: FakeProviderStats = {
    requests: 0,
    successes: 0,
    rateLimited: 0,
    faults: 0,
    byPrompt: new Map(),
    byStatus: new Map(),
    inFlight: 0,
    maxInFlight: 0
  }

  const rateLimitHeaders = (api: Api, requestId: string): Record<string, string> => {
    const now = performance.now()
    refill(requestBucket, now)
    refill(tokenBucket, now)
    const remaining = (bucket: Bucket) => String(Math.max(0, Math.floor(bucket.level)))
    if (api === "openai")
      return {
        "x-request-id": requestId,
        "x-ratelimit-limit-requests": String(requestBucket.capacity),
        "x-ratelimit-remaining-requests": remaining(requestBucket),
        "x-ratelimit-reset-requests": goDuration(untilFullMs(requestBucket)),
        "x-ratelimit-limit-tokens": String(tokenBucket.capacity),
        "x-ratelimit-remaining-tokens": remaining(tokenBucket),
        "x-ratelimit-reset-tokens": goDuration(untilFullMs(tokenBucket))
      }
    const resetAt = (bucket: Bucket) => new Date(Date.now() + Math.ceil(untilFullMs(bucket))).toISOString()
    return {
      "request-id": requestId,
      "anthropic-ratelimit-requests-limit": String(requestBucket.capacity),
      "anthropic-ratelimit-requests-remaining": remaining(requestBucket),
      "anthropic-ratelimit-requests-reset": resetAt(requestBucket),
      "anthropic-ratelimit-tokens-limit": String(tokenBucket.capacity),
      "anthropic-ratelimit-tokens-remaining": remaining(tokenBucket),
      "anthropic-ratelimit-tokens-reset": resetAt(tokenBucket)
    }
  }

  const respond = (
    api: Api,
    requestId: string,
    status: number,
    body: unknown,
    extraHeaders: Record<string, string> = {}
  ) => {
    stats.byStatus.set(status, (stats.byStatus.get(status) ?? 0) + 1)
    if (status === 429) stats.rateLimited++
    return new Response(typeof body === "string" ? body : JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json", ...rateLimitHeaders(api, requestId), ...extraHeaders }
    })
  }

  const fail = (
    api: Api,
    requestId: string,
    status: number,
    message: string,
    extra?: Record<string, string>
  ) => respond(api, requestId, status, errorBody(api, status, message, requestId), extra)

  const takeFault = (prompt: string, model: string): Fault | undefined => {
    const index = faults.findIndex((f) => f.match === undefined || f.match(prompt, model))
    const queued = faults[index]
    if (!queued) return undefined
    if (--queued.remaining <= 0) faults.splice(index, 1)
    return queued.fault
  }

  const serveFault = (
    api: Api,
    requestId: string,
    fault: Fault,
    request: Request,
    completion: Completion
  ) => {
    stats.faults++
    switch (fault.kind) {
      case "status": {
        const retry: Record<string, string> = {}
        if (fault.retryAfterSeconds !== undefined) retry["retry-after"] = String(fault.retryAfterSeconds)
        if (fault.retryAfterMs !== undefined) retry["retry-after-ms"] = String(fault.retryAfterMs)
        const message = fault.status === 529 ? "Overloaded" : `Injected fault: HTTP ${fault.status}`
        return respond(
          api,
          requestId,
          fault.status,
          errorBody(api, fault.status, message, requestId, { type: fault.errorType, code: fault.errorType }),
          retry
        )
      }
      case "hang":
        return new Promise<Response>((resolve) => {
          const release = () => {
            hanging.delete(release)
            resolve(new Response(null, { status: 499 }))
          }
          hanging.add(release)
          request.signal.addEventListener("abort", release, { once: true })
        })
      case "malformed":
        return respond(api, requestId, 200, '{"id":"truncated","choices":[{"message":')
      case "reset":
        // An errored body stream makes Bun drop the connection before the status line goes out.
        return new Response(new ReadableStream({ start: (controller) => controller.error() }))
      case "content_filter":
        return respond(api, requestId, 200, answer(api, requestId, completion, "", 0, "filtered"))
    }
  }

  const answer = (
    api: Api,
    requestId: string,
    completion: Completion,
    text: string,
    outputTokens: number,
    finish: "stop" | "length" | "filtered"
  ) => {
    const inputTokens = tokenizer(renderPrompt(completion.conversation))
    if (api === "openai")
      return {
        id: `chatcmpl-${requestId}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: completion.model,
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: finish === "filtered" ? null : text,
              refusal: null,
              annotations: []
            },
            logprobs: null,
            finish_reason: finish === "filtered" ? "content_filter" : finish
          }
        ],
        usage: {
          prompt_tokens: inputTokens,
          completion_tokens: outputTokens,
          total_tokens: inputTokens + outputTokens,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 }
        },
        service_tier: "default",
        system_fingerprint: "fp_fake"
      }
    return {
      id: `msg_${requestId}`,
      type: "message",
      role: "assistant",
      model: completion.model,
      content: finish === "filtered" ? [] : [{ type: "text", text, citations: null }],
      stop_reason: finish === "filtered" ? "refusal" : finish === "length" ? "max_tokens" : "end_turn",
      stop_sequence: null,
      stop_details:
        finish === "filtered"
          ? { type: "refusal", category: null, explanation: "Refused by the fake provider's injected fault." }
          : null,
      container: null,
      diagnostics: null,
      usage: {
        input_tokens: inputTokens,
        output_tokens: outputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: null,
        inference_geo: null,
        output_tokens_details: null,
        server_tool_use: null,
        service_tier: "standard",
        speed: null
      }
    }
  }

  const authorized = (api: Api, request: Request) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "")
    return bearer !== null || (api === "anthropic" && Boolean(request.headers.get("x-api-key")))
  }

  const complete = async (api: Api, request: Request, requestId: string): Promise<Response> => {
    if (!authorized(api, request))
      return api === "openai"
        ? fail(
            api,
            requestId,
            401,
            "You didn't provide an API key. Provide it as an Authorization: Bearer header."
          )
        : fail(api, requestId, 401, "x-api-key header is required")
    if (api === "anthropic" && !request.headers.get("anthropic-version"))
      return fail(api, requestId, 400, "anthropic-version: header is required")

    let completion: Completion
    try {
      const body: unknown = await request.json().catch(() => {
        throw new BadRequest("The request body is not valid JSON.")
      })
      if (!isRecord(body)) throw new BadRequest("The request body must be a JSON object.")
      completion = api === "openai" ? parseOpenAI(body) : parseAnthropic(body)
    } catch (error) {
      if (error instanceof BadRequest) return fail(api, requestId, 400, error.message)
      throw error
    }

    const prompt = renderPrompt(completion.conversation)
    const fault = takeFault(prompt, completion.model)
    if (fault) return serveFault(api, requestId, fault, request, completion)

    const inputTokens = tokenizer(prompt)
    const estimate = inputTokens + (completion.maxTokens ?? 0)
    const buckets = { requests: requestBucket, tokens: tokenBucket }
    const now = performance.now()
    refill(buckets.requests, now)
    refill(buckets.tokens, now)
    if (estimate > buckets.tokens.capacity)
      return fail(
        api,
        requestId,
        429,
        `Request too large for ${completion.model}: Limit ${buckets.tokens.capacity} tokens per min, Requested ${estimate}.`,
        { "x-should-retry": "false" }
      )
    const waitRequests = waitMs(buckets.requests, 1)
    const waitTokens = waitMs(buckets.tokens, estimate)
    if (waitRequests > 0 || waitTokens > 0) {
      const wait = Math.max(waitRequests, waitTokens)
      const kind = waitRequests >= waitTokens ? "requests" : "tokens"
      const limit = kind === "requests" ? buckets.requests.capacity : buckets.tokens.capacity
      const message = `Rate limit reached for ${completion.model} on ${kind} per min: Limit ${limit}, Requested ${kind === "requests" ? 1 : estimate}. Please try again in ${goDuration(wait)}.`
      const retry: Record<string, string> = { "retry-after": String(Math.ceil(wait / 1000)) }
      if (api === "openai") retry["retry-after-ms"] = String(wait)
      return respond(
        api,
        requestId,
        429,
        errorBody(api, 429, message, requestId, api === "openai" ? { type: kind } : {}),
        retry
      )
    }
    buckets.requests.level -= 1
    buckets.tokens.level -= estimate

    if (latencyMs > 0) await Bun.sleep(latencyMs)

    const full = fakeReply(completion.conversation)
    let text = full
    const cap = completion.maxTokens ?? Number.POSITIVE_INFINITY
    while (text.length > 0 && tokenizer(text) > cap) text = text.slice(0, -1)
    const outputTokens = tokenizer(text)
    // Settle the estimate against the actual usage, on the buckets that charged it (setLimits may have replaced them).
    refill(buckets.tokens, performance.now())
    buckets.tokens.level = Math.min(
      buckets.tokens.capacity,
      buckets.tokens.level + estimate - inputTokens - outputTokens
    )

    stats.successes++
    const key = promptKey(completion.model, completion.conversation)
    stats.byPrompt.set(key, (stats.byPrompt.get(key) ?? 0) + 1)
    return respond(
      api,
      requestId,
      200,
      answer(api, requestId, completion, text, outputTokens, text === full ? "stop" : "length")
    )
  }

  const route = (request: Request): Promise<Response> | Response => {
    const { pathname } = new URL(request.url)
    const api: Api | undefined =
      pathname === "/v1/chat/completions" ? "openai" : pathname === "/v1/messages" ? "anthropic" : undefined
    const requestId = `req_${randomId()}`
    if (api === undefined)
      return respond(
        "openai",
        requestId,
        404,
        errorBody("openai", 404, `Unknown path ${pathname}`, requestId)
      )
    if (request.method !== "POST")
      return respond(
        api,
        requestId,
        405,
        errorBody(api, 405, `Method ${request.method} not allowed`, requestId)
      )
    return complete(api, request, requestId)
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // No idle cut: "hang" faults and long latencies must stay open until the client gives up.
    idleTimeout: 0,
    fetch: async (request) => {
      stats.requests++
      stats.inFlight++
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
      try {
        return await route(request)
      } finally {
        stats.inFlight--
      }
    }
  })

  return {
    url: `http://127.0.0.1:${server.port}`,
    stats,
    failNext: (fault, times = 1) => {
      faults.push({ fault, match: undefined, remaining: times })
    },
    failWhen: (match, fault, times = Number.POSITIVE_INFINITY) => {
      faults.push({ fault, match, remaining: times })
    },
    setLimits: (next) => {
      limits = { ...limits, ...next }
      requestBucket = makeBucket(limits.requestsPerMinute)
      tokenBucket = makeBucket(limits.tokensPerMinute)
    },
    setLatency: (ms) => {
      latencyMs = ms
    },
    reset: () => {
      // inFlight stays: requests still running will decrement it.
      Object.assign(stats, {
        requests: 0,
        successes: 0,
        rateLimited: 0,
        faults: 0,
        maxInFlight: stats.inFlight
      })
      stats.byPrompt.clear()
      stats.byStatus.clear()
      faults.length = 0
      requestBucket = makeBucket(limits.requestsPerMinute)
      tokenBucket = makeBucket(limits.tokensPerMinute)
    },
    close: async () => {
      for (const release of [...hanging]) release()
      await server.stop(true)
    }
  }
}

/** The fake as a scoped resource, for Effect tests: closed when the scope closes. */
export const scoped = (options?: FakeProviderOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startFakeProvider(options)),
    (provider) => Effect.promise(() => provider.close())
  )
