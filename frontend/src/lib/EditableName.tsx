// A page title that can be renamed in place: Rename opens an input; Enter saves, Escape cancels.
import { useState } from "react"
import "./EditableName.css"

interface Props {
  readonly name: string
  /** What is being named, for accessible labels ("prompt", "dataset"). */
  readonly noun: string
  readonly disabled?: boolean
  /** Resolves true when the new name was saved (the input closes), false to keep editing. */
  readonly onRename: (name: string) => Promise<boolean>
}

export const EditableName = ({ name, noun, disabled, onRename }: Props) => {
  const [editing, setEditing] = useState<string | null>(null)
  const save = async () => {
    if (editing === null) return
    const next = editing.trim()
    if (next === "" || next === name) return setEditing(null)
    if (await onRename(next)) setEditing(null)
  }
  if (editing === null)
    return (
      <div className="editable-name">
        <h1>{name}</h1>
        <button type="button" className="link" disabled={disabled} onClick={() => setEditing(name)}>
          Rename
        </button>
      </div>
    )
  return (
    <form
      className="editable-name"
      onSubmit={(event) => {
        event.preventDefault()
        void save()
      }}
    >
      <input
        aria-label={`${noun[0]!.toUpperCase()}${noun.slice(1)} name`}
        value={editing}
        maxLength={200}
        autoFocus
        onChange={(event) => setEditing(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Escape") setEditing(null)
        }}
      />
      <button type="submit" className="primary" disabled={disabled || editing.trim() === ""}>
        Save name
      </button>
      <button type="button" onClick={() => setEditing(null)}>
        Cancel
      </button>
    </form>
  )
}
