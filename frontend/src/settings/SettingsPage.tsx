import { useState } from "react"
import type { ModelConfig } from "../../../src/domain/Model.ts"
import { ConfirmButton } from "../lib/ConfirmButton.tsx"
import { showToast } from "../lib/toast.tsx"
import { ApiKeysSection } from "./ApiKeysSection.tsx"
import { LiveUpdatesSection } from "./LiveUpdatesSection.tsx"
import { ModelForm } from "./ModelForm.tsx"
import { changesOf, PROVIDERS } from "./modelForm.ts"
import { useModels } from "./stores.ts"
import "./settings.css"

export const SettingsPage = () => (
  <div className="page settings-screen">
    <h1>Settings</h1>
    <ModelsSection />
    <ApiKeysSection />
    <LiveUpdatesSection />
  </div>
)

const providerName = (provider: ModelConfig["provider"]) =>
  PROVIDERS.find((entry) => entry.value === provider)?.label ?? provider

const price = (value: number) => (value === 0 ? "free" : `$${value}`)

const limits = (model: ModelConfig) => {
  const parts = [
    model.requestsPerMinute !== null && `${model.requestsPerMinute.toLocaleString("en-US")} req/min`,
    model.tokensPerMinute !== null && `${model.tokensPerMinute.toLocaleString("en-US")} tok/min`,
    model.maxConcurrency !== null && `${model.maxConcurrency} concurrent`
  ].filter((part): part is string => typeof part === "string")
  return parts.length === 0 ? "—" : parts.join(" · ")
}

const paramsText = (model: ModelConfig) =>
  Object.entries(model.params)
    .map(([key, value]) => `${key} ${Array.isArray(value) ? JSON.stringify(value) : String(value)}`)
    .join(", ")

/** "Add model" opens a blank form; "Edit" opens one for that model; one form at a time. */
type Editing = { readonly kind: "new" } | { readonly kind: "edit"; readonly model: ModelConfig } | null

const ModelsSection = () => {
  const store = useModels()
  const [editing, setEditing] = useState<Editing>(null)
  const [seeding, setSeeding] = useState(false)

  const seed = async () => {
    setSeeding(true)
    try {
      const before = store.models?.length ?? 0
      const models = await store.seedDefaults()
      const added = models.length - before
      showToast(
        "success",
        added > 0
          ? `Added ${added} default model${added === 1 ? "" : "s"}.`
          : "The default models are all here already."
      )
    } catch {
      // shown by the store
    } finally {
      setSeeding(false)
    }
  }

  return (
    <section className="settings-section" aria-labelledby="models-heading">
      <div className="section-head">
        <div>
          <h2 id="models-heading">Models</h2>
          <p className="muted">
            What runs compare. Any OpenAI-compatible endpoint works (Ollama, vLLM, LM Studio, OpenRouter…);
            prices turn token counts into cost.
          </p>
        </div>
        <div className="row">
          <button type="button" onClick={() => void seed()} disabled={seeding}>
            {seeding ? "Adding…" : "Add default models"}
          </button>
          {editing?.kind !== "new" && (
            <button type="button" className="primary" onClick={() => setEditing({ kind: "new" })}>
              Add model
            </button>
          )}
        </div>
      </div>

      {editing?.kind === "new" && (
        <ModelForm
          onCancel={() => setEditing(null)}
          onSubmit={async (payload) => {
            const model = await store.create(payload)
            showToast("success", `Added ${model.label}.`)
            setEditing(null)
          }}
        />
      )}

      {store.loading && !store.models ? (
        <p className="muted">Loading models…</p>
      ) : store.models && store.models.length === 0 ? (
        <div className="card empty">
          No models yet. Add the defaults (a mock model that needs no key, OpenAI and Anthropic) or your own.
        </div>
      ) : (
        <table className="list models-table">
          <thead>
            <tr>
              <th>Label</th>
              <th>Provider · model</th>
              <th>Price in / out per 1M</th>
              <th>Limits</th>
              <th>
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(store.models ?? []).map((model) =>
              editing?.kind === "edit" && editing.model.id === model.id ? (
                <tr key={model.id} className="editing">
                  <td colSpan={5}>
                    <ModelForm
                      model={model}
                      onCancel={() => setEditing(null)}
                      onSubmit={async (payload) => {
                        const changes = changesOf(model, payload)
                        if (Object.keys(changes).length > 0) {
                          const saved = await store.update(model.id, changes)
                          showToast("success", `Saved ${saved.label}.`)
                        }
                        setEditing(null)
                      }}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={model.id}>
                  <td>
                    <span className="model-label">{model.label}</span>
                    {model.isDefault && <span className="badge default-badge">default</span>}
                    {Object.keys(model.params).length > 0 && (
                      <div className="muted small mono-ish">{paramsText(model)}</div>
                    )}
                  </td>
                  <td>
                    <div>{providerName(model.provider)}</div>
                    <div className="muted small">
                      <code>{model.model}</code>
                      {model.baseUrl && <> · {model.baseUrl}</>}
                    </div>
                  </td>
                  <td className="num nowrap">
                    {price(model.inputPricePerMTok)} / {price(model.outputPricePerMTok)}
                  </td>
                  <td className="small">{limits(model)}</td>
                  <td className="actions">
                    <button
                      type="button"
                      aria-label={`Edit ${model.label}`}
                      onClick={() => setEditing({ kind: "edit", model })}
                    >
                      Edit
                    </button>
                    <ConfirmButton
                      label="Delete"
                      question={
                        <>
                          Delete <strong>{model.label}</strong>? A model used by a run cannot be deleted.
                        </>
                      }
                      onConfirm={() =>
                        void store.remove(model.id).then(
                          () => showToast("success", `Deleted ${model.label}.`),
                          () => undefined
                        )
                      }
                    />
                  </td>
                </tr>
              )
            )}
          </tbody>
        </table>
      )}
    </section>
  )
}
