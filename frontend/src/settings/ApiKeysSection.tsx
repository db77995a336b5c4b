import { useState, type FormEvent } from "react"
import type { ApiKeyInfo, KeyedProvider } from "../../../src/domain/Model.ts"
import { ConfirmButton } from "../lib/ConfirmButton.tsx"
import { showToast } from "../lib/toast.tsx"
import { formatTime } from "../runs/format.ts"
import { useApiKeys } from "./stores.ts"

const PROVIDERS: ReadonlyArray<{
  readonly provider: KeyedProvider
  readonly name: string
  readonly env?: string
}> = [
  { provider: "openai", name: "OpenAI", env: "OPENAI_API_KEY" },
  { provider: "anthropic", name: "Anthropic", env: "ANTHROPIC_API_KEY" },
  { provider: "openai-compatible", name: "OpenAI-compatible endpoints" }
]

export const ApiKeysSection = () => {
  const store = useApiKeys()
  const [open, setOpen] = useState<KeyedProvider | null>(null)
  return (
    <section className="settings-section" aria-labelledby="keys-heading">
      <div className="section-head">
        <div>
          <h2 id="keys-heading">Provider keys</h2>
          <p className="muted">
            Stored encrypted on the server and never sent back: only their last characters are shown. The mock
            model needs no key.
          </p>
        </div>
      </div>
      <table className="list keys-table">
        <thead>
          <tr>
            <th>Provider</th>
            <th>Key</th>
            <th>Updated</th>
            <th>
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {PROVIDERS.map(({ provider, name, env }) => {
            const info = store.keys?.find((key) => key.provider === provider)
            return (
              <tr key={provider}>
                <td className="nowrap">{name}</td>
                <td>
                  {open === provider ? (
                    <KeyForm
                      name={name}
                      onCancel={() => setOpen(null)}
                      onSave={async (key) => {
                        await store.put(provider, key)
                        showToast("success", `Saved the ${name} key.`)
                        setOpen(null)
                      }}
                    />
                  ) : (
                    <KeyStatus info={info} loading={store.loading} env={env} />
                  )}
                </td>
                <td className="muted nowrap">{info ? formatTime(info.updatedAt) : ""}</td>
                <td className="actions">
                  {open !== provider && (
                    <button
                      type="button"
                      aria-label={`${info ? "Replace" : "Set"} ${name} key`}
                      onClick={() => setOpen(provider)}
                    >
                      {info ? "Replace" : "Set key"}
                    </button>
                  )}
                  {info && (
                    <ConfirmButton
                      label="Delete"
                      question={
                        <>Delete the stored {name} key? Runs on its models will fail until a key is set.</>
                      }
                      onConfirm={() =>
                        void store.remove(provider).then(
                          () => showToast("success", `Deleted the ${name} key.`),
                          () => undefined
                        )
                      }
                    />
                  )}
                </td>
              </tr>
            )
          })}
        </tbody>
      </table>
    </section>
  )
}

const KeyStatus = ({
  info,
  loading,
  env
}: {
  readonly info: ApiKeyInfo | undefined
  readonly loading: boolean
  readonly env: string | undefined
}) => {
  if (info) return <code className="masked">{info.masked}</code>
  if (loading) return <span className="muted">…</span>
  return <span className="muted">Not set{env && <> — the server&apos;s {env} is used if it has one</>}</span>
}

interface KeyFormProps {
  readonly name: string
  readonly onSave: (key: string) => Promise<void>
  readonly onCancel: () => void
}

const MIN_KEY = 8

const KeyForm = ({ name, onSave, onCancel }: KeyFormProps) => {
  const [key, setKey] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [saving, setSaving] = useState(false)
  const submit = async (event: FormEvent) => {
    event.preventDefault()
    const trimmed = key.trim()
    if (trimmed.length < MIN_KEY) {
      setError(`A key has at least ${MIN_KEY} characters.`)
      return
    }
    setSaving(true)
    try {
      await onSave(trimmed)
    } catch {
      // the store has shown the server's message
    } finally {
      // the key is not kept in the page once it has been sent, saved or not
      setKey("")
      setSaving(false)
    }
  }
  return (
    <form className="key-form" onSubmit={(event) => void submit(event)}>
      <input
        type="password"
        value={key}
        onChange={(event) => {
          setKey(event.target.value)
          setError(null)
        }}
        aria-label={`${name} API key`}
        aria-invalid={error !== null}
        placeholder="Paste the key"
        autoComplete="off"
        spellCheck={false}
        disabled={saving}
        autoFocus
      />
      <button type="submit" className="primary" disabled={saving || key === ""}>
        {saving ? "Saving…" : "Save"}
      </button>
      <button type="button" onClick={onCancel} disabled={saving}>
        Cancel
      </button>
      {error && (
        <small role="alert" className="error-text">
          {error}
        </small>
      )}
    </form>
  )
}
