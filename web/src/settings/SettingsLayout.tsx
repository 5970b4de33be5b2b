// The admin settings: users, teams, API tokens, secrets and connections, one tab each.
import { NavLink, Outlet } from "react-router-dom";
import { useCan } from "../auth/session";
import "./admin.css";

export default function SettingsLayout() {
  const users = useCan("users:manage");
  const secrets = useCan("secrets:manage");
  const connections = useCan("connections:manage");
  return (
    <section aria-labelledby="settings-title">
      <div className="page-head">
        <h1 id="settings-title">Settings</h1>
      </div>
      <nav className="settings-nav" aria-label="Settings">
        <NavLink to="/settings/users">Users</NavLink>
        <NavLink to="/settings/teams">Teams</NavLink>
        <NavLink to="/settings/tokens">API tokens</NavLink>
        {secrets && <NavLink to="/settings/secrets">Secrets</NavLink>}
        {connections && <NavLink to="/settings/connections">Connections</NavLink>}
      </nav>
      {!users && <p className="muted">Only administrators manage users, teams and other people's tokens; you see your own.</p>}
      <Outlet />
    </section>
  );
}
