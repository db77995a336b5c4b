import { Either } from "effect"
import { useId, useState, type FormEvent } from "react"
import type { ModelConfig } from "../../../src/domain/Model.ts"
import { ParamsForm } from "../prompts/ParamsForm.tsx"
import {
  blankDraft,
  draftOf,
  PROVIDERS,
  validateDraft,
  type DraftField,
  type ModelDraft,
  type ModelFormErrors,
  type ModelPayload
} from "./modelForm.ts"

interface Props {
  /** The model being edited; absent: a new one. */
  readonly model?: ModelConfig
  readonly onSubmit: (payload: ModelPayload) => Promise<unknown>
  readonly onCancel: () => void
}

const noErrors: ModelFormErrors = { fields: {}, params: {} }

const BASE_URL_HINT: Record<ModelDraft["provider"], string> = {
  "openai-compatible": "http://127.0.0.1:11434/v1",
  openai: "https://api.openai.com/v1 (default)",
  anthropic: "https://api.anthropic.com (default)",
  mock: "not used"
}

export const ModelForm = ({ model, onSubmit, onCancel }: Props) => {
  const [draft, setDraft] = useState<ModelDraft>(() => (model ? draftOf(model) : blankDraft()))
  const [errors, setErrors] = useState<ModelFormErrors>(noErrors)
  const [saving, setSaving] = useState(false)
  const editing = model !== undefined
  const formId = useId()

  const set = <K extends keyof ModelDraft>(key: K, value: ModelDraft[K]) =>
    setDraft((d) => ({ ...d, [key]: value }))

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    const checked = validateDraft(draft)
    if (Either.isLeft(checked)) {
      setErrors(checked.left)
      return
    }
    setErrors(noErrors)
    setSaving(true)
    try {
      await onSubmit(checked.right)
    } catch {
      // the store has shown the server's message; the form keeps what was typed
    } finally {
      setSaving(false)
    }
  }

  const field = (
    key: DraftField,
    label: string,
    props: { placeholder?: string; inputMode?: "decimal" | "numeric" | "url" } = {}
  ) => {
    const error = errors.fields[key]
    const errorId = `${formId}-${key}-error`
    // the message sits outside the label: it describes the input without becoming part of its name
    return (
      <div className={`field${error ? " invalid" : ""}`}>
        <label>
          <span>{label}</span>
          <input
            type="text"
            value={draft[key]}
            onChange={(event) => set(key, event.target.value)}
            aria-invalid={error !== undefined}
            aria-describedby={error ? errorId : undefined}
            disabled={saving}
            {...props}
          />
        </label>
        {error && (
          <small id={errorId} role="alert">
            {error}
          </small>
        )}
      </div>
    )
  }

  return (
    <form
      className="card model-form"
      onSubmit={(event) => void submit(event)}
      aria-label={editing ? `Edit ${model.label}` : "Add a model"}
    >
      <h3>{editing ? `Edit ${model.label}` : "Add a model"}</h3>
      <div className="form-grid">
        <label>
          <span>Provider</span>
          <select
            value={draft.provider}
            disabled={editing || saving}
            onChange={(event) => set("provider", event.target.value as ModelDraft["provider"])}
          >
            {PROVIDERS.map((provider) => (
              <option key={provider.value} value={provider.value}>
                {provider.label}
              </option>
            ))}
          </select>
        </label>
        {field("model", "Model name", { placeholder: draft.provider === "mock" ? "mock-1" : "llama3.1:8b" })}
        {field("label", "Label", { placeholder: draft.model.trim() || "shown in runs" })}
        {field("baseUrl", draft.provider === "openai-compatible" ? "Base URL" : "Base URL (optional)", {
          placeholder: BASE_URL_HINT[draft.provider],
          inputMode: "url"
        })}
      </div>

      <fieldset>
        <legend>Prices, US dollars per million tokens</legend>
        <div className="form-grid">
          {field("inputPricePerMTok", "Input price", { placeholder: "0", inputMode: "decimal" })}
          {field("outputPricePerMTok", "Output price", { placeholder: "0", inputMode: "decimal" })}
        </div>
      </fieldset>

      <fieldset>
        <legend>Rate limits (blank: none)</legend>
        <div className="form-grid">
          {field("requestsPerMinute", "Requests per minute", { placeholder: "none", inputMode: "numeric" })}
          {field("tokensPerMinute", "Tokens per minute", { placeholder: "none", inputMode: "numeric" })}
          {field("maxConcurrency", "Max concurrent requests", {
            placeholder: "adaptive",
            inputMode: "numeric"
          })}
        </div>
      </fieldset>

      <fieldset>
        <legend>
          Default parameters (blank: the provider&apos;s default; a prompt&apos;s own override these)
        </legend>
        <ParamsForm
          value={draft.params}
          errors={errors.params}
          disabled={saving}
          onChange={(params) => set("params", params)}
        />
      </fieldset>

      <label className="checkbox">
        <input
          type="checkbox"
          checked={draft.isDefault}
          disabled={saving}
          onChange={(event) => set("isDefault", event.target.checked)}
        />
        <span>Default model (listed first)</span>
      </label>

      <div className="row form-actions">
        <button type="submit" className="primary" disabled={saving}>
          {saving ? "Saving…" : editing ? "Save changes" : "Add model"}
        </button>
        <button type="button" onClick={onCancel} disabled={saving}>
          Cancel
        </button>
      </div>
    </form>
  )
}
