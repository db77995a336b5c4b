// Who is using the app and how to reach the server. In `local` mode there is no sign-in; in `supabase` mode
// supabase-js keeps the session (refreshing its token) and every RPC and event stream sends the access token.
import { createClient, type Session, type SupabaseClient } from "@supabase/supabase-js"
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react"
import { makeApi, type Api } from "./rpc.ts"

export interface AppConfig {
  readonly authMode: "local" | "supabase"
  readonly supabaseUrl: string | null
  readonly supabaseAnonKey: string | null
}

export interface SessionValue {
  readonly api: Api
  readonly config: AppConfig
  /** Absent in local mode. */
  readonly supabase: SupabaseClient | null
  readonly email: string | null
  readonly signOut: () => Promise<void>
}

const SessionContext = createContext<SessionValue | null>(null)

export const useSession = (): SessionValue => {
  const value = useContext(SessionContext)
  if (value === null) throw new Error("useSession outside <SessionProvider>")
  return value
}

export const useApi = (): Api => useSession().api

/** For tests and embedding: a ready session (no config fetch, no sign-in). */
export const SessionContextProvider = SessionContext.Provider

export const loadAppConfig = async (baseUrl: string): Promise<AppConfig> => {
  const response = await fetch(new URL("/app-config.json", baseUrl))
  if (!response.ok) throw new Error(`The server answered ${response.status} for its configuration.`)
  return (await response.json()) as AppConfig
}

interface Props {
  readonly config: AppConfig
  readonly signIn: (supabase: SupabaseClient) => ReactNode
  readonly children: ReactNode
}

/** Provides the session; in supabase mode shows `signIn` until there is one. */
export const SessionProvider = ({ config, signIn, children }: Props) => {
  const supabase = useMemo(
    () =>
      config.authMode === "supabase" && config.supabaseUrl && config.supabaseAnonKey
        ? createClient(config.supabaseUrl, config.supabaseAnonKey)
        : null,
    [config]
  )
  const [session, setSession] = useState<Session | null | undefined>(supabase ? undefined : null)
  useEffect(() => {
    if (!supabase) return
    void supabase.auth.getSession().then(({ data }) => setSession(data.session))
    const { data } = supabase.auth.onAuthStateChange((_event, next) => setSession(next))
    return () => data.subscription.unsubscribe()
  }, [supabase])

  // One client for the page's life (config never changes after load). It is not disposed on unmount: StrictMode
  // unmounts once on trial in development, and a disposed client would fail every later call.
  const api = useMemo(
    () =>
      makeApi(window.location.origin, async () =>
        supabase ? ((await supabase.auth.getSession()).data.session?.access_token ?? undefined) : undefined
      ),
    [supabase]
  )

  const value = useMemo<SessionValue>(
    () => ({
      api,
      config,
      supabase,
      email: session?.user.email ?? null,
      signOut: async () => {
        await supabase?.auth.signOut()
      }
    }),
    [api, config, supabase, session]
  )

  if (supabase && session === undefined) return null
  if (supabase && session === null) return <>{signIn(supabase)}</>
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>
}
