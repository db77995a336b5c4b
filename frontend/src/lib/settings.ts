// Per-browser settings, kept in localStorage.
import { useSyncExternalStore } from "react"

export interface Settings {
  /** How run progress reaches the page: a live event stream (SSE) or polling `updated_since` every 500 ms. */
  readonly liveUpdates: "realtime" | "polling"
}

const KEY = "assay.settings"
const defaults: Settings = { liveUpdates: "realtime" }

const read = (): Settings => {
  try {
    const stored = JSON.parse(window.localStorage.getItem(KEY) ?? "{}") as Partial<Settings>
    return { liveUpdates: stored.liveUpdates === "polling" ? "polling" : defaults.liveUpdates }
  } catch {
    return defaults
  }
}

let current: Settings | undefined
const listeners = new Set<() => void>()

export const getSettings = (): Settings => (current ??= read())

export const updateSettings = (changes: Partial<Settings>) => {
  current = { ...getSettings(), ...changes }
  window.localStorage.setItem(KEY, JSON.stringify(current))
  listeners.forEach((listener) => listener())
}

export const useSettings = (): Settings =>
  useSyncExternalStore((listener) => {
    listeners.add(listener)
    return () => listeners.delete(listener)
  }, getSettings)
