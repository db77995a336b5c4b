import type { SupabaseClient } from "@supabase/supabase-js"
import { useState, type FormEvent } from "react"
import { showToast } from "../lib/toast.tsx"

/** Supabase sign-in: email + password, or a magic link sent by email. */
export const SignIn = ({ supabase }: { readonly supabase: SupabaseClient }) => {
  const [email, setEmail] = useState("")
  const [password, setPassword] = useState("")
  const [busy, setBusy] = useState(false)
  const [linkSent, setLinkSent] = useState(false)

  const withPassword = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    const { error } = await supabase.auth.signInWithPassword({ email, password })
    setBusy(false)
    if (error) showToast("error", error.message, error.code ?? "sign_in_failed")
  }

  const magicLink = async () => {
    if (!email) return showToast("error", "Enter your email address first.", "email_required")
    setBusy(true)
    const { error } = await supabase.auth.signInWithOtp({
      email,
      options: { emailRedirectTo: window.location.href }
    })
    setBusy(false)
    if (error) showToast("error", error.message, error.code ?? "magic_link_failed")
    else setLinkSent(true)
  }

  return (
    <div className="sign-in">
      <form className="card" onSubmit={(event) => void withPassword(event)}>
        <h1>Sign in to Assay</h1>
        <label>
          Email
          <input
            type="email"
            autoComplete="email"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" className="primary" disabled={busy || !password}>
          Sign in
        </button>
        <button type="button" disabled={busy} onClick={() => void magicLink()}>
          Email me a magic link
        </button>
        {linkSent && <p className="muted">Check your inbox: the link signs you in here.</p>}
      </form>
    </div>
  )
}
