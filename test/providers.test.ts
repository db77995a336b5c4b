import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Redacted } from "effect"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { parseGrade, parseOutput } from "../src/execution/OutputParser.ts"
import {
  type CompletionRequest,
  costOf,
  ProviderError,
  type ProviderErrorCode,
  RETRYABLE
} from "../src/execution/Provider.ts"
import { anthropicAdapter } from "../src/execution/providers/Anthropic.ts"
import { adapterFor } from "../src/execution/providers/index.ts"
import { mockAdapter, type MockRequest } from "../src/execution/providers/Mock.ts"
import { openAiAdapter, openAiCompatibleAdapter } from "../src/execution/providers/OpenAi.ts"
import {
  type Fault,
  type FakeProvider,
  fakeReply,
  promptKey,
  renderPrompt,
  startFakeProvider
} from "./support/FakeProvider.ts"

// Recognisable, so that any leak into a message is caught.
const KEY = "sk-test-LEAKCHECK-4f9d2a7c1b8e"
const SYSTEM = "Be brief."
const USER = "Summarise: the cat sat"

type HttpProvider = "openai" | "openai-compatible" | "anthropic"
const HTTP_PROVIDERS: ReadonlyArray<HttpProvider> = ["openai", "openai-compatible", "anthropic"]

const tokens = (text: string) => Math.ceil(text.length / 4)

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(() => fake.close())
beforeEach(() => {
  fake.reset()
  fake.setLimits({ requestsPerMinute: 60, tokensPerMinute: 6000 })
  fake.setLatency(0)
})

const baseUrlFor = (provider: HttpProvider, url: string) => (provider === "anthropic" ? url : `${url}/v1`)

const requestFor = (
  provider: HttpProvider,
  overrides: Partial<CompletionRequest> = {}
): CompletionRequest => ({
  provider,
  model: provider === "anthropic" ? "claude-test" : "gpt-test",
  baseUrl: baseUrlFor(provider, fake.url),
  apiKey: Redacted.make(KEY),
  system: SYSTEM,
  user: USER,
  params: {},
  timeout: Duration.seconds(10),
  ...overrides
})

const complete = (request: CompletionRequest) => adapterFor(request.provider).complete(request)
const failure = (request: CompletionRequest) => Effect.flip(complete(request))

const expectNoKey = (error: ProviderError) => {
  expect(error).toBeInstanceOf(ProviderError)
  for (const text of [error.message, String(error), JSON.stringify(error), error.toString()])
    expect(text).not.toContain(KEY)
}

const conversation = { system: SYSTEM, messages: [{ role: "user", content: USER }] }

describe("adapterFor", () => {
  it("gives each provider its adapter", () => {
    expect(adapterFor("mock")).toBe(mockAdapter)
    expect(adapterFor("openai")).toBe(openAiAdapter)
    expect(adapterFor("openai-compatible")).toBe(openAiCompatibleAdapter)
    expect(adapterFor("anthropic")).toBe(anthropicAdapter)
  })
})

describe.each(HTTP_PROVIDERS)("%s against the fake provider", (provider) => {
  it.live("answers with text, usage, request id, finish reason and rate-limit info", () =>
    Effect.gen(function* () {
      const completion = yield* complete(requestFor(provider))
      const reply = fakeReply(conversation)
      expect(completion.text).toBe(reply)
      expect(completion.usage).toEqual({
        inputTokens: tokens(renderPrompt(conversation)),
        outputTokens: tokens(reply)
      })
      expect(completion.finishReason).toBe(provider === "anthropic" ? "end_turn" : "stop")
      expect(completion.requestId).toMatch(/^req_[0-9a-f]{24}$/)
      expect(completion.rateLimit).toMatchObject({
        requestsLimit: 60,
        requestsRemaining: 59,
        tokensLimit: 6000
      })
      expect(completion.rateLimit.requestsResetMs).toBeGreaterThan(0)
      expect(completion.rateLimit.requestsResetMs).toBeLessThanOrEqual(1000)
      expect(completion.rateLimit.tokensRemaining).toBeLessThan(6000)
      expect(completion.rateLimit.tokensRemaining).toBeGreaterThan(6000 - 1024 - 100)
      expect(completion.rateLimit.tokensResetMs).toBeGreaterThan(0)
      expect(completion.rateLimit.retryAfterMs).toBeUndefined()
      expect(completion.latencyMs).toBeGreaterThanOrEqual(0)
      expect(costOf(completion.usage, { input: 3, output: 15 })).toBe(
        (completion.usage.inputTokens * 3 + completion.usage.outputTokens * 15) / 1_000_000
      )
      // the system text travelled as the system prompt, the user text as the one user message
      expect(fake.stats.byPrompt.get(promptKey(requestFor(provider).model, conversation))).toBe(1)
      expect(fake.stats.requests).toBe(1)
    })
  )

  it.live("measures the latency around the call", () =>
    Effect.gen(function* () {
      fake.setLatency(150)
      const completion = yield* complete(requestFor(provider))
      expect(completion.latencyMs).toBeGreaterThanOrEqual(145)
      expect(completion.latencyMs).toBeLessThan(5000)
    })
  )

  it.live("sends max_tokens and reports the cut", () =>
    Effect.gen(function* () {
      const completion = yield* complete(requestFor(provider, { params: { max_tokens: 3 } }))
      expect(completion.finishReason).toBe(provider === "anthropic" ? "max_tokens" : "length")
      expect(completion.usage.outputTokens).toBe(3)
      expect(completion.text).toBe(fakeReply(conversation).slice(0, 12))
    })
  )

  const faults: ReadonlyArray<readonly [string, Fault, ProviderErrorCode, number | undefined]> = [
    ["HTTP 400", { kind: "status", status: 400 }, "bad_request", 400],
    ["HTTP 401", { kind: "status", status: 401 }, "auth", 401],
    ["HTTP 403", { kind: "status", status: 403 }, "auth", 403],
    ["HTTP 404", { kind: "status", status: 404 }, "not_found", 404],
    ["HTTP 408", { kind: "status", status: 408 }, "timeout", 408],
    ["HTTP 409", { kind: "status", status: 409 }, "server_error", 409],
    ["HTTP 500", { kind: "status", status: 500 }, "server_error", 500],
    ["HTTP 502", { kind: "status", status: 502 }, "server_error", 502],
    ["HTTP 503", { kind: "status", status: 503 }, "server_error", 503],
    ["HTTP 504", { kind: "status", status: 504 }, "server_error", 504],
    ["HTTP 529", { kind: "status", status: 529 }, "overloaded", 529],
    ["a malformed body", { kind: "malformed" }, "malformed_response", 200],
    ["a reset connection", { kind: "reset" }, "connection", undefined],
    ["a content filter", { kind: "content_filter" }, "content_filtered", 200]
  ]

  it.live.each(faults)("maps %s to its code", ([, fault, code, status]) =>
    Effect.gen(function* () {
      fake.failNext(fault)
      const error = yield* failure(requestFor(provider))
      expect(error.code).toBe(code)
      expect(error.status).toBe(status)
      expect(error.retryable).toBe(RETRYABLE.has(code))
      if (fault.kind === "status" || fault.kind === "content_filter") {
        expect(error.requestId).toMatch(/^req_/)
        expect(error.rateLimit?.requestsLimit).toBe(60)
      }
      expectNoKey(error)
      expect(fake.stats.requests).toBe(1)
    })
  )

  it.live("maps an injected 429 to rate_limited with the retry-after", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "status", status: 429, retryAfterSeconds: 2 })
      const seconds = yield* failure(requestFor(provider))
      expect(seconds.code).toBe("rate_limited")
      expect(seconds.status).toBe(429)
      expect(seconds.retryable).toBe(true)
      expect(seconds.rateLimit?.retryAfterMs).toBe(2000)

      fake.failNext({ kind: "status", status: 429, retryAfterSeconds: 2, retryAfterMs: 1500 })
      const ms = yield* failure(requestFor(provider))
      expect(ms.code).toBe("rate_limited")
      expect(ms.rateLimit?.retryAfterMs).toBe(1500)
    })
  )

  it.live("maps an empty request bucket to rate_limited with an honest wait and the remaining count", () =>
    Effect.gen(function* () {
      fake.setLimits({ requestsPerMinute: 1 })
      yield* complete(requestFor(provider))
      const error = yield* failure(requestFor(provider))
      expect(error.code).toBe("rate_limited")
      expect(error.message).toMatch(/rate limit reached \(HTTP 429/)
      expect(error.rateLimit?.retryAfterMs).toBeGreaterThan(50_000)
      expect(error.rateLimit?.retryAfterMs).toBeLessThanOrEqual(60_000)
      expect(error.rateLimit?.requestsRemaining).toBe(0)
    })
  )

  it.live("maps a request larger than the token limit (429, x-should-retry: false) to bad_request", () =>
    Effect.gen(function* () {
      fake.setLimits({ tokensPerMinute: 100 })
      const error = yield* failure(requestFor(provider, { params: { max_tokens: 500 } }))
      expect(error.code).toBe("bad_request")
      expect(error.status).toBe(429)
      expect(error.retryable).toBe(false)
      expect(error.message).toContain("Request too large")
    })
  )

  it.live("times out a hanging request at the request's timeout", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "hang" })
      const started = Date.now()
      const error = yield* failure(requestFor(provider, { timeout: Duration.millis(200) }))
      const elapsed = Date.now() - started
      expect(error.code).toBe("timeout")
      expect(error.retryable).toBe(true)
      expect(elapsed).toBeGreaterThanOrEqual(190)
      expect(elapsed).toBeLessThan(3000)
      expectNoKey(error)
    })
  )

  it.live("aborts the HTTP request when the fiber is interrupted", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "hang" })
      const fiber = yield* Effect.fork(complete(requestFor(provider, { timeout: Duration.seconds(30) })))
      yield* Effect.sleep(Duration.millis(150))
      expect(fake.stats.inFlight).toBe(1)
      yield* Fiber.interrupt(fiber)
      const deadline = Date.now() + 2000
      while (fake.stats.inFlight > 0 && Date.now() < deadline) yield* Effect.sleep(Duration.millis(10))
      expect(fake.stats.inFlight).toBe(0)
    })
  )

  it.live("refuses to connect to nothing with a connection error", () =>
    Effect.gen(function* () {
      const closed = yield* Effect.promise(() => startFakeProvider())
      yield* Effect.promise(() => closed.close())
      const error = yield* failure(requestFor(provider, { baseUrl: baseUrlFor(provider, closed.url) }))
      expect(error.code).toBe("connection")
      expect(error.retryable).toBe(true)
      expectNoKey(error)
    })
  )
})

describe("provider-specific error types", () => {
  it.live("OpenAI insufficient_quota (429) is auth, not worth a retry", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "status", status: 429, errorType: "insufficient_quota" })
      const error = yield* failure(requestFor("openai"))
      expect(error.code).toBe("auth")
      expect(error.retryable).toBe(false)
      expect(error.message).toContain("insufficient_quota")
    })
  )

  it.live("Anthropic overloaded_error is overloaded at any status", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "status", status: 500, errorType: "overloaded_error" })
      const error = yield* failure(requestFor("anthropic"))
      expect(error.code).toBe("overloaded")
      expect(error.status).toBe(500)
    })
  )

  it.live("error messages name the provider and quote what it said", () =>
    Effect.gen(function* () {
      fake.failNext({ kind: "status", status: 503 })
      const openai = yield* failure(requestFor("openai"))
      expect(openai.message).toBe("OpenAI: server error (HTTP 503, server_error): Injected fault: HTTP 503")
      fake.failNext({ kind: "status", status: 404 })
      const anthropic = yield* failure(requestFor("anthropic"))
      expect(anthropic.message).toBe(
        "Anthropic: not found (HTTP 404, not_found_error): Injected fault: HTTP 404"
      )
    })
  )
})

describe("API keys", () => {
  it.live.each(["openai", "anthropic"] as const)(
    "%s without a key fails with missing_api_key, sending nothing",
    (provider) =>
      Effect.gen(function* () {
        const absent = yield* failure(requestFor(provider, { apiKey: undefined }))
        expect(absent.code).toBe("missing_api_key")
        expect(absent.retryable).toBe(false)
        expect(absent.message).toContain(provider === "openai" ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY")
        const empty = yield* failure(requestFor(provider, { apiKey: Redacted.make("") }))
        expect(empty.code).toBe("missing_api_key")
        expect(fake.stats.requests).toBe(0)
      })
  )

  it.live("openai-compatible runs without a key", () =>
    Effect.gen(function* () {
      const completion = yield* complete(requestFor("openai-compatible", { apiKey: undefined }))
      expect(completion.text).toBe(fakeReply(conversation))
    })
  )
})

interface Recorded {
  readonly path: string
  readonly headers: Headers
  readonly body: Record<string, unknown>
}

/** A server that records what the SDKs send and answers what the test says. */
const startRecorder = () => {
  const seen: Array<Recorded> = []
  let answer: (recorded: Recorded) => Response = (recorded) =>
    Response.json(recorded.path === "/v1/messages" ? anthropicBody() : openAiBody())
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const recorded = {
        path: new URL(request.url).pathname,
        headers: request.headers,
        body: (await request.json()) as Record<string, unknown>
      }
      seen.push(recorded)
      return answer(recorded)
    }
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    seen,
    answerWith: (next: (recorded: Recorded) => Response) => {
      answer = next
    },
    close: () => server.stop(true)
  }
}

const openAiBody = (overrides: Record<string, unknown> = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "gpt-test",
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "ok", refusal: null },
      logprobs: null,
      finish_reason: "stop"
    }
  ],
  usage: { prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 },
  ...overrides
})

const anthropicBody = (overrides: Record<string, unknown> = {}) => ({
  id: "msg_1",
  type: "message",
  role: "assistant",
  model: "claude-test",
  content: [{ type: "text", text: "ok" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 7, output_tokens: 1 },
  ...overrides
})

const ALL_PARAMS = {
  temperature: 0.3,
  max_tokens: 50,
  top_p: 0.9,
  top_k: 40,
  stop: ["END", "STOP"],
  presence_penalty: 0.1,
  frequency_penalty: 0.2,
  seed: 7
}

describe("what the adapters send and read", () => {
  let recorder: ReturnType<typeof startRecorder>
  beforeAll(() => {
    recorder = startRecorder()
  })
  afterAll(() => recorder.close())
  beforeEach(() => {
    recorder.seen.length = 0
    recorder.answerWith((recorded) =>
      Response.json(recorded.path === "/v1/messages" ? anthropicBody() : openAiBody())
    )
  })

  const at = (provider: HttpProvider, overrides: Partial<CompletionRequest> = {}) =>
    requestFor(provider, { baseUrl: baseUrlFor(provider, recorder.url), ...overrides })

  it.live("OpenAI: every parameter, max_tokens as max_completion_tokens, no top_k", () =>
    Effect.gen(function* () {
      yield* complete(at("openai", { params: ALL_PARAMS }))
      const { body, headers } = recorder.seen[0]!
      expect(body).toEqual({
        model: "gpt-test",
        messages: [
          { role: "system", content: SYSTEM },
          { role: "user", content: USER }
        ],
        temperature: 0.3,
        max_completion_tokens: 50,
        top_p: 0.9,
        stop: ["END", "STOP"],
        presence_penalty: 0.1,
        frequency_penalty: 0.2,
        seed: 7
      })
      expect(headers.get("authorization")).toBe(`Bearer ${KEY}`)
    })
  )

  it.live(
    "openai-compatible: max_tokens as max_tokens, top_k passed through, placeholder key, no org header",
    () =>
      Effect.gen(function* () {
        const saved = process.env.OPENAI_ORG_ID
        process.env.OPENAI_ORG_ID = "org-from-the-environment"
        yield* complete(at("openai-compatible", { params: ALL_PARAMS, apiKey: undefined })).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              if (saved === undefined) delete process.env.OPENAI_ORG_ID
              else process.env.OPENAI_ORG_ID = saved
            })
          )
        )
        const { body, headers } = recorder.seen[0]!
        expect(body).toMatchObject({ max_tokens: 50, top_k: 40, temperature: 0.3, seed: 7 })
        expect(body).not.toHaveProperty("max_completion_tokens")
        expect(headers.get("authorization")).toBe("Bearer not-needed")
        expect(headers.get("openai-organization")).toBeNull()
      })
  )

  it.live("Anthropic: system, max_tokens and stop_sequences; no sampling parameters", () =>
    Effect.gen(function* () {
      yield* complete(at("anthropic", { params: ALL_PARAMS }))
      const { body, headers } = recorder.seen[0]!
      expect(body).toEqual({
        model: "claude-test",
        max_tokens: 50,
        system: SYSTEM,
        messages: [{ role: "user", content: USER }],
        stop_sequences: ["END", "STOP"]
      })
      expect([headers.get("x-api-key"), headers.get("authorization")]).toContainEqual(
        expect.stringContaining(KEY)
      )
    })
  )

  it.live("Anthropic: max_tokens defaults to 1024; an empty system text is not sent by either API", () =>
    Effect.gen(function* () {
      yield* complete(at("anthropic", { system: "" }))
      yield* complete(at("openai", { system: "" }))
      expect(recorder.seen[0]!.body).toEqual({
        model: "claude-test",
        max_tokens: 1024,
        messages: [{ role: "user", content: USER }]
      })
      expect(recorder.seen[1]!.body).toEqual({
        model: "gpt-test",
        messages: [{ role: "user", content: USER }]
      })
    })
  )

  it.live("Anthropic: joins the text blocks and counts cache reads and writes as input", () =>
    Effect.gen(function* () {
      recorder.answerWith(() =>
        Response.json(
          anthropicBody({
            content: [
              { type: "text", text: "Hello, " },
              { type: "thinking", thinking: "hidden" },
              { type: "text", text: "world" }
            ],
            usage: {
              input_tokens: 10,
              output_tokens: 4,
              cache_creation_input_tokens: 100,
              cache_read_input_tokens: 1000
            }
          }),
          { headers: { "request-id": "req_recorded" } }
        )
      )
      const completion = yield* complete(at("anthropic"))
      expect(completion.text).toBe("Hello, world")
      expect(completion.usage).toEqual({ inputTokens: 1110, outputTokens: 4 })
      expect(completion.requestId).toBe("req_recorded")
      expect(completion.rateLimit).toEqual({})
    })
  )

  it.live("OpenAI-compatible without usage: estimated; OpenAI without usage: malformed_response", () =>
    Effect.gen(function* () {
      recorder.answerWith(() => Response.json(openAiBody({ usage: undefined })))
      const compatible = yield* complete(at("openai-compatible"))
      expect(compatible.usage).toEqual({ inputTokens: tokens(SYSTEM) + tokens(USER), outputTokens: 1 })
      const openai = yield* failure(at("openai"))
      expect(openai.code).toBe("malformed_response")
      expect(openai.retryable).toBe(false)
    })
  )

  it.live("a 200 without choices, or with a non-JSON body, is malformed_response", () =>
    Effect.gen(function* () {
      recorder.answerWith(() => Response.json(openAiBody({ choices: [] })))
      expect((yield* failure(at("openai"))).code).toBe("malformed_response")
      recorder.answerWith(() => Response.json(anthropicBody({ usage: { input_tokens: "seven" } })))
      expect((yield* failure(at("anthropic"))).code).toBe("malformed_response")
      recorder.answerWith(
        () => new Response("<html>gateway</html>", { headers: { "content-type": "text/html" } })
      )
      expect((yield* failure(at("openai"))).code).toBe("malformed_response")
      expect((yield* failure(at("anthropic"))).code).toBe("malformed_response")
    })
  )

  it.live("an OpenAI refusal in place of content is content_filtered", () =>
    Effect.gen(function* () {
      recorder.answerWith(() =>
        Response.json(
          openAiBody({
            choices: [
              {
                index: 0,
                message: { role: "assistant", content: null, refusal: "I can't help with that." },
                logprobs: null,
                finish_reason: "stop"
              }
            ]
          })
        )
      )
      const error = yield* failure(at("openai"))
      expect(error.code).toBe("content_filtered")
      expect(error.message).toContain("I can't help with that.")
    })
  )

  it.live.each(HTTP_PROVIDERS)("%s: a provider message that echoes the key never carries it", (provider) =>
    Effect.gen(function* () {
      const echo = (status: number) => (recorded: Recorded) => {
        const sent = `${recorded.headers.get("authorization") ?? ""} ${recorded.headers.get("x-api-key") ?? ""}`
        const message = `Incorrect API key provided: ${sent}`
        return Response.json(
          provider === "anthropic"
            ? { type: "error", error: { type: "invalid_request_error", message } }
            : { error: { message, type: "invalid_request_error", code: null, param: null } },
          { status }
        )
      }
      recorder.answerWith(echo(400))
      const rejected = yield* failure(at(provider))
      expect(rejected.code).toBe("bad_request")
      expect(rejected.message).toContain("Incorrect API key provided")
      expect(rejected.message).toContain("[redacted]")
      expectNoKey(rejected)

      recorder.answerWith(echo(401))
      const unauthorised = yield* failure(at(provider))
      expect(unauthorised.code).toBe("auth")
      expect(unauthorised.message).not.toContain("Incorrect API key provided")
      expectNoKey(unauthorised)
    })
  )
})

describe("mock provider", () => {
  const mock = (overrides: Partial<MockRequest> = {}): MockRequest => ({
    provider: "mock",
    model: "mock-1",
    baseUrl: null,
    apiKey: undefined,
    system: SYSTEM,
    user: USER,
    params: {},
    timeout: Duration.seconds(10),
    ...overrides
  })
  const run = (request: MockRequest) => mockAdapter.complete(request)

  it.live("answers deterministically, counting tokens as ceil(chars / 4)", () =>
    Effect.gen(function* () {
      const first = yield* run(mock())
      const second = yield* run(mock())
      expect(first.text).toBe(`[mock-1] ${USER}`)
      expect({ ...second, latencyMs: 0 }).toEqual({ ...first, latencyMs: 0 })
      expect(first.usage).toEqual({
        inputTokens: Math.ceil((SYSTEM.length + USER.length) / 4),
        outputTokens: Math.ceil(first.text.length / 4)
      })
      expect(first.finishReason).toBe("stop")
      expect(first.requestId).toMatch(/^mock_[0-9a-f]{8}$/)
      expect(first.rateLimit).toEqual({})
      expect((yield* run(mock({ model: "mock-2" }))).text).toBe(`[mock-2] ${USER}`)
      expect((yield* run(mock({ model: "mock-1?latency=0" }))).text).toBe(`[mock-1] ${USER}`)
    })
  )

  it.live("needs no key and is what adapterFor gives for mock", () =>
    Effect.gen(function* () {
      const completion = yield* adapterFor("mock").complete(mock({ apiKey: undefined }))
      expect(completion.text.startsWith("[mock-1] ")).toBe(true)
    })
  )

  it.live("summarises the user text on one line, at most 200 characters", () =>
    Effect.gen(function* () {
      const long = `${"word ".repeat(100)}\n\n  tail`
      const completion = yield* run(mock({ user: long }))
      expect(completion.text).toBe(`[mock-1] ${long.replace(/\s+/g, " ").slice(0, 200)}…`)
      expect((yield* run(mock({ user: "  " }))).text).toBe("[mock-1] (empty prompt)")
    })
  )

  it.live("answers JSON when asked, and wraps in <response> when the prompt uses it", () =>
    Effect.gen(function* () {
      const json = yield* run(mock({ user: "Reply in JSON: name the colour of the sky" }))
      expect(parseOutput(json.text)).toEqual({
        kind: "json",
        value: { model: "mock-1", answer: "Reply in JSON: name the colour of the sky" }
      })
      const tagged = yield* run(
        mock({ system: "Answer inside <response></response>.", user: "Capital of France?" })
      )
      expect(tagged.text).toBe("<response>[mock-1] Capital of France?</response>")
      expect(parseOutput(tagged.text)).toEqual({ kind: "response_tag", value: "[mock-1] Capital of France?" })
      const both = yield* run(mock({ user: "Give JSON inside <response>" }))
      expect(parseOutput(both.text)).toMatchObject({ kind: "response_tag" })
      expect(JSON.parse(both.text.slice("<response>".length, -"</response>".length))).toEqual({
        model: "mock-1",
        answer: "Give JSON inside <response>"
      })
    })
  )

  it.live("grades deterministically, in a form parseGrade reads, passing about 70%", () =>
    Effect.gen(function* () {
      const grades: Array<string> = []
      for (let i = 0; i < 300; i++) {
        const reply = yield* run(mock({ system: "You are a strict grader.", user: `Output ${i}: Paris` }))
        expect(reply.text).toMatch(
          /^<grade>(pass|fail)<\/grade><reason>\[mock-1\] mock verdict \d{1,2}\/100<\/reason>$/
        )
        const parsed = parseGrade(reply.text)
        expect(Either.isRight(parsed)).toBe(true)
        grades.push(Either.getOrThrow(parsed).grade)
        expect(
          (yield* run(mock({ system: "You are a strict grader.", user: `Output ${i}: Paris` }))).text
        ).toBe(reply.text)
      }
      const passes = grades.filter((g) => g === "pass").length
      expect(passes).toBeGreaterThan(170)
      expect(passes).toBeLessThan(250)
      const tagged = yield* run(mock({ system: "", user: "Answer with <grade>pass</grade> or fail: 2+2=4" }))
      expect(tagged.text).toMatch(/^<grade>(pass|fail)<\/grade>/)
    })
  )

  it.live("cuts at a stop sequence and at max_tokens", () =>
    Effect.gen(function* () {
      const stopped = yield* run(mock({ params: { stop: ["cat"] } }))
      expect(stopped.text).toBe("[mock-1] Summarise: the ")
      expect(stopped.finishReason).toBe("stop")
      const cut = yield* run(mock({ params: { max_tokens: 2 } }))
      expect(cut.text).toBe("[mock-1]")
      expect(cut.finishReason).toBe("length")
      expect(cut.usage.outputTokens).toBe(2)
    })
  )

  it.live("waits the latency its name asks for", () =>
    Effect.gen(function* () {
      const fast = yield* run(mock())
      expect(fast.latencyMs).toBeLessThan(50)
      const started = Date.now()
      const slow = yield* run(mock({ model: "mock-slow" }))
      expect(Date.now() - started).toBeGreaterThanOrEqual(195)
      expect(slow.latencyMs).toBeGreaterThanOrEqual(195)
      expect(slow.text).toBe(`[mock-slow] ${USER}`)
      const custom = yield* run(mock({ model: "mock?latency=150" }))
      expect(custom.latencyMs).toBeGreaterThanOrEqual(145)
      expect(custom.latencyMs).toBeLessThan(1000)
      expect(custom.text).toBe(`[mock] ${USER}`)
    })
  )

  it.live("adds a deterministic jitter within the bound", () =>
    Effect.gen(function* () {
      const latencies = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => `prompt ${i}`),
        (user) => Effect.map(run(mock({ model: "mock?latency=20&jitter=100", user })), (c) => c.latencyMs),
        { concurrency: "unbounded" }
      )
      for (const latency of latencies) {
        expect(latency).toBeGreaterThanOrEqual(19)
        expect(latency).toBeLessThan(400)
      }
      expect(new Set(latencies.map((l) => Math.round(l / 10))).size).toBeGreaterThan(2)
    })
  )

  it.live("fails at the rate its name asks for, deterministically per prompt and attempt", () =>
    Effect.gen(function* () {
      const prompts = Array.from({ length: 1000 }, (_, i) => `question ${i}`)
      const failed = (model: string, attempt: number) =>
        Effect.forEach(prompts, (user) =>
          Effect.map(Effect.either(run(mock({ model, user, attempt }))), (result) =>
            Either.isLeft(result) ? user : undefined
          )
        ).pipe(Effect.map((users) => users.filter((u): u is string => u !== undefined)))

      const first = yield* failed("mock?fail=0.1", 1)
      expect(first.length).toBeGreaterThan(70)
      expect(first.length).toBeLessThan(130)
      expect(yield* failed("mock?fail=0.1", 1)).toEqual(first)
      const retried = yield* failed("mock?fail=0.1", 2)
      expect(retried).not.toEqual(first)
      // a retry is a fresh draw: about 10% of the first failures fail again
      expect(retried.filter((u) => first.includes(u)).length).toBeLessThan(30)
      expect(yield* failed("mock?fail=0", 1)).toHaveLength(0)
      expect(yield* failed("mock?fail=1", 1)).toHaveLength(1000)
      const flaky = yield* failed("mock-flaky", 1)
      expect(flaky.length).toBeGreaterThan(150)
      expect(flaky.length).toBeLessThan(250)

      const error = yield* Effect.flip(run(mock({ model: "mock?fail=1", attempt: 3 })))
      expect(error.code).toBe("server_error")
      expect(error.status).toBe(500)
      expect(error.retryable).toBe(true)
      expect(error.message).toContain("attempt 3")
    })
  )

  it.live("a latency beyond the timeout fails with timeout at the timeout", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const error = yield* Effect.flip(
        run(mock({ model: "mock?latency=2000", timeout: Duration.millis(100) }))
      )
      expect(error.code).toBe("timeout")
      expect(Date.now() - started).toBeGreaterThanOrEqual(95)
      expect(Date.now() - started).toBeLessThan(1000)
    })
  )

  it.live("rejects unknown options and values out of range as bad_request", () =>
    Effect.gen(function* () {
      for (const model of [
        "mock?speed=3",
        "mock?fail=2",
        "mock?latency=-1",
        "mock?latency=soon",
        "mock?jitter="
      ]) {
        const error = yield* Effect.flip(run(mock({ model })))
        expect(error.code, model).toBe("bad_request")
        expect(error.retryable).toBe(false)
      }
    })
  )
})
