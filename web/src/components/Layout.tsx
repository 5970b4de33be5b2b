import { Suspense, useEffect, type ReactNode } from "react";
import { NavLink, Navigate, Outlet, useLocation, useNavigate } from "react-router-dom";
import { onUnauthorized } from "../api/client";
import { useLogout, useMe } from "../auth/session";
import { useGlobalEvents } from "../live/useGlobalEvents";
import { ErrorMessage } from "./ErrorMessage";

/** The signed-in frame: navigation, the user, and the page. Sends strangers to /login. */
export function Layout() {
  const me = useMe();
  const location = useLocation();
  const navigate = useNavigate();
  const logout = useLogout();
  useGlobalEvents(!!me.data);

  useEffect(
    () =>
      onUnauthorized(() => {
        if (!window.location.pathname.startsWith("/login")) {
          const next = encodeURIComponent(window.location.pathname + window.location.search);
          navigate(`/login?next=${next}`, { replace: true });
        }
      }),
    [navigate],
  );

  if (me.isPending) return <div className="page-loading" aria-busy="true">Loading…</div>;
  if (me.isError) return <main className="page"><ErrorMessage error={me.error} onRetry={() => void me.refetch()} /></main>;
  if (!me.data) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }

  return (
    <div className="app">
      <a className="skip-link" href="#main">Skip to content</a>
      <header className="topbar">
        <NavLink to="/workflows" className="brand">
          <span className="brand-mark" aria-hidden="true">◆</span> opsflow
        </NavLink>
        <nav aria-label="Main">
          <NavItem to="/workflows">Workflows</NavItem>
          <NavItem to="/executions">Executions</NavItem>
          <NavItem to="/approvals">Approvals</NavItem>
          <NavItem to="/analytics">Analytics</NavItem>
          <NavItem to="/agents">Agents</NavItem>
          {me.data.permissions.includes("audit:read") && <NavItem to="/audit">Audit</NavItem>}
          <NavItem to="/settings">Settings</NavItem>
        </nav>
        <div className="user">
          <span title={`role: ${me.data.role}`}>
            {me.data.display_name || me.data.name} <span className="muted">({me.data.role})</span>
          </span>
          <button
            type="button"
            className="link-button"
            onClick={async () => {
              await logout();
              navigate("/login", { replace: true });
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        <Suspense fallback={<div className="page-loading" aria-busy="true">Loading…</div>}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}

function NavItem({ to, children }: { to: string; children: ReactNode }) {
  return (
    <NavLink to={to} className={({ isActive }) => (isActive ? "nav-link active" : "nav-link")}>
      {children}
    </NavLink>
  );
}
