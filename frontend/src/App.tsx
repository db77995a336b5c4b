import type { ReactNode } from "react"
import { DatasetPage } from "./datasets/DatasetPage.tsx"
import { DatasetsPage } from "./datasets/DatasetsPage.tsx"
import { Link, matchPath, useLocation } from "./lib/router.tsx"
import { useSession } from "./lib/session.tsx"
import { Toasts } from "./lib/toast.tsx"
import { PromptPage } from "./prompts/PromptPage.tsx"
import { PromptsPage } from "./prompts/PromptsPage.tsx"
import { ComparePage } from "./runs/ComparePage.tsx"
import { RunsPage } from "./runs/RunsPage.tsx"
import { SettingsPage } from "./settings/SettingsPage.tsx"
import { NewRunPage } from "./workspace/NewRunPage.tsx"
import { RunPage } from "./workspace/RunPage.tsx"

interface Route {
  readonly path: string
  readonly render: (params: Record<string, string>) => ReactNode
}

/** Every screen; the first match wins (so `/runs/new` comes before `/runs/:id`). */
export const routes: ReadonlyArray<Route> = [
  { path: "/", render: () => <PromptsPage /> },
  { path: "/prompts", render: () => <PromptsPage /> },
  { path: "/prompts/:id", render: ({ id }) => <PromptPage key={id} id={id!} /> },
  { path: "/datasets", render: () => <DatasetsPage /> },
  { path: "/datasets/:id", render: ({ id }) => <DatasetPage key={id} id={id!} /> },
  { path: "/runs", render: () => <RunsPage /> },
  { path: "/runs/new", render: () => <NewRunPage /> },
  { path: "/runs/compare", render: () => <ComparePage /> },
  { path: "/runs/:id", render: ({ id }) => <RunPage key={id} id={id!} /> },
  { path: "/settings", render: () => <SettingsPage /> }
]

const nav = [
  { to: "/prompts", label: "Prompts" },
  { to: "/datasets", label: "Datasets" },
  { to: "/runs", label: "Runs" },
  { to: "/settings", label: "Settings" }
]

const NotFound = ({ pathname }: { readonly pathname: string }) => (
  <div className="page">
    <h1>Not found</h1>
    <p>
      Nothing lives at <code>{pathname}</code>. <Link to="/prompts">Go to prompts</Link>.
    </p>
  </div>
)

export const App = () => {
  const { pathname } = useLocation()
  const session = useSession()
  let content: ReactNode = <NotFound pathname={pathname} />
  for (const route of routes) {
    const params = matchPath(route.path, pathname)
    if (params) {
      content = route.render(params)
      break
    }
  }
  const section = pathname === "/" ? "/prompts" : "/" + (pathname.split("/")[1] ?? "")
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Main">
        <Link to="/prompts" className="brand">
          Assay
        </Link>
        {nav.map((item) => (
          <Link key={item.to} to={item.to} className={section === item.to ? "active" : undefined}>
            {item.label}
          </Link>
        ))}
        <Link to="/runs/new" className="nav-cta">
          New run
        </Link>
        <div className="sidebar-foot">
          {session.email ? (
            <>
              <span className="muted" title={session.email}>
                {session.email}
              </span>
              <button type="button" className="link" onClick={() => void session.signOut()}>
                Sign out
              </button>
            </>
          ) : (
            <span className="muted">local mode</span>
          )}
        </div>
      </nav>
      <main className="content">{content}</main>
      <Toasts />
    </div>
  )
}
