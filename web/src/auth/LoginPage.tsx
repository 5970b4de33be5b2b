import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Navigate, useLocation, useNavigate } from "react-router-dom";
import { ApiError, api, call } from "../api/client";
import { ME_KEY, useMe } from "./session";

/** One sentence for a failed sign-in: a refused password says so (the 401's generic title
 *  "Authentication required" would only repeat it); any other failure keeps its own words. */
export function signInFailure(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return "Wrong user name or password.";
    const raw = error.detail || error.title;
    const text = raw.charAt(0).toUpperCase() + raw.slice(1);
    return /[.!?]$/.test(text) ? text : `${text}.`;
  }
  return error instanceof Error ? error.message : "Signing in failed.";
}

export default function LoginPage() {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const client = useQueryClient();
  const navigate = useNavigate();
  const location = useLocation();
  const me = useMe();
  const next = new URLSearchParams(location.search).get("next") || "/workflows";
  const safeNext = next.startsWith("/") && !next.startsWith("//") ? next : "/workflows";

  if (me.data) return <Navigate to={safeNext} replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await call(api.POST("/api/v1/auth/login", { body: { username, password, session: true } }));
      await client.invalidateQueries({ queryKey: ME_KEY });
      navigate(safeNext, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">
          <span className="brand-mark" aria-hidden="true">◆</span> opsflow
        </h1>
        <p className="muted">Sign in to run and watch your workflows.</p>
        <label className="field">
          <span>Username</span>
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required autoFocus />
        </label>
        <label className="field">
          <span>Password</span>
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        {error !== null && (
          <div className="error-box" role="alert">
            {signInFailure(error)}
          </div>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
