import type { Provider } from "../../domain/Model.ts"
import type { ProviderAdapter } from "../Provider.ts"
import { anthropicAdapter } from "./Anthropic.ts"
import { mockAdapter } from "./Mock.ts"
import { openAiAdapter, openAiCompatibleAdapter } from "./OpenAi.ts"

const ADAPTERS: Record<Provider, ProviderAdapter> = {
  mock: mockAdapter,
  openai: openAiAdapter,
  "openai-compatible": openAiCompatibleAdapter,
  anthropic: anthropicAdapter
}

/** The adapter that speaks `provider`'s API; adapters are stateless and shared. */
export const adapterFor = (provider: Provider): ProviderAdapter => ADAPTERS[provider]

export { anthropicAdapter } from "./Anthropic.ts"
export { mockAdapter, type MockRequest } from "./Mock.ts"
export { openAiAdapter, openAiCompatibleAdapter } from "./OpenAi.ts"
export { parseRateLimitHeaders } from "./RateLimitHeaders.ts"
