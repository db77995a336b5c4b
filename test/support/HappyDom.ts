// A browser page's DOM for component tests that also run the real app server in the same process.
// Vitest's happy-dom environment replaces URL, fetch, Response, Blob and friends with happy-dom's, which breaks the
// server (Bun.serve, file paths); this installs only the DOM side of a happy-dom Window, and the app's RPC client
// keeps using the runtime's own fetch. React DOM and Testing Library read `window`/`document` when first loaded, so
// import them (and components) dynamically after `installDom()`.
import { Window } from "happy-dom"

const DOM_GLOBALS = [
  "window",
  "document",
  "navigator",
  "location",
  "history",
  "localStorage",
  "sessionStorage",
  "getComputedStyle",
  "requestAnimationFrame",
  "cancelAnimationFrame",
  "MutationObserver",
  "Node",
  "Element",
  "HTMLElement",
  "HTMLInputElement",
  "HTMLTextAreaElement",
  "HTMLSelectElement",
  "HTMLIFrameElement",
  "Event",
  "KeyboardEvent",
  "MouseEvent",
  "PointerEvent",
  "FocusEvent",
  "InputEvent",
  "DragEvent",
  "ProgressEvent"
] as const

/** Installs a happy-dom window at `url`; returns a function that closes it and restores the globals. */
export const installDom = (url = "http://127.0.0.1/") => {
  const window = new Window({ url, width: 1280, height: 800 })
  const target = globalThis as Record<string, unknown>
  const source = window as unknown as Record<string, unknown>
  const saved = new Map<string, unknown>()
  for (const key of DOM_GLOBALS) {
    saved.set(key, target[key])
    const value = key === "window" ? window : source[key]
    target[key] = typeof value === "function" && !/^[A-Z]/.test(key) ? value.bind(window) : value
  }
  target["IS_REACT_ACT_ENVIRONMENT"] = true
  return async () => {
    await window.happyDOM.abort()
    await window.happyDOM.close()
    for (const [key, value] of saved) target[key] = value
  }
}
