// The prompt's default sampling parameters; a blank input leaves the parameter to the model's settings.
import { PARAM_FIELDS, type ParamErrors, type ParamsDraft } from "./promptDraft.ts"

interface Props {
  readonly value: ParamsDraft
  readonly errors: ParamErrors
  readonly disabled?: boolean
  readonly onChange: (value: ParamsDraft) => void
}

export const ParamsForm = ({ value, errors, disabled, onChange }: Props) => (
  <div className="pr-params">
    <div className="pr-params-grid">
      {PARAM_FIELDS.map((field) => {
        const error = errors[field.key]
        return (
          <label key={field.key} className={error ? "pr-invalid" : undefined}>
            <span>{field.label}</span>
            <input
              type="text"
              inputMode="decimal"
              value={value[field.key]}
              placeholder={field.hint}
              disabled={disabled}
              aria-invalid={error !== undefined}
              onChange={(event) => onChange({ ...value, [field.key]: event.target.value })}
            />
            {error && <small role="alert">{error}</small>}
          </label>
        )
      })}
    </div>
    <label className={errors.stop ? "pr-invalid" : undefined}>
      <span>
        Stop sequences <small className="muted">one per line, up to 4</small>
      </span>
      <textarea
        className="mono"
        rows={2}
        value={value.stop}
        disabled={disabled}
        aria-invalid={errors.stop !== undefined}
        onChange={(event) => onChange({ ...value, stop: event.target.value })}
      />
      {errors.stop && <small role="alert">{errors.stop}</small>}
    </label>
  </div>
)
