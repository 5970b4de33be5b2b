// API tokens: everyone's for admins (your own otherwise); a new token is shown once, a revoked
// one is refused from its next request on.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, call, type Schemas } from "../api/client";
import { useCan, useMe } from "../auth/session";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";

type Token = Schemas["TokenOut"];
type Created = Schemas["TokenCreated"];

/** A token's state in words: revoked, expired or active. */
export function tokenState(t: Pick<Token, "revoked_at" | "expired">): "revoked" | "expired" | "active" {
  return t.revoked_at ? "revoked" : t.expired ? "expired" : "active";
}

export default function TokensPage() {
  const admin = useCan("users:manage");
  const me = useMe();
  const tokens = useQuery({
    queryKey: ["tokens", admin],
    queryFn: () => call(api.GET("/api/v1/tokens", { params: { query: admin ? { user: "*" } : {} } })),
  });
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const list = [...(tokens.data ?? [])].sort((a, b) => Number(b.active) - Number(a.active) || b.created_at.localeCompare(a.created_at));
  return (
    <div>
      <div className="page-head">
        <h2>API tokens</h2>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New token
        </button>
      </div>
      {tokens.isError && <ErrorMessage error={tokens.error} onRetry={() => void tokens.refetch()} />}
      {tokens.data && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="API tokens">
            <thead>
              <tr>
                <th scope="col">Token</th>
                <th scope="col">User</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {list.map((t) => {
                const state = tokenState(t);
                return (
                  <tr key={t.id} data-token={t.id}>
                    <td>
                      <div className="row-title">{t.name || "(no name)"}</div>
                      <div className="muted small">
                        <code>{t.prefix}…</code> · {t.id}
                        {t.id === me.data?.token_id && " · this session"}
                      </div>
                    </td>
                    <td data-label="User">{t.user}</td>
                    <td data-label="State">
                      {state === "active" && <span className="badge tone-green"><span aria-hidden="true">✓</span> active</span>}
                      {state === "expired" && <span className="badge tone-redoutline"><span aria-hidden="true">⏲</span> expired</span>}
                      {state === "revoked" && <span className="badge tone-darkgray"><span aria-hidden="true">⊘</span> revoked</span>}
                    </td>
                    <td data-label="Created" title={exactTime(t.created_at)}>{relativeTime(t.created_at)}</td>
                    <td data-label="Expires" title={exactTime(t.expires_at)}>{t.expires_at ? relativeTime(t.expires_at) : "never"}</td>
                    <td data-label="Last used" title={exactTime(t.last_used_at)}>{t.last_used_at ? relativeTime(t.last_used_at) : "never"}</td>
                    <td className="cell-actions">
                      <div className="actions">
                        {state === "active" && (
                          <button type="button" className="small danger-text" onClick={() => setRevoking(t)}>
                            Revoke
                          </button>
                        )}
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {creating && <NewToken admin={admin} onClose={() => setCreating(false)} />}
      {revoking && <RevokeToken token={revoking} onClose={() => setRevoking(null)} />}
    </div>
  );
}

function NewToken({ admin, onClose }: { admin: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const me = useMe();
  const users = useQuery({ queryKey: ["users"], queryFn: () => call(api.GET("/api/v1/users")), enabled: admin });
  const [user, setUser] = useState(me.data?.name ?? "");
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("90d");
  const [created, setCreated] = useState<Created | null>(null);
  const create = useMutation({
    mutationFn: () => call(api.POST("/api/v1/tokens", { body: { name, user: user || null, expires_in: expires || null } })),
    onSuccess: (t) => {
      setCreated(t);
      toast.ok(`Created token ${t.name || t.id} for ${t.user}`);
      void client.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  if (created) {
    return (
      <Dialog title="Token created" onClose={onClose} footer={<button type="button" className="primary" onClick={onClose}>Done</button>}>
        <div className="once">
          <strong>Copy it now: it is shown only once.</strong>
          <code data-token-secret>{created.token}</code>
          <button type="button" className="small" onClick={() => void navigator.clipboard?.writeText(created.token).then(() => toast.ok("Copied"))}>
            Copy
          </button>
        </div>
        <p className="small muted">
          Use it as <code>Authorization: Bearer …</code> or <code>OPSFLOW_TOKEN</code>. It acts as {created.user}
          {created.expires_at ? `, until ${exactTime(created.expires_at)}` : ", with no expiry"}.
        </p>
      </Dialog>
    );
  }
  return (
    <Dialog
      title="New API token"
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="token-form" className="primary" disabled={create.isPending}>Create token</button>
        </>
      }
    >
      <form id="token-form" onSubmit={submit}>
        {create.isError && <ErrorMessage error={create.error} />}
        {admin && (
          <label className="field">
            <span>User</span>
            <select value={user} onChange={(e) => setUser(e.target.value)} data-autofocus>
              {(users.data ?? []).map((u) => (
                <option key={u.name} value={u.name}>
                  {u.name} ({u.role})
                </option>
              ))}
            </select>
          </label>
        )}
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. ci-deploy" />
          <small className="muted">To recognise it later.</small>
        </label>
        <label className="field">
          <span>Expires after</span>
          <input value={expires} onChange={(e) => setExpires(e.target.value)} placeholder="90d, 12h, empty for never" />
        </label>
      </form>
    </Dialog>
  );
}

function RevokeToken({ token, onClose }: { token: Token; onClose: () => void }) {
  const revoke = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/tokens/{token_id}", { params: { path: { token_id: token.id } } })),
    done: () => `Revoked token ${token.name || token.id} of ${token.user}`,
    doing: `Revoking ${token.name || token.id}`,
    invalidate: "tokens",
    onClose,
  });
  return (
    <ConfirmDialog
      title={`Revoke token ${token.name || token.id}?`}
      confirmLabel={`Revoke ${token.name || token.id}`}
      busy={revoke.isPending}
      onConfirm={() => revoke.mutate()}
      onClose={onClose}
    >
      <p>
        {token.user}'s token <code>{token.prefix}…</code> is refused from its next request on. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}
