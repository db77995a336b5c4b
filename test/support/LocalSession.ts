import type { Api } from "../../frontend/src/lib/rpc.ts"

/** The web app's session in local mode (no sign-in) over `api`, for rendering screens in tests. */
export const localSession = (api: Api) => ({
  api,
  config: { authMode: "local" as const, supabaseUrl: null, supabaseAnonKey: null },
  supabase: null,
  email: null,
  signOut: async () => {}
})
