// A destructive action behind a small confirmation popover (not window.confirm: it stays in the page's look and
// is reachable by role for the browser tests).
import { useEffect, useRef, useState, type ReactNode } from "react"
import "./ConfirmButton.css"

interface Props {
  /** The button's text, e.g. "Delete". */
  readonly label: string
  /** What the popover asks, e.g. "Delete this prompt? This cannot be undone." */
  readonly question: ReactNode
  /** The confirming button's text; defaults to `label`. */
  readonly confirmLabel?: string
  readonly disabled?: boolean
  readonly onConfirm: () => void
}

export const ConfirmButton = ({ label, question, confirmLabel, disabled, onConfirm }: Props) => {
  const [open, setOpen] = useState(false)
  const confirmRef = useRef<HTMLButtonElement>(null)
  const rootRef = useRef<HTMLSpanElement>(null)
  useEffect(() => {
    if (!open) return
    confirmRef.current?.focus()
    const onPointer = (event: PointerEvent) => {
      if (!rootRef.current?.contains(event.target as Node)) setOpen(false)
    }
    document.addEventListener("pointerdown", onPointer)
    return () => document.removeEventListener("pointerdown", onPointer)
  }, [open])
  return (
    <span className="confirm" ref={rootRef}>
      <button
        type="button"
        className="danger"
        disabled={disabled}
        aria-expanded={open}
        onClick={() => setOpen((value) => !value)}
      >
        {label}
      </button>
      {open && (
        <div
          className="confirm-popover"
          role="dialog"
          aria-label={label}
          onKeyDown={(event) => {
            if (event.key === "Escape") setOpen(false)
          }}
        >
          <p>{question}</p>
          <div className="row">
            <button
              ref={confirmRef}
              type="button"
              className="danger-solid"
              disabled={disabled}
              onClick={() => {
                setOpen(false)
                onConfirm()
              }}
            >
              {confirmLabel ?? label}
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </div>
      )}
    </span>
  )
}
