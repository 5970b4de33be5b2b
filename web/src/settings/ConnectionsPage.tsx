// Connections for those who manage them: named, typed credentials that steps use
// (`connection: NAME`). Values are write-only: the list shows which fields are set, the form
// never shows a value, and a field left empty when editing keeps its current value.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, call, type Schemas } from "../api/client";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { StatusIcon } from "../components/status";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";

type Connection = Schemas["ConnectionOut"];
type ConnectionType = Connection["type"];

type FieldKind = "text" | "secret" | "secret-area" | "area" | "number" | "flag" | "choice" | "env";

interface FieldSpec {
  name: string;
  label: string;
  kind: FieldKind;
  hint?: string;
  choices?: string[];
  // Shown only when the form's `auth` is one of these (or not chosen yet when editing).
  auth?: string[];
}

// The fields of each type, as the server checks them (docs/reference/connections.md).
const FIELDS: Record<ConnectionType, FieldSpec[]> = {
  ssh: [
    { name: "user", label: "User", kind: "text" },
    { name: "private_key", label: "Private key", kind: "secret-area", hint: "OpenSSH or PEM text, from -----BEGIN to -----END" },
    { name: "passphrase", label: "Key passphrase", kind: "secret" },
    { name: "password", label: "Password", kind: "secret", hint: "when there is no key" },
    { name: "known_hosts", label: "known_hosts", kind: "area", hint: "the hosts' keys are checked against these lines" },
    { name: "accept_new", label: "Accept new host keys", kind: "flag" },
    { name: "jump_host", label: "Jump host", kind: "text", hint: "[user@]host[:port]" },
    { name: "port", label: "Port", kind: "number", hint: "default 22" },
    { name: "host", label: "Test host", kind: "text", hint: "what Test logs in to; steps name their own hosts" },
  ],
  http: [
    { name: "base_url", label: "Base URL", kind: "text", hint: "a step's url path is appended to it" },
    { name: "auth", label: "Auth", kind: "choice", choices: ["none", "bearer", "basic", "header"] },
    { name: "token", label: "Bearer token", kind: "secret", auth: ["bearer"] },
    { name: "username", label: "User name (basic)", kind: "text", auth: ["basic"] },
    { name: "password", label: "Password (basic)", kind: "secret", auth: ["basic"] },
    { name: "header_name", label: "Header name", kind: "text", auth: ["header"] },
    { name: "header_value", label: "Header value", kind: "secret", auth: ["header"] },
  ],
  notify: [{ name: "url", label: "Apprise URL(s)", kind: "secret-area", hint: "e.g. slack://…; several separated by spaces" }],
  terraform: [{ name: "env", label: "Environment", kind: "env", hint: "one NAME=value per line (cloud credentials, TF_VAR_…)" }],
  git: [
    { name: "token", label: "Token", kind: "secret", hint: "sent as the HTTPS password" },
    { name: "username", label: "HTTPS user name", kind: "text", hint: "default x-access-token" },
    { name: "deploy_key", label: "Deploy key", kind: "secret-area", hint: "instead of a token: an SSH private key" },
    { name: "url", label: "Test repository URL", kind: "text", hint: "what Test runs git ls-remote on" },
  ],
};

const TYPES = Object.keys(FIELDS) as ConnectionType[];

export default function ConnectionsPage() {
  const connections = useQuery({
    queryKey: ["connections"],
    queryFn: () => call(api.GET("/api/v1/connections")),
  });
  const [editing, setEditing] = useState<Connection | "new" | null>(null);
  const [deleting, setDeleting] = useState<Connection | null>(null);
  return (
    <div>
      <div className="page-head">
        <h2>Connections</h2>
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New connection
        </button>
      </div>
      <p className="muted small">
        Credentials steps use by name (<code>connection: NAME</code>). Values are write-only and masked in logs; the
        server's notify channels are here too.
      </p>
      {connections.isError && <ErrorMessage error={connections.error} onRetry={() => void connections.refetch()} />}
      {connections.data && connections.data.length === 0 && (
        <div className="empty">
          <p>No connections yet.</p>
        </div>
      )}
      {connections.data && connections.data.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Connections">
            <thead>
              <tr>
                <th scope="col">Connection</th>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Fields set</th>
                <th scope="col">Last test</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {connections.data.map((c) => (
                <ConnectionRow key={c.name} connection={c} onEdit={() => setEditing(c)} onDelete={() => setDeleting(c)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {editing && (
        <ConnectionDialog connection={editing === "new" ? null : editing} onClose={() => setEditing(null)} />
      )}
      {deleting && <DeleteConnection connection={deleting} onClose={() => setDeleting(null)} />}
    </div>
  );
}

function ConnectionRow({ connection: c, onEdit, onDelete }: { connection: Connection; onEdit: () => void; onDelete: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const refresh = () => void client.invalidateQueries({ queryKey: ["connections"] });
  const test = useMutation({
    mutationFn: () => call(api.POST("/api/v1/connections/{name}/test", { params: { path: { name: c.name } } })),
    onSuccess: (t) => {
      if (t.ok) toast.ok(`${c.name}: test passed — ${t.detail}`);
      else toast.error(new Error(t.detail), `Test of ${c.name}`);
      refresh();
    },
    onError: (err) => toast.error(err, `Testing ${c.name}`),
  });
  const toggle = useMutation({
    mutationFn: () =>
      call(api.PATCH("/api/v1/connections/{name}", { params: { path: { name: c.name } }, body: { enabled: !c.enabled } })),
    onSuccess: (updated) => {
      toast.ok(`${c.name} ${updated.enabled ? "enabled" : "disabled: steps naming it fail at once"}`);
      refresh();
    },
    onError: (err) => toast.error(err, `Changing ${c.name}`),
  });
  return (
    <tr data-connection={c.name}>
      <td>
        <div className="row-title">{c.name}</div>
        <div className="muted small">{c.description || "—"}</div>
      </td>
      <td data-label="Type">
        <code>{c.type}</code>
      </td>
      <td data-label="Status">
        {c.enabled ? (
          <span className="badge tone-green"><StatusIcon status="succeeded" /> enabled</span>
        ) : (
          <span className="badge tone-darkgray"><StatusIcon status="cancelled" /> disabled</span>
        )}
      </td>
      <td data-label="Fields set" className="small">{(c.fields ?? []).join(", ") || "—"}</td>
      <td data-label="Last test" data-test-result={c.last_test_ok === null || c.last_test_ok === undefined ? "never" : c.last_test_ok ? "passed" : "failed"}>
        <LastTest connection={c} />
      </td>
      <td className="cell-actions">
        <div className="actions">
          <button type="button" className="small" onClick={() => test.mutate()} disabled={test.isPending} aria-label={`Test ${c.name}`}>
            {test.isPending ? "Testing…" : "Test"}
          </button>
          <button type="button" className="small" onClick={onEdit} aria-label={`Edit ${c.name}`}>
            Edit
          </button>
          <button type="button" className="small" onClick={() => toggle.mutate()} disabled={toggle.isPending}>
            {c.enabled ? "Disable" : "Enable"}
          </button>
          <button type="button" className="small danger-text" onClick={onDelete} aria-label={`Delete ${c.name}`}>
            Delete
          </button>
        </div>
      </td>
    </tr>
  );
}

function LastTest({ connection: c }: { connection: Connection }) {
  if (c.last_test_ok === null || c.last_test_ok === undefined || !c.last_tested_at) {
    return <span className="muted">never tested</span>;
  }
  return (
    <div>
      {c.last_test_ok ? (
        <span className="badge tone-green"><StatusIcon status="succeeded" /> passed</span>
      ) : (
        <span className="badge tone-red"><StatusIcon status="failed" /> failed</span>
      )}{" "}
      <span className="muted small" title={exactTime(c.last_tested_at)}>{relativeTime(c.last_tested_at)}</span>
      {c.last_test_error && <div className="small error-text">{c.last_test_error}</div>}
    </div>
  );
}

/** Whether a field belongs on the form for the chosen auth (all of them while it is kept). */
function shown(field: FieldSpec, auth: string, editing: boolean): boolean {
  if (!field.auth) return true;
  if (auth === "") return editing;
  return field.auth.includes(auth);
}

/** The API's values from the form's texts: empty fields are left out (kept when editing). */
function valuesOf(type: ConnectionType, form: Record<string, string>, editing: boolean): { values: Record<string, unknown>; keep: string[] } {
  const values: Record<string, unknown> = {};
  const keep: string[] = [];
  for (const field of FIELDS[type]) {
    const text = form[field.name] ?? "";
    if (!shown(field, form.auth ?? "", editing)) continue;
    if (text === "") {
      if (editing) keep.push(field.name);
      continue;
    }
    if (field.kind === "number") values[field.name] = Number(text);
    else if (field.kind === "flag") values[field.name] = text === "true";
    else if (field.kind === "env") {
      const env: Record<string, string> = {};
      for (const line of text.split("\n")) {
        const at = line.indexOf("=");
        if (line.trim() && at > 0) env[line.slice(0, at).trim()] = line.slice(at + 1);
      }
      values[field.name] = env;
    } else values[field.name] = text;
  }
  return { values, keep };
}

function ConnectionDialog({ connection, onClose }: { connection: Connection | null; onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [name, setName] = useState(connection?.name ?? "");
  const [type, setType] = useState<ConnectionType>(connection?.type ?? "ssh");
  const [description, setDescription] = useState(connection?.description ?? "");
  const [form, setForm] = useState<Record<string, string>>({});
  const set = new Set(connection && connection.type === type ? connection.fields ?? [] : []);
  const save = useMutation({
    mutationFn: () => {
      const { values, keep } = valuesOf(type, form, !!connection && connection.type === type);
      return call(
        api.PUT("/api/v1/connections/{name}", {
          params: { path: { name } },
          body: { type, values, keep: keep.filter((f) => set.has(f) || (type === "terraform" && set.size > 0)), description },
        }),
      );
    },
    onSuccess: (c) => {
      setForm({});
      toast.ok(c.created ? `Created connection ${c.name}` : `Saved ${c.name}`);
      void client.invalidateQueries({ queryKey: ["connections"] });
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  const update = (field: string, value: string) => setForm((f) => ({ ...f, [field]: value }));
  return (
    <Dialog
      title={connection ? `Edit connection ${connection.name}` : "New connection"}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="connection-form" className="primary" disabled={!name || save.isPending}>
            {connection ? "Save" : "Create connection"}
          </button>
        </>
      }
    >
      <form id="connection-form" onSubmit={submit} autoComplete="off">
        {save.isError && <ErrorMessage error={save.error} />}
        {!connection && (
          <label className="field">
            <span>Name</span>
            <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="e.g. prod-ssh" data-autofocus />
          </label>
        )}
        <label className="field">
          <span>Type</span>
          <select value={type} onChange={(e) => { setType(e.target.value as ConnectionType); setForm({}); }}>
            {TYPES.map((t) => (
              <option key={t} value={t}>{t}</option>
            ))}
          </select>
        </label>
        {connection && <p className="muted small">Values are write-only: leave a field empty to keep what is set.</p>}
        {FIELDS[type].filter((field) => shown(field, form.auth ?? "", !!connection)).map((field) => (
          <FieldInput key={`${type}-${field.name}`} field={field} value={form[field.name] ?? ""} isSet={set.has(field.name) || (field.kind === "env" && set.size > 0)} onChange={(v) => update(field.name, v)} />
        ))}
        <label className="field">
          <span>Description</span>
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
      </form>
    </Dialog>
  );
}

function FieldInput({ field, value, isSet, onChange }: { field: FieldSpec; value: string; isSet: boolean; onChange: (v: string) => void }) {
  const placeholder = isSet ? "set — leave empty to keep" : "";
  const id = `connection-field-${field.name}`;
  let input;
  switch (field.kind) {
    case "secret":
      input = <input id={id} type="password" value={value} placeholder={placeholder} autoComplete="new-password" onChange={(e) => onChange(e.target.value)} />;
      break;
    case "secret-area":
    case "area":
    case "env":
      input = <textarea id={id} rows={field.kind === "area" ? 3 : 4} value={value} placeholder={placeholder} spellCheck={false} className={field.kind === "area" ? undefined : "secret-text"} onChange={(e) => onChange(e.target.value)} />;
      break;
    case "number":
      input = <input id={id} type="number" value={value} placeholder={placeholder} onChange={(e) => onChange(e.target.value)} />;
      break;
    case "flag":
    case "choice": {
      const options = field.kind === "flag" ? ["true", "false"] : field.choices ?? [];
      input = (
        <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">{isSet ? "(keep as set)" : "(default)"}</option>
          {options.map((o) => (
            <option key={o} value={o}>{field.kind === "flag" ? (o === "true" ? "yes" : "no") : o}</option>
          ))}
        </select>
      );
      break;
    }
    default:
      input = <input id={id} value={value} placeholder={placeholder} onChange={(e) => onChange(e.target.value)} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>{field.label}</label>
      {input}
      {field.hint && <small className="muted">{field.hint}</small>}
    </div>
  );
}

function DeleteConnection({ connection, onClose }: { connection: Connection; onClose: () => void }) {
  const remove = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/connections/{name}", { params: { path: { name: connection.name } } })),
    done: () => `Deleted connection ${connection.name}`,
    doing: `Deleting ${connection.name}`,
    invalidate: "connections",
    onClose,
  });
  return (
    <ConfirmDialog title={`Delete connection ${connection.name}?`} confirmLabel={`Delete ${connection.name}`} busy={remove.isPending} onConfirm={() => remove.mutate()} onClose={onClose}>
      <p>Steps that name <code>{connection.reference}</code> fail at once from now on.</p>
    </ConfirmDialog>
  );
}
