// A small history-API router: the app has a handful of screens, each a path pattern with `:params`.
import { useEffect, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react"

const listeners = new Set<() => void>()
const notify = () => listeners.forEach((listener) => listener())

const current = () => window.location.pathname + window.location.search
const pathOf = (href: string) => new URL(href, "http://assay").pathname

/** Questions to ask before the app leaves the current path (unsaved edits), newest last. */
const guards: Array<{ readonly message: string }> = []

/** Whether the user lets the app leave the current path: asked once, with the newest guard's question. */
const mayLeave = () => {
  const guard = guards.at(-1)
  return guard === undefined || window.confirm(guard.message)
}

/** Where the app is, as last shown: the back button has already changed the URL when it tells us. */
let shown = ""

const onPopState = () => {
  const to = current()
  if (pathOf(to) !== pathOf(shown) && !mayLeave()) {
    // stay: put the page that is still shown back in the address bar
    window.history.pushState(null, "", shown)
    return
  }
  shown = to
  notify()
}

// the window the back button is heard on (set when the app first reads the location, so tests that install a
// fresh DOM per test get it too)
let listening: Window | null = null

const subscribe = (listener: () => void) => {
  if (listening !== window) {
    listening?.removeEventListener("popstate", onPopState)
    window.addEventListener("popstate", onPopState)
    listening = window
    shown = current()
  }
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/**
 * Goes to `to` inside the app. Leaving the current path while a guard is up (`useLeaveGuard`) asks first, unless
 * `force` (what it guarded is gone); a change of the query alone (filters, tabs) does not ask.
 */
export const navigate = (to: string, options: { replace?: boolean; force?: boolean } = {}) => {
  if (to === current()) return
  if (!options.force && pathOf(to) !== pathOf(current()) && !mayLeave()) return
  if (options.replace) window.history.replaceState(null, "", to)
  else window.history.pushState(null, "", to)
  shown = current()
  notify()
}

/** While `active`, leaving the current path in the app (a link, `navigate`, back) asks `message` first. */
export const useLeaveGuard = (active: boolean, message: string) => {
  useEffect(() => {
    if (!active) return
    const guard = { message }
    guards.push(guard)
    return () => {
      const at = guards.indexOf(guard)
      if (at !== -1) guards.splice(at, 1)
    }
  }, [active, message])
}

export interface Location {
  readonly pathname: string
  readonly search: URLSearchParams
}

export const useLocation = (): Location => {
  const href = useSyncExternalStore(subscribe, current)
  const url = new URL(href, "http://assay")
  return { pathname: url.pathname, search: url.searchParams }
}

/** `/runs/:id` against `/runs/42` → `{ id: "42" }`; null when the path does not match. */
export const matchPath = (pattern: string, pathname: string): Record<string, string> | null => {
  const want = pattern.split("/").filter(Boolean)
  const have = pathname.split("/").filter(Boolean)
  if (want.length !== have.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!
    const actual = decodeURIComponent(have[i]!)
    if (segment.startsWith(":")) params[segment.slice(1)] = actual
    else if (segment !== actual) return null
  }
  return params
}

/** Updates query parameters of the current path (null removes one) without a new history entry. */
export const setSearch = (changes: Record<string, string | null>) => {
  const url = new URL(current(), "http://assay")
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) url.searchParams.delete(key)
    else url.searchParams.set(key, value)
  }
  navigate(url.pathname + url.search, { replace: true })
}

export const Link = ({
  to,
  onClick,
  ...rest
}: { readonly to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) => (
  <a
    {...rest}
    href={to}
    onClick={(event: MouseEvent<HTMLAnchorElement>) => {
      onClick?.(event)
      if (event.defaultPrevented || event.button !== 0) return
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
      event.preventDefault()
      navigate(to)
    }}
  />
)
