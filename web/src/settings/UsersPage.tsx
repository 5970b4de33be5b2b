// Users for admins: who may sign in, with which role; create, change role or activity, delete.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, call, type Schemas } from "../api/client";
import { useMe } from "../auth/session";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";

type User = Schemas["UserOut"];
type Role = Schemas["Role"];
export const ROLES: { value: Role; hint: string }[] = [
  { value: "viewer", hint: "reads workflows, runs and logs" },
  { value: "operator", hint: "also runs, approves, cancels, retries" },
  { value: "editor", hint: "also writes and publishes workflows" },
  { value: "admin", hint: "everything, people and secrets included" },
];

export default function UsersPage() {
  const users = useQuery({ queryKey: ["users"], queryFn: () => call(api.GET("/api/v1/users")) });
  const me = useMe();
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);
  return (
    <div>
      <div className="page-head">
        <h2>Users</h2>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New user
        </button>
      </div>
      {users.isError && <ErrorMessage error={users.error} onRetry={() => void users.refetch()} />}
      {users.data && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Users">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Teams</th>
                <th scope="col">Signs in with</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.name} data-user={u.name}>
                  <td>
                    <div className="row-title">{u.name}</div>
                    <div className="muted small">{[u.display_name, u.email].filter(Boolean).join(" · ") || "—"}</div>
                  </td>
                  <td data-label="Role">{u.role}</td>
                  <td data-label="Teams">{u.teams.join(", ") || "—"}</td>
                  <td data-label="Signs in with">{u.has_password ? "password or token" : "tokens only"}</td>
                  <td data-label="Status">
                    {u.active ? (
                      <span className="badge tone-green"><span aria-hidden="true">✓</span> active</span>
                    ) : (
                      <span className="badge tone-darkgray"><span aria-hidden="true">⊘</span> deactivated</span>
                    )}
                  </td>
                  <td data-label="Created" title={exactTime(u.created_at)}>{relativeTime(u.created_at)}</td>
                  <td className="cell-actions">
                    <div className="actions">
                      <button type="button" className="small" onClick={() => setEditing(u)}>
                        Edit
                      </button>
                      <button type="button" className="small danger-text" disabled={u.name === me.data?.name} title={u.name === me.data?.name ? "You cannot delete yourself" : undefined} onClick={() => setDeleting(u)}>
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && <UserDialog onClose={() => setCreating(false)} />}
      {editing && <UserDialog user={editing} onClose={() => setEditing(null)} />}
      {deleting && <DeleteUser user={deleting} onClose={() => setDeleting(null)} />}
    </div>
  );
}

function UserDialog({ user, onClose }: { user?: User; onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [name, setName] = useState(user?.name ?? "");
  const [displayName, setDisplayName] = useState(user?.display_name ?? "");
  const [email, setEmail] = useState(user?.email ?? "");
  const [role, setRole] = useState<Role>(user?.role ?? "viewer");
  const [password, setPassword] = useState("");
  const [active, setActive] = useState(user?.active ?? true);
  const save = useMutation({
    mutationFn: () =>
      user
        ? call(
            api.PATCH("/api/v1/users/{name}", {
              params: { path: { name: user.name } },
              body: { role, display_name: displayName, email: email || null, active, password: password || null },
            }),
          )
        : call(api.POST("/api/v1/users", { body: { name, role, display_name: displayName, email: email || null, password: password || null } })),
    onSuccess: (u) => {
      toast.ok(user ? `Saved ${u.name}` : `Created ${u.name} (${u.role})`);
      void client.invalidateQueries({ queryKey: ["users"] });
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <Dialog
      title={user ? `Edit ${user.name}` : "New user"}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="user-form" className="primary" disabled={save.isPending || (!user && !name)}>
            {user ? "Save" : "Create user"}
          </button>
        </>
      }
    >
      <form id="user-form" onSubmit={submit}>
        {save.isError && <ErrorMessage error={save.error} />}
        {!user && (
          <label className="field">
            <span>Name</span>
            <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="e.g. jane" autoComplete="off" data-autofocus />
            <small className="muted">Lowercase letters, digits and dashes; used to sign in.</small>
          </label>
        )}
        <label className="field">
          <span>Display name</span>
          <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
        </label>
        <label className="field">
          <span>Email</span>
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label className="field">
          <span>Role</span>
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.value} — {r.hint}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>{user ? "New password" : "Password"}</span>
          <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />
          <small className="muted">{user ? "Leave empty to keep the current one." : "Leave empty for a user who signs in with API tokens only."}</small>
        </label>
        {user && (
          <label className="field field-check">
            <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} />
            <span>Active (may sign in and use tokens)</span>
          </label>
        )}
      </form>
    </Dialog>
  );
}

function DeleteUser({ user, onClose }: { user: User; onClose: () => void }) {
  const remove = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/users/{name}", { params: { path: { name: user.name } } })),
    done: () => `Deleted user ${user.name}`,
    doing: `Deleting ${user.name}`,
    invalidate: "users",
    onClose,
  });
  return (
    <ConfirmDialog title={`Delete user ${user.name}?`} confirmLabel={`Delete ${user.name}`} busy={remove.isPending} onConfirm={() => remove.mutate()} onClose={onClose}>
      <p>Their tokens stop working at once and they leave every team. The audit log keeps their name.</p>
    </ConfirmDialog>
  );
}
