import Anthropic from "@anthropic-ai/sdk"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import { onTestFinished } from "vitest"
import * as FakeProvider from "./support/FakeProvider.ts"
import { fakeReply, goDuration, promptKey, renderPrompt, startFakeProvider } from "./support/FakeProvider.ts"

const start = async (options?: FakeProvider.FakeProviderOptions) => {
  const provider = await startFakeProvider(options)
  onTestFinished(() => provider.close())
  return provider
}

const openai = (
  provider: FakeProvider.FakeProvider,
  options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}
) => new OpenAI({ apiKey: "sk-test", baseURL: `${provider.url}/v1`, maxRetries: 0, ...options })

const anthropic = (
  provider: FakeProvider.FakeProvider,
  options: Partial<ConstructorParameters<typeof Anthropic>[0]> = {}
) => new Anthropic({ apiKey: "sk-ant-test", baseURL: provider.url, maxRetries: 0, ...options })

const ask = (client: OpenAI, content: string, maxTokens?: number, timeout?: number) =>
  client.chat.completions.create(
    {
      model: "gpt-test",
      messages: [{ role: "user", content }],
      ...(maxTokens === undefined ? {} : { max_completion_tokens: maxTokens })
    },
    timeout === undefined ? {} : { timeout }
  )

const askClaude = (client: Anthropic, content: string, maxTokens = 256, timeout?: number) =>
  client.messages.create(
    { model: "claude-test", max_tokens: maxTokens, messages: [{ role: "user", content }] },
    timeout === undefined ? {} : { timeout }
  )

/** The rejection of a promise that must reject. */
const failure = (promise: PromiseLike<unknown>): Promise<unknown> =>
  Promise.resolve(promise).then(
    () => {
      throw new Error("expected the call to fail")
    },
    (error: unknown) => error
  )

const tokens = (text: string) => Math.ceil(text.length / 4)

const eventually = async (check: () => boolean, withinMs = 2000) => {
  const deadline = Date.now() + withinMs
  while (!check() && Date.now() < deadline) await Bun.sleep(10)
  return check()
}

describe("goDuration", () => {
  it("formats like OpenAI's reset headers", () => {
    expect(goDuration(0)).toBe("0s")
    expect(goDuration(119.2)).toBe("120ms")
    expect(goDuration(1000)).toBe("1s")
    expect(goDuration(8640)).toBe("8.64s")
    expect(goDuration(360_000)).toBe("6m0s")
    expect(goDuration(3_723_500)).toBe("1h2m3.5s")
  })
})

describe("OpenAI chat completions", () => {
  it("answers deterministically with usage, request id and rate-limit headers", async () => {
    const provider = await start({ requestsPerMinute: 60, tokensPerMinute: 6000 })
    const client = openai(provider)
    const conversation = {
      system: "Be brief.",
      messages: [{ role: "user", content: "Summarise: the cat sat" }]
    }
    const { data, response, request_id } = await client.chat.completions
      .create({
        model: "gpt-test",
        max_completion_tokens: 1000,
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Summarise: the cat sat" }
        ]
      })
      .withResponse()

    const reply = fakeReply(conversation)
    expect(reply).toMatch(/^echo:[0-9a-f]{8} Summarise: the cat sat$/)
    expect(data.object).toBe("chat.completion")
    expect(data.model).toBe("gpt-test")
    expect(data.choices[0]!.message.content).toBe(reply)
    expect(data.choices[0]!.finish_reason).toBe("stop")
    const input = tokens(renderPrompt(conversation))
    expect(data.usage).toMatchObject({
      prompt_tokens: input,
      completion_tokens: tokens(reply),
      total_tokens: input + tokens(reply)
    })

    expect(request_id).toMatch(/^req_[0-9a-f]{24}$/)
    expect(response.headers.get("x-request-id")).toBe(request_id)
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("60")
    expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("59")
    expect(response.headers.get("x-ratelimit-reset-requests")).toMatch(/^(\d{3}ms|1s)$/)
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("6000")
    // charged input + 1000 on arrival, then settled to the actual usage
    const remainingTokens = Number(response.headers.get("x-ratelimit-remaining-tokens"))
    expect(remainingTokens).toBeGreaterThanOrEqual(6000 - input - tokens(reply))
    expect(remainingTokens).toBeLessThan(6000 - input - tokens(reply) + 3)
    expect(response.headers.get("x-ratelimit-reset-tokens")).toMatch(/^\d+ms$/)

    const again = await ask(client, "Summarise: the cat sat")
    const other = await ask(client, "Summarise: the dog ran")
    expect(again.choices[0]!.message.content).toBe(fakeReply({ messages: conversation.messages }))
    expect(again.choices[0]!.message.content).not.toBe(reply)
    expect(other.choices[0]!.message.content).toMatch(/^echo:[0-9a-f]{8} Summarise: the dog ran$/)
    expect(other.choices[0]!.message.content!.slice(5, 13)).not.toBe(
      again.choices[0]!.message.content!.slice(5, 13)
    )
  })

  it("cuts the answer at max_completion_tokens with finish_reason length", async () => {
    const provider = await start()
    const completion = await ask(openai(provider), "a long enough question", 2)
    expect(completion.choices[0]!.finish_reason).toBe("length")
    expect(completion.choices[0]!.message.content).toBe(
      fakeReply({ messages: [{ role: "user", content: "a long enough question" }] }).slice(0, 8)
    )
    expect(completion.usage!.completion_tokens).toBe(2)
  })
})

describe("Anthropic messages", () => {
  it("answers with the same text as OpenAI, usage, request id and rate-limit headers", async () => {
    const provider = await start({ requestsPerMinute: 60, tokensPerMinute: 6000 })
    const before = Date.now()
    const { data, response, request_id } = await anthropic(provider)
      .messages.create({
        model: "claude-test",
        max_tokens: 256,
        system: "Be brief.",
        messages: [{ role: "user", content: [{ type: "text", text: "Summarise: the cat sat" }] }]
      })
      .withResponse()

    const conversation = {
      system: "Be brief.",
      messages: [{ role: "user", content: "Summarise: the cat sat" }]
    }
    const reply = fakeReply(conversation)
    expect(data.type).toBe("message")
    expect(data.role).toBe("assistant")
    expect(data.model).toBe("claude-test")
    expect(data.id).toMatch(/^msg_/)
    expect(data.content).toEqual([{ type: "text", text: reply, citations: null }])
    expect(data.stop_reason).toBe("end_turn")
    expect(data.usage.input_tokens).toBe(tokens(renderPrompt(conversation)))
    expect(data.usage.output_tokens).toBe(tokens(reply))

    expect(request_id).toMatch(/^req_/)
    expect(response.headers.get("request-id")).toBe(request_id)
    expect(response.headers.get("anthropic-ratelimit-requests-limit")).toBe("60")
    expect(response.headers.get("anthropic-ratelimit-requests-remaining")).toBe("59")
    const reset = Date.parse(response.headers.get("anthropic-ratelimit-requests-reset")!)
    expect(response.headers.get("anthropic-ratelimit-requests-reset")).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/
    )
    expect(reset).toBeGreaterThan(before)
    expect(reset).toBeLessThanOrEqual(Date.now() + 1000)
    expect(response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("6000")
    expect(Number(response.headers.get("anthropic-ratelimit-tokens-remaining"))).toBeLessThan(6000)
    expect(Date.parse(response.headers.get("anthropic-ratelimit-tokens-reset")!)).toBeGreaterThan(before)
  })

  it("stops at max_tokens with stop_reason max_tokens", async () => {
    const provider = await start()
    const message = await askClaude(anthropic(provider), "a long enough question", 3)
    expect(message.stop_reason).toBe("max_tokens")
    expect(message.usage.output_tokens).toBe(3)
  })

  it("accepts x-api-key and requires anthropic-version", async () => {
    const provider = await start()
    const body = JSON.stringify({
      model: "claude-test",
      max_tokens: 16,
      messages: [{ role: "user", content: "hi" }]
    })
    const headers = { "content-type": "application/json", "x-api-key": "sk-ant-test" }
    const withKey = await fetch(`${provider.url}/v1/messages`, {
      method: "POST",
      body,
      headers: { ...headers, "anthropic-version": "2023-06-01" }
    })
    expect(withKey.status).toBe(200)
    expect(((await withKey.json()) as { content: Array<{ text: string }> }).content[0]!.text).toBe(
      fakeReply({ messages: [{ role: "user", content: "hi" }] })
    )

    const noVersion = await failure(
      askClaude(anthropic(provider, { defaultHeaders: { "anthropic-version": null } }), "hi")
    )
    expect(noVersion).toBeInstanceOf(Anthropic.BadRequestError)
    expect((noVersion as InstanceType<typeof Anthropic.BadRequestError>).type).toBe("invalid_request_error")
  })
})

describe("authentication", () => {
  it("answers 401 in each API's error shape when the key is missing", async () => {
    const provider = await start()
    const openaiError = await failure(
      ask(openai(provider, { defaultHeaders: { Authorization: null } }), "hi")
    )
    expect(openaiError).toBeInstanceOf(OpenAI.AuthenticationError)
    expect((openaiError as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("invalid_api_key")

    const anthropicError = await failure(
      askClaude(anthropic(provider, { defaultHeaders: { Authorization: null } }), "hi")
    )
    expect(anthropicError).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((anthropicError as InstanceType<typeof Anthropic.AuthenticationError>).type).toBe(
      "authentication_error"
    )
    expect(provider.stats.requests).toBe(2)
    expect(provider.stats.successes).toBe(0)
    expect(provider.stats.byStatus.get(401)).toBe(2)
  })
})

describe("rate limits", () => {
  it("answers 429 with an honest retry-after once the request bucket is empty (OpenAI)", async () => {
    const provider = await start({ requestsPerMinute: 2 })
    const client = openai(provider)
    await ask(client, "one")
    await ask(client, "two")
    const error = await failure(ask(client, "three"))
    expect(error).toBeInstanceOf(OpenAI.RateLimitError)
    const limited = error as InstanceType<typeof OpenAI.RateLimitError>
    expect(limited.code).toBe("rate_limit_exceeded")
    expect(limited.type).toBe("requests")
    expect(limited.headers.get("retry-after")).toBe("30")
    const retryAfterMs = Number(limited.headers.get("retry-after-ms"))
    expect(retryAfterMs).toBeGreaterThan(29_000)
    expect(retryAfterMs).toBeLessThanOrEqual(30_000)
    expect(limited.headers.get("x-ratelimit-remaining-requests")).toBe("0")
    expect(provider.stats).toMatchObject({ requests: 3, successes: 2, rateLimited: 1 })
  })

  it("answers 429 rate_limit_error with retry-after in seconds (Anthropic)", async () => {
    const provider = await start({ requestsPerMinute: 1 })
    const client = anthropic(provider)
    await askClaude(client, "one")
    const error = await failure(askClaude(client, "two"))
    expect(error).toBeInstanceOf(Anthropic.RateLimitError)
    const limited = error as InstanceType<typeof Anthropic.RateLimitError>
    expect(limited.type).toBe("rate_limit_error")
    expect(limited.headers.get("retry-after")).toBe("60")
    expect(limited.headers.get("anthropic-ratelimit-requests-remaining")).toBe("0")
  })

  it("refills continuously: waiting the advertised retry-after-ms is enough", async () => {
    const provider = await start({ requestsPerMinute: 120 })
    const client = openai(provider)
    const burst = await Promise.allSettled(Array.from({ length: 121 }, (_, i) => ask(client, `burst ${i}`)))
    expect(burst.filter((r) => r.status === "fulfilled")).toHaveLength(120)
    const rejected = burst.find((r) => r.status === "rejected")
    expect(rejected?.reason).toBeInstanceOf(OpenAI.RateLimitError)
    const retryAfterMs = Number(
      (rejected!.reason as InstanceType<typeof OpenAI.RateLimitError>).headers.get("retry-after-ms")
    )
    expect(retryAfterMs).toBeGreaterThan(0)
    expect(retryAfterMs).toBeLessThanOrEqual(500)
    await Bun.sleep(retryAfterMs)
    const after = await ask(client, "after the refill")
    expect(after.choices[0]!.finish_reason).toBe("stop")
    expect(provider.stats).toMatchObject({ successes: 121, rateLimited: 1 })
  })

  it("charges input + max tokens on arrival, settles to the usage, and refuses what can never fit", async () => {
    const provider = await start({ tokensPerMinute: 600 })
    const client = openai(provider)
    const first = await client.chat.completions
      .create({ model: "gpt-test", max_completion_tokens: 500, messages: [{ role: "user", content: "hi" }] })
      .withResponse()
    const used = first.data.usage!.total_tokens
    expect(Number(first.response.headers.get("x-ratelimit-remaining-tokens"))).toBeGreaterThanOrEqual(
      600 - used
    )

    // about 600 - used tokens are left; asking for 595 more does not fit yet
    const error = await failure(ask(client, "hi", 595))
    expect(error).toBeInstanceOf(OpenAI.RateLimitError)
    const limited = error as InstanceType<typeof OpenAI.RateLimitError>
    expect(limited.type).toBe("tokens")
    const retryAfterMs = Number(limited.headers.get("retry-after-ms"))
    expect(retryAfterMs).toBeGreaterThan(0)
    expect(retryAfterMs).toBeLessThanOrEqual(((2 + 595 - (600 - used)) / 600) * 60_000 + 1)

    const tooLarge = await failure(ask(client, "hi", 700))
    expect(tooLarge).toBeInstanceOf(OpenAI.RateLimitError)
    const refused = tooLarge as InstanceType<typeof OpenAI.RateLimitError>
    expect(refused.headers.get("x-should-retry")).toBe("false")
    expect(refused.headers.get("retry-after")).toBeNull()
  })
})

const openaiStatuses = [
  [400, OpenAI.BadRequestError],
  [401, OpenAI.AuthenticationError],
  [403, OpenAI.PermissionDeniedError],
  [404, OpenAI.NotFoundError],
  [408, OpenAI.APIError],
  [409, OpenAI.ConflictError],
  [429, OpenAI.RateLimitError],
  [500, OpenAI.InternalServerError],
  [502, OpenAI.InternalServerError],
  [503, OpenAI.InternalServerError]
] as const

const anthropicStatuses = [
  [400, Anthropic.BadRequestError, "invalid_request_error"],
  [401, Anthropic.AuthenticationError, "authentication_error"],
  [403, Anthropic.PermissionDeniedError, "permission_error"],
  [404, Anthropic.NotFoundError, "not_found_error"],
  [408, Anthropic.RequestTimeoutError, "timeout_error"],
  [409, Anthropic.ConflictError, "conflict_error"],
  [429, Anthropic.RateLimitError, "rate_limit_error"],
  [500, Anthropic.InternalServerError, "api_error"],
  [503, Anthropic.ServiceUnavailableError, "api_error"],
  [529, Anthropic.OverloadedError, "overloaded_error"]
] as const

describe("faults", () => {
  it.each(openaiStatuses)(
    "OpenAI: an injected %i surfaces as the SDK's error class",
    async (status, errorClass) => {
      const provider = await start()
      provider.failNext({ kind: "status", status })
      const error = await failure(ask(openai(provider), "hi"))
      expect(error).toBeInstanceOf(errorClass)
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(status)
    }
  )

  it.each(anthropicStatuses)(
    "Anthropic: an injected %i surfaces as the SDK's error class",
    async (status, errorClass, type) => {
      const provider = await start()
      provider.failNext({ kind: "status", status })
      const error = await failure(askClaude(anthropic(provider), "hi"))
      expect(error).toBeInstanceOf(errorClass)
      const apiError = error as InstanceType<typeof Anthropic.APIError>
      expect(apiError.status).toBe(status)
      expect(apiError.type).toBe(type)
      expect(apiError.requestID).toMatch(/^req_/)
    }
  )

  it("an injected 429 carries the given retry-after, retry-after-ms and error type", async () => {
    const provider = await start()
    provider.failNext({ kind: "status", status: 429, retryAfterSeconds: 2, retryAfterMs: 1500 })
    const error = (await failure(ask(openai(provider), "hi"))) as InstanceType<typeof OpenAI.RateLimitError>
    expect(error.headers.get("retry-after")).toBe("2")
    expect(error.headers.get("retry-after-ms")).toBe("1500")
    expect(error.code).toBe("rate_limit_exceeded")

    provider.failNext({ kind: "status", status: 429, errorType: "insufficient_quota" })
    const quota = (await failure(ask(openai(provider), "hi"))) as InstanceType<typeof OpenAI.RateLimitError>
    expect(quota.code).toBe("insufficient_quota")
    expect(quota.type).toBe("insufficient_quota")
    expect(quota.headers.get("retry-after")).toBeNull()
    expect(provider.stats).toMatchObject({ rateLimited: 2, faults: 2 })
  })

  it("a fault hits the next N requests, then answers resume", async () => {
    const provider = await start()
    const client = openai(provider)
    provider.failNext({ kind: "status", status: 500 }, 2)
    expect(await failure(ask(client, "a"))).toBeInstanceOf(OpenAI.InternalServerError)
    expect(await failure(ask(client, "b"))).toBeInstanceOf(OpenAI.InternalServerError)
    expect((await ask(client, "c")).choices[0]!.message.content).toBe(
      fakeReply({ messages: [{ role: "user", content: "c" }] })
    )
    expect(provider.stats).toMatchObject({ requests: 3, successes: 1, faults: 2 })
  })

  it("failWhen only hits matching prompts", async () => {
    const provider = await start()
    const client = anthropic(provider)
    provider.failWhen((prompt) => prompt.includes("poison"), { kind: "status", status: 503 })
    expect(await failure(askClaude(client, "poison pill"))).toBeInstanceOf(Anthropic.ServiceUnavailableError)
    expect((await askClaude(client, "wholesome")).stop_reason).toBe("end_turn")
    expect(await failure(askClaude(client, "more poison"))).toBeInstanceOf(Anthropic.ServiceUnavailableError)
  })

  it("hang never answers: the client times out and the request leaves the in-flight count", async () => {
    const provider = await start()
    provider.failNext({ kind: "hang" }, 2)
    const started = Date.now()
    expect(await failure(ask(openai(provider), "hi", undefined, 200))).toBeInstanceOf(
      OpenAI.APIConnectionTimeoutError
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    expect(await failure(askClaude(anthropic(provider), "hi", 16, 200))).toBeInstanceOf(
      Anthropic.APIConnectionTimeoutError
    )
    expect(await eventually(() => provider.stats.inFlight === 0)).toBe(true)
    expect(provider.stats.maxInFlight).toBe(1)
    expect(provider.stats.byStatus.size).toBe(0)
  })

  it("malformed answers 200 with a body the SDKs cannot parse", async () => {
    const provider = await start()
    provider.failNext({ kind: "malformed" }, 2)
    expect(await failure(ask(openai(provider), "hi"))).toBeInstanceOf(SyntaxError)
    expect(await failure(askClaude(anthropic(provider), "hi"))).toBeInstanceOf(SyntaxError)
  })

  it("reset drops the connection: a connection error, not a timeout", async () => {
    const provider = await start()
    provider.failNext({ kind: "reset" }, 2)
    const openaiError = await failure(ask(openai(provider), "hi"))
    expect(openaiError).toBeInstanceOf(OpenAI.APIConnectionError)
    expect(openaiError).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError)
    const anthropicError = await failure(askClaude(anthropic(provider), "hi"))
    expect(anthropicError).toBeInstanceOf(Anthropic.APIConnectionError)
    expect(anthropicError).not.toBeInstanceOf(Anthropic.APIConnectionTimeoutError)
  })

  it("content_filter answers finish_reason content_filter (OpenAI) and stop_reason refusal (Anthropic)", async () => {
    const provider = await start()
    provider.failNext({ kind: "content_filter" }, 2)
    const completion = await ask(openai(provider), "hi")
    expect(completion.choices[0]!.finish_reason).toBe("content_filter")
    expect(completion.choices[0]!.message.content).toBeNull()
    const message = await askClaude(anthropic(provider), "hi")
    expect(message.stop_reason).toBe("refusal")
    expect(message.content).toEqual([])
    expect(provider.stats).toMatchObject({ successes: 0, faults: 2 })
  })
})

describe("latency, concurrency and stats", () => {
  it("serves hundreds of concurrent requests, each after the latency, and counts them per prompt", async () => {
    const provider = await start({ latencyMs: 500 })
    const client = openai(provider)
    const started = Date.now()
    const answers = await Promise.all(Array.from({ length: 250 }, (_, i) => ask(client, `prompt ${i}`)))
    expect(Date.now() - started).toBeGreaterThanOrEqual(500)
    expect(answers[17]!.choices[0]!.message.content).toBe(
      fakeReply({ messages: [{ role: "user", content: "prompt 17" }] })
    )
    expect(provider.stats).toMatchObject({ requests: 250, successes: 250, inFlight: 0, maxInFlight: 250 })
    expect(provider.stats.byPrompt.size).toBe(250)
    expect([...provider.stats.byPrompt.values()].every((n) => n === 1)).toBe(true)

    await ask(client, "prompt 17")
    expect(
      provider.stats.byPrompt.get(
        promptKey("gpt-test", { messages: [{ role: "user", content: "prompt 17" }] })
      )
    ).toBe(2)
  })

  it("faults answer without the latency", async () => {
    const provider = await start({ latencyMs: 400 })
    provider.failNext({ kind: "status", status: 500 })
    const started = Date.now()
    await failure(ask(openai(provider), "hi"))
    expect(Date.now() - started).toBeLessThan(300)
  })

  it("reset zeroes the stats, drops queued faults and refills the buckets; setLimits changes the limits", async () => {
    const provider = await start({ requestsPerMinute: 1 })
    const client = openai(provider)
    await ask(client, "one")
    expect(await failure(ask(client, "two"))).toBeInstanceOf(OpenAI.RateLimitError)
    provider.failNext({ kind: "status", status: 500 })
    provider.reset()
    expect(provider.stats).toMatchObject({
      requests: 0,
      successes: 0,
      rateLimited: 0,
      faults: 0,
      maxInFlight: 0
    })
    expect(provider.stats.byPrompt.size).toBe(0)
    await ask(client, "three")
    provider.setLimits({ requestsPerMinute: 5 })
    const { response } = await ask(client, "four").withResponse()
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("5")
    expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("4")
  })

  it.live("scoped closes the server with its scope", () =>
    Effect.gen(function* () {
      const url = yield* Effect.scoped(
        Effect.gen(function* () {
          const provider = yield* FakeProvider.scoped()
          const completion = yield* Effect.promise(() => ask(openai(provider), "hi"))
          expect(completion.choices[0]!.finish_reason).toBe("stop")
          return provider.url
        })
      )
      const refused = yield* Effect.promise(() =>
        failure(fetch(`${url}/v1/chat/completions`, { method: "POST" }))
      )
      expect(refused).toBeInstanceOf(Error)
    })
  )
})
