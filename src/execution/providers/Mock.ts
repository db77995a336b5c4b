import { Duration, Effect } from "effect"
import type { Completion, CompletionRequest, ProviderAdapter } from "../Provider.ts"
import { ProviderError } from "../Provider.ts"
import { timeoutMillis } from "./ProviderFailure.ts"

/**
 * The `mock` provider: answers without a network or a key, deterministically, so demos and tests run anywhere.
 *
 * Model name: `<name>[?latency=MS&jitter=MS&fail=P]`.
 * - `<name>` is free (`mock`, `mock-1`, `fast-mock`...). Two names are presets: `mock-slow` waits 200 ms and
 *   `mock-flaky` fails 20% of attempts. Any other name starts with no latency and no failures.
 * - `latency` (0 to 600000 ms) is added to every answer; `jitter` (0 to 600000 ms) adds a further 0 to `jitter`
 *   ms, chosen by a hash of the prompt and the attempt; `fail` (0 to 1) is the probability that an attempt fails
 *   with `server_error` (HTTP 500), decided by a hash of the model, the prompt and the attempt, after the latency.
 *   Query values override the preset. An unknown key or a value out of range is a `bad_request`.
 * - A latency beyond the request's timeout waits the timeout, then fails with `timeout`.
 * - The attempt is the request's optional `attempt` field (1 when absent): a retry of a failed attempt is
 *   another draw, so retries succeed as often as `fail` says.
 *
 * Output, for `[label]` = the name before `?` and `summary` = the user text on one line, its first 200 characters
 * (with "…" when cut; "(empty prompt)" when empty):
 * 1. Grader: when the system text contains "grader" or the user text contains "<grade>" (any case):
 *    `<grade>pass</grade><reason>[label] mock verdict NN/100</reason>`, pass when NN (a hash of the label, system
 *    and user text, 0 to 99) is below 70, fail otherwise.
 * 2. Otherwise the body is `{"model":"label","answer":"summary"}` when the system or user text mentions the word
 *    "json" (any case), else `[label] summary`; and it is wrapped in `<response>...</response>` when either text
 *    contains "<response>".
 * Then `stop` cuts the text before the first stop sequence (finish "stop"), and `max_tokens` cuts it to
 * 4 × max_tokens characters (finish "length"); otherwise finish is "stop".
 *
 * Usage: input = ceil((system + user characters) / 4), output = ceil(text characters / 4). The request id is
 * `mock_` and a hash of the model, prompt and attempt; there are no rate-limit headers.
 */

/** A completion request as the mock reads it: `attempt` counts from 1 and varies the failure and jitter draws. */
export type MockRequest = CompletionRequest

interface MockSettings {
  readonly label: string
  readonly latencyMs: number
  readonly jitterMs: number
  readonly failRate: number
}

const PRESETS: Record<string, Partial<MockSettings>> = {
  "mock-slow": { latencyMs: 200 },
  "mock-flaky": { failRate: 0.2 }
}

const MAX_DELAY_MS = 600_000
const SUMMARY_CHARS = 200
const GRADE_PASS_BELOW = 70

const badRequest = (message: string) =>
  new ProviderError({ code: "bad_request", message: `The mock provider: ${message}`, status: 400 })

const readNumber = (key: string, raw: string, max: number): number | ProviderError => {
  const value = raw.trim() === "" ? Number.NaN : Number(raw)
  return Number.isFinite(value) && value >= 0 && value <= max
    ? value
    : badRequest(`${key} must be a number from 0 to ${max}, got "${raw}"`)
}

const parseSettings = (model: string): MockSettings | ProviderError => {
  const at = model.indexOf("?")
  const label = at === -1 ? model : model.slice(0, at)
  const preset = PRESETS[label] ?? {}
  let settings: MockSettings = { label, latencyMs: 0, jitterMs: 0, failRate: 0, ...preset }
  if (at === -1) return settings
  for (const [key, raw] of new URLSearchParams(model.slice(at + 1))) {
    const field =
      key === "latency"
        ? { name: "latencyMs", max: MAX_DELAY_MS }
        : key === "jitter"
          ? { name: "jitterMs", max: MAX_DELAY_MS }
          : key === "fail"
            ? { name: "failRate", max: 1 }
            : undefined
    if (field === undefined) return badRequest(`unknown model option "${key}" (use latency, jitter or fail)`)
    const value = readNumber(key, raw, field.max)
    if (value instanceof ProviderError) return value
    settings = { ...settings, [field.name]: value }
  }
  return settings
}

// A run calls one model name thousands of times: parse each name once (a bounded cache; names are few).
const SETTINGS_CACHE_SIZE = 256
const settingsCache = new Map<string, MockSettings | ProviderError>()
const settingsOf = (model: string): MockSettings | ProviderError => {
  let settings = settingsCache.get(model)
  if (settings === undefined) {
    settings = parseSettings(model)
    if (settingsCache.size >= SETTINGS_CACHE_SIZE) settingsCache.clear()
    settingsCache.set(model, settings)
  }
  return settings
}

// FNV-1a over the parts, then murmur3's finaliser so that near-identical prompts still spread evenly.
const hash = (...parts: ReadonlyArray<string>): number => {
  let h = 0x811c9dc5
  const text = parts.join("\u0000")
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A uniform draw in [0, 1) from the parts. */
const draw = (...parts: ReadonlyArray<string>) => hash(...parts) / 2 ** 32

const tokens = (chars: number) => Math.ceil(chars / 4)

const summaryOf = (user: string) => {
  const line = user.replace(/\s+/g, " ").trim()
  if (line === "") return "(empty prompt)"
  return line.length > SUMMARY_CHARS ? `${line.slice(0, SUMMARY_CHARS)}…` : line
}

const replyOf = (label: string, system: string, user: string): string => {
  if (/grader/i.test(system) || /<grade>/i.test(user)) {
    const verdict = hash("grade", label, system, user) % 100
    const grade = verdict < GRADE_PASS_BELOW ? "pass" : "fail"
    return `<grade>${grade}</grade><reason>[${label}] mock verdict ${verdict}/100</reason>`
  }
  const summary = summaryOf(user)
  const wantsJson = /\bjson\b/i.test(system) || /\bjson\b/i.test(user)
  const body = wantsJson ? JSON.stringify({ model: label, answer: summary }) : `[${label}] ${summary}`
  return /<response>/i.test(system) || /<response>/i.test(user) ? `<response>${body}</response>` : body
}

const cut = (text: string, request: CompletionRequest): { text: string; finishReason: string } => {
  const stops = (request.params.stop ?? []).map((s) => text.indexOf(s)).filter((i) => i >= 0)
  const stopped = stops.length === 0 ? text : text.slice(0, Math.min(...stops))
  const maxTokens = request.params.max_tokens
  return maxTokens !== undefined && tokens(stopped.length) > maxTokens
    ? { text: stopped.slice(0, maxTokens * 4), finishReason: "length" }
    : { text: stopped, finishReason: "stop" }
}

export const mockAdapter = {
  // no span: an instant mock call is cheaper than the span would be, and runs call it tens of thousands of times
  complete: Effect.fnUntraced(function* (request: MockRequest) {
    const settings = settingsOf(request.model)
    if (settings instanceof ProviderError) return yield* settings
    const attempt = String(request.attempt ?? 1)
    const { system, user } = request
    const requestId = `mock_${hash("id", request.model, system, user, attempt).toString(16).padStart(8, "0")}`
    const jitter = settings.jitterMs > 0 ? draw("jitter", system, user, attempt) * settings.jitterMs : 0
    const delayMs = Math.round(settings.latencyMs + jitter)
    const timeoutMs = timeoutMillis(request.timeout)

    const waitMs = Math.min(delayMs, timeoutMs)
    // Even a zero sleep costs a timer tick, which thousands of instant mock cells would feel.
    const [elapsed] = yield* Effect.timed(waitMs > 0 ? Effect.sleep(Duration.millis(waitMs)) : Effect.void)
    if (delayMs > timeoutMs)
      return yield* new ProviderError({
        code: "timeout",
        message: `The mock provider: no answer within ${timeoutMs} ms (latency ${delayMs} ms)`,
        requestId
      })
    if (settings.failRate > 0 && draw("fail", request.model, system, user, attempt) < settings.failRate)
      return yield* new ProviderError({
        code: "server_error",
        message: `The mock provider: server error (HTTP 500, injected: fail=${settings.failRate}, attempt ${attempt})`,
        status: 500,
        requestId
      })

    const { finishReason, text } = cut(replyOf(settings.label, system, user), request)
    const completion: Completion = {
      text,
      usage: { inputTokens: tokens(system.length + user.length), outputTokens: tokens(text.length) },
      finishReason,
      requestId,
      rateLimit: {},
      latencyMs: Math.round(Duration.toMillis(elapsed))
    }
    return completion
  })
} satisfies ProviderAdapter
