import { StrictMode } from "react"
import { createRoot } from "react-dom/client"
import { App } from "./App.tsx"
import { SignIn } from "./auth/SignIn.tsx"
import { loadAppConfig, SessionProvider } from "./lib/session.tsx"
import { Toasts } from "./lib/toast.tsx"

const root = createRoot(document.getElementById("root")!)

loadAppConfig(window.location.origin).then(
  (config) =>
    root.render(
      <StrictMode>
        <SessionProvider
          config={config}
          signIn={(supabase) => (
            <>
              <SignIn supabase={supabase} />
              <Toasts />
            </>
          )}
        >
          <App />
        </SessionProvider>
      </StrictMode>
    ),
  (error: unknown) =>
    root.render(
      <div className="page">
        <h1>Assay cannot start</h1>
        <p>{error instanceof Error ? error.message : String(error)}</p>
      </div>
    )
)
