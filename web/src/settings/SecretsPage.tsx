// Secrets for those who manage them: names, descriptions and versions only; a value is
// written here and never shown again (the API has no way to read one).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, call, type Schemas } from "../api/client";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";

type Secret = Schemas["SecretOut"];

export default function SecretsPage() {
  const secrets = useQuery({ queryKey: ["secrets"], queryFn: () => call(api.GET("/api/v1/secrets")) });
  const [editing, setEditing] = useState<Secret | "new" | null>(null);
  const [deleting, setDeleting] = useState<Secret | null>(null);
  return (
    <div>
      <div className="page-head">
        <h2>Secrets</h2>
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New secret
        </button>
      </div>
      <p className="muted small">Values are write-only: nobody can read one back here, and logs mask them.</p>
      {secrets.isError && <ErrorMessage error={secrets.error} onRetry={() => void secrets.refetch()} />}
      {secrets.data && secrets.data.length === 0 && (
        <div className="empty">
          <p>No secrets yet.</p>
        </div>
      )}
      {secrets.data && secrets.data.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Secrets">
            <thead>
              <tr>
                <th scope="col">Secret</th>
                <th scope="col">Use it as</th>
                <th scope="col">Version</th>
                <th scope="col">Changed</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {secrets.data.map((s) => (
                <tr key={s.name} data-secret={s.name}>
                  <td>
                    <div className="row-title">{s.name}</div>
                    <div className="muted small">{s.description || "—"}</div>
                  </td>
                  <td data-label="Use it as">
                    <code>{s.reference}</code>
                  </td>
                  <td data-label="Version">v{s.version}</td>
                  <td data-label="Changed" title={exactTime(s.updated_at)}>
                    {relativeTime(s.updated_at)} by {s.updated_by}
                  </td>
                  <td className="cell-actions">
                    <div className="actions">
                      <button type="button" className="small" onClick={() => setEditing(s)}>
                        Replace value
                      </button>
                      <button type="button" className="small danger-text" onClick={() => setDeleting(s)}>
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
      {editing && <SecretDialog secret={editing === "new" ? null : editing} onClose={() => setEditing(null)} />}
      {deleting && <DeleteSecret secret={deleting} onClose={() => setDeleting(null)} />}
    </div>
  );
}

function SecretDialog({ secret, onClose }: { secret: Secret | null; onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [name, setName] = useState(secret?.name ?? "");
  const [value, setValue] = useState("");
  const [description, setDescription] = useState(secret?.description ?? "");
  const save = useMutation({
    mutationFn: () =>
      call(api.PUT("/api/v1/secrets/{name}", { params: { path: { name } }, body: { value, description } })),
    onSuccess: (s) => {
      setValue("");
      toast.ok(s.created ? `Created secret ${s.name}` : `Replaced ${s.name}: now version ${s.version}`);
      for (const w of s.warnings) toast.error(new Error(w), `Secret ${s.name}`);
      void client.invalidateQueries({ queryKey: ["secrets"] });
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <Dialog
      title={secret ? `Replace the value of ${secret.name}` : "New secret"}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="secret-form" className="primary" disabled={!name || !value || save.isPending}>
            {secret ? "Replace value" : "Create secret"}
          </button>
        </>
      }
    >
      <form id="secret-form" onSubmit={submit} autoComplete="off">
        {save.isError && <ErrorMessage error={save.error} />}
        {!secret && (
          <label className="field">
            <span>Name</span>
            <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="e.g. AWS_SECRET_ACCESS_KEY" data-autofocus />
          </label>
        )}
        <label className="field">
          <span>Value</span>
          <input type="password" value={value} onChange={(e) => setValue(e.target.value)} required autoComplete="new-password" data-autofocus={secret ? true : undefined} />
          <small className="muted">Write-only: it is stored encrypted and never shown again.</small>
        </label>
        <label className="field">
          <span>Description</span>
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
      </form>
    </Dialog>
  );
}

function DeleteSecret({ secret, onClose }: { secret: Secret; onClose: () => void }) {
  const remove = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/secrets/{name}", { params: { path: { name: secret.name } } })),
    done: () => `Deleted secret ${secret.name}`,
    doing: `Deleting ${secret.name}`,
    invalidate: "secrets",
    onClose,
  });
  return (
    <ConfirmDialog title={`Delete secret ${secret.name}?`} confirmLabel={`Delete ${secret.name}`} busy={remove.isPending} onConfirm={() => remove.mutate()} onClose={onClose}>
      <p>Workflows that use <code>{secret.reference}</code> fail to render from now on.</p>
    </ConfirmDialog>
  );
}
