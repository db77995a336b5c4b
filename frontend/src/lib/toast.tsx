// Toasts: every failure the server reports reaches the user with its message; nothing fails silently.
import { useSyncExternalStore } from "react"
import { toApiError } from "./errors.ts"

export type ToastKind = "error" | "success" | "info"

export interface Toast {
  readonly id: number
  readonly kind: ToastKind
  readonly message: string
  readonly code?: string
}

let toasts: ReadonlyArray<Toast> = []
let nextId = 1
const listeners = new Set<() => void>()
const emit = () => listeners.forEach((listener) => listener())

const TIMEOUT_MS: Record<ToastKind, number> = { error: 8000, success: 3000, info: 4000 }

export const dismissToast = (id: number) => {
  toasts = toasts.filter((toast) => toast.id !== id)
  emit()
}

export const showToast = (kind: ToastKind, message: string, code?: string) => {
  const id = nextId++
  // the same message twice in a row (a failing poll, say) is shown once
  if (toasts.some((toast) => toast.message === message && toast.kind === kind)) return
  toasts = [...toasts.slice(-4), { id, kind, message, ...(code === undefined ? {} : { code }) }]
  emit()
  setTimeout(() => dismissToast(id), TIMEOUT_MS[kind])
}

/** Shows a failure with the server's message and code. */
export const toastError = (error: unknown) => {
  const apiError = toApiError(error)
  showToast("error", apiError.message, apiError.code)
}

export const useToasts = () =>
  useSyncExternalStore(
    (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    () => toasts
  )

export const Toasts = () => {
  const items = useToasts()
  return (
    <div className="toasts" role="status" aria-live="polite">
      {items.map((toast) => (
        <div key={toast.id} className={`toast toast-${toast.kind}`} data-code={toast.code}>
          <span>{toast.message}</span>
          <button type="button" aria-label="Dismiss" onClick={() => dismissToast(toast.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  )
}
