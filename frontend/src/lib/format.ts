// How screens write sizes, counts and times.
import { DateTime } from "effect"

export const formatBytes = (bytes: number) => {
  if (bytes < 1024) return `${bytes} B`
  const units = ["KB", "MB", "GB"]
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

export const formatCount = (n: number) => n.toLocaleString("en-US")

export const formatDateTime = (at: DateTime.Utc) =>
  DateTime.toDate(at).toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit"
  })

/** "just now", "5 min ago", "3 h ago", "2 d ago", then the date. */
export const formatAgo = (at: DateTime.Utc, now: number = Date.now()) => {
  const seconds = Math.max(0, (now - DateTime.toEpochMillis(at)) / 1000)
  if (seconds < 60) return "just now"
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`
  if (seconds < 7 * 86_400) return `${Math.floor(seconds / 86_400)} d ago`
  return DateTime.toDate(at).toLocaleDateString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric"
  })
}
