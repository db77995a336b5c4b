// A small history-API router: the app has a handful of screens, each a path pattern with `:params`.
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react"

const listeners = new Set<() => void>()
const notify = () => listeners.forEach((listener) => listener())

if (typeof window !== "undefined") window.addEventListener("popstate", notify)

const subscribe = (listener: () => void) => {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

const current = () => window.location.pathname + window.location.search

export const navigate = (to: string, options: { replace?: boolean } = {}) => {
  if (to === current()) return
  if (options.replace) window.history.replaceState(null, "", to)
  else window.history.pushState(null, "", to)
  notify()
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
