import { updateSettings, useSettings, type Settings } from "../lib/settings.ts"

const OPTIONS: ReadonlyArray<{
  readonly value: Settings["liveUpdates"]
  readonly label: string
  readonly hint: string
}> = [
  {
    value: "realtime",
    label: "Realtime",
    hint: "A live event stream (server-sent events): cells update the moment they change."
  },
  {
    value: "polling",
    label: "Polling",
    hint: "Ask for changed cells every half second: for proxies or networks that cut long-lived connections."
  }
]

export const LiveUpdatesSection = () => {
  const { liveUpdates } = useSettings()
  return (
    <section className="settings-section" aria-labelledby="live-heading">
      <h2 id="live-heading">Live updates</h2>
      <p className="muted">How a running run reaches this browser. Saved in this browser only.</p>
      <div className="choice-list" role="radiogroup" aria-labelledby="live-heading">
        {OPTIONS.map((option) => (
          <label key={option.value} className={`choice${liveUpdates === option.value ? " chosen" : ""}`}>
            <input
              type="radio"
              name="liveUpdates"
              value={option.value}
              checked={liveUpdates === option.value}
              onChange={() => updateSettings({ liveUpdates: option.value })}
            />
            <span>
              <strong>{option.label}</strong>
              <span className="muted">{option.hint}</span>
            </span>
          </label>
        ))}
      </div>
    </section>
  )
}
