// Teams for admins: approvers name them (`team:platform`); create, add and remove members, delete.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, call, type Schemas } from "../api/client";
import { useCan } from "../auth/session";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";

type Team = Schemas["TeamOut"];

export default function TeamsPage() {
  const teams = useQuery({ queryKey: ["teams"], queryFn: () => call(api.GET("/api/v1/teams")) });
  const canManage = useCan("users:manage");
  const users = useQuery({ queryKey: ["users"], queryFn: () => call(api.GET("/api/v1/users")), enabled: canManage });
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Team | null>(null);
  return (
    <div>
      <div className="page-head">
        <h2>Teams</h2>
        {canManage && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New team
          </button>
        )}
      </div>
      {teams.isError && <ErrorMessage error={teams.error} onRetry={() => void teams.refetch()} />}
      {teams.data && teams.data.length === 0 && (
        <div className="empty">
          <p>No teams yet. A team lets an approval name a group: <code>approvers: ["team:platform"]</code>.</p>
        </div>
      )}
      {teams.data && teams.data.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Teams">
            <thead>
              <tr>
                <th scope="col">Team</th>
                <th scope="col">Members</th>
                {canManage && <th scope="col"><span className="visually-hidden">Actions</span></th>}
              </tr>
            </thead>
            <tbody>
              {teams.data.map((t) => (
                <tr key={t.name} data-team={t.name}>
                  <td>
                    <div className="row-title">{t.name}</div>
                    <div className="muted small">{t.display_name || <code>team:{t.name}</code>}</div>
                  </td>
                  <td data-label="Members">
                    <Members team={t} canManage={canManage} users={(users.data ?? []).map((u) => u.name)} />
                  </td>
                  {canManage && (
                    <td className="cell-actions">
                      <div className="actions">
                        <button type="button" className="small danger-text" onClick={() => setDeleting(t)}>
                          Delete
                        </button>
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && <NewTeam onClose={() => setCreating(false)} />}
      {deleting && <DeleteTeam team={deleting} onClose={() => setDeleting(null)} />}
    </div>
  );
}

function Members({ team, canManage, users }: { team: Team; canManage: boolean; users: string[] }) {
  const client = useQueryClient();
  const toast = useToast();
  const [adding, setAdding] = useState("");
  const path = (user: string) => ({ params: { path: { team: team.name, user } } });
  const change = useMutation({
    mutationFn: ({ user, add }: { user: string; add: boolean }) =>
      add ? call(api.PUT("/api/v1/teams/{team}/members/{user}", path(user))) : call(api.DELETE("/api/v1/teams/{team}/members/{user}", path(user))),
    onSuccess: (m) => {
      toast.ok(m.member ? `Added ${m.user} to ${m.team}` : `Removed ${m.user} from ${m.team}`);
      setAdding("");
      void client.invalidateQueries({ queryKey: ["teams"] });
      void client.invalidateQueries({ queryKey: ["users"] });
    },
    onError: (err) => toast.error(err, "Changing the members"),
  });
  const candidates = users.filter((u) => !team.members.includes(u));
  return (
    <div>
      {team.members.length === 0 && <span className="muted">no members</span>}
      {team.members.map((m) => (
        <span key={m} className="member-chip">
          {m}
          {canManage && (
            <button type="button" aria-label={`Remove ${m} from ${team.name}`} title={`Remove ${m}`} onClick={() => change.mutate({ user: m, add: false })}>
              ×
            </button>
          )}
        </span>
      ))}
      {canManage && candidates.length > 0 && (
        <div className="inline-form">
          <select aria-label={`User to add to ${team.name}`} value={adding} onChange={(e) => setAdding(e.target.value)}>
            <option value="">Add a member…</option>
            {candidates.map((u) => (
              <option key={u} value={u}>
                {u}
              </option>
            ))}
          </select>
          <button type="button" className="small" disabled={!adding || change.isPending} onClick={() => change.mutate({ user: adding, add: true })}>
            Add
          </button>
        </div>
      )}
    </div>
  );
}

function NewTeam({ onClose }: { onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [name, setName] = useState("");
  const [displayName, setDisplayName] = useState("");
  const create = useMutation({
    mutationFn: () => call(api.POST("/api/v1/teams", { body: { name, display_name: displayName, members: [] } })),
    onSuccess: (t) => {
      toast.ok(`Created team ${t.name}`);
      void client.invalidateQueries({ queryKey: ["teams"] });
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <Dialog
      title="New team"
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="team-form" className="primary" disabled={!name || create.isPending}>Create team</button>
        </>
      }
    >
      <form id="team-form" onSubmit={submit}>
        {create.isError && <ErrorMessage error={create.error} />}
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="e.g. platform" data-autofocus />
          <small className="muted">Approvals name it as team:{name || "NAME"}.</small>
        </label>
        <label className="field">
          <span>Display name</span>
          <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
        </label>
      </form>
    </Dialog>
  );
}

function DeleteTeam({ team, onClose }: { team: Team; onClose: () => void }) {
  const remove = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/teams/{team}", { params: { path: { team: team.name } } })),
    done: () => `Deleted team ${team.name}`,
    doing: `Deleting team ${team.name}`,
    invalidate: "teams",
    onClose,
  });
  return (
    <ConfirmDialog title={`Delete team ${team.name}?`} confirmLabel={`Delete ${team.name}`} busy={remove.isPending} onConfirm={() => remove.mutate()} onClose={onClose}>
      <p>Approvals that name team:{team.name} will find no approver in it.</p>
    </ConfirmDialog>
  );
}
