import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api, call } from "../api/client";
import { useCan } from "../auth/session";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useRowKeys, useSlashFocus } from "../components/hooks";
import { StatusBadge, TriggerIcon } from "../components/status";
import { useToast } from "../components/Toast";
import type { WorkflowRow } from "./api";
import { RunDialog } from "./RunDialog";

/** Splits the search box into free text and `key=value` label filters. */
export function parseSearch(text: string): { q: string; labels: string[] } {
  const labels: string[] = [];
  const words: string[] = [];
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    if (/^[^=\s]+=[^=\s]*$/.test(word)) labels.push(word);
    else words.push(word);
  }
  return { q: words.join(" "), labels };
}

export default function WorkflowsPage() {
  const [search, setSearch] = useSearchParams();
  // The box is the source while typing; the URL follows it (shareable, survives a reload).
  const [text, setText] = useState(() => search.get("q") ?? "");
  const running = search.get("run");
  const searchBox = useRef<HTMLInputElement>(null);
  const list = useRef<HTMLTableSectionElement>(null);
  useSlashFocus(searchBox);
  useRowKeys(list);
  const { q, labels } = parseSearch(text);
  const canRun = useCan("workflows:run");
  const canEdit = useCan("workflows:update");

  const workflows = useQuery({
    queryKey: ["workflows", "list", q, labels],
    queryFn: () =>
      call(
        api.GET("/api/v1/workflows", {
          params: { query: { q: q || undefined, label: labels.length ? labels : undefined, limit: 500 } },
        }),
      ),
    refetchInterval: (query) =>
      query.state.data?.items.some((w) => w.last_run && ["pending", "running", "paused"].includes(w.last_run.status))
        ? 5000
        : false,
  });

  const setParam = (key: string, value: string | null) => {
    const next = new URLSearchParams(search);
    if (value) next.set(key, value);
    else next.delete(key);
    setSearch(next, { replace: key === "q" });
  };

  return (
    <section aria-labelledby="wf-title">
      <div className="page-head">
        <h1 id="wf-title">Workflows</h1>
        {canEdit && (
          <Link className="button primary" to="/workflows/new">
            ＋ New workflow
          </Link>
        )}
        <label className="search">
          <span className="visually-hidden">Search workflows</span>
          <input
            ref={searchBox}
            type="search"
            placeholder="Search by name, or label=value  ( / )"
            value={text}
            onChange={(e) => {
              setText(e.target.value);
              setParam("q", e.target.value || null);
            }}
          />
        </label>
      </div>
      {workflows.isError && <ErrorMessage error={workflows.error} onRetry={() => void workflows.refetch()} />}
      {workflows.isPending && <p className="muted">Loading workflows…</p>}
      {workflows.data && workflows.data.items.length === 0 && (
        <div className="empty">
          <p>{text ? "No workflow matches this search." : "No workflows yet. Add one with `opsflow apply` or the API."}</p>
        </div>
      )}
      {workflows.data && workflows.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Status</th>
                <th scope="col">Triggers</th>
                <th scope="col">Last run</th>
                <th scope="col">Success</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody ref={list}>
              {workflows.data.items.map((wf) => (
                <WorkflowRowView key={wf.id} wf={wf} canRun={canRun} canEdit={canEdit} onRun={() => setParam("run", wf.id)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {running && <RunDialog workflowId={running} onClose={() => setParam("run", null)} />}
    </section>
  );
}

function WorkflowRowView({ wf, canRun, canEdit, onRun }: { wf: WorkflowRow; canRun: boolean; canEdit: boolean; onRun: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [duplicating, setDuplicating] = useState(false);
  const refresh = () => client.invalidateQueries({ queryKey: ["workflows"] });
  const path = { params: { path: { workflow_id: wf.id } } };

  const toggle = useMutation({
    mutationFn: () =>
      wf.status === "active"
        ? call(api.POST("/api/v1/workflows/{workflow_id}/pause", path))
        : call(api.POST("/api/v1/workflows/{workflow_id}/resume", path)),
    onSuccess: () => {
      toast.ok(wf.status === "active" ? `Paused ${wf.name}` : `Resumed ${wf.name}`);
      void refresh();
    },
    onError: (err) => toast.error(err, wf.status === "active" ? "Pause" : "Resume"),
  });
  const remove = useMutation({
    mutationFn: () => call(api.DELETE("/api/v1/workflows/{workflow_id}", path)),
    onSuccess: () => {
      toast.ok(`Deleted ${wf.name}`);
      setConfirmDelete(false);
      void refresh();
    },
    onError: (err) => toast.error(err, "Delete"),
  });

  const triggers = wf.trigger_types;
  const last = wf.last_run;
  return (
    <tr>
      <td>
        <Link to={`/workflows/${wf.id}`} className="row-title" data-row>
          {wf.name}
        </Link>
        <div className="muted small clamp">{wf.description || wf.id}</div>
        {Object.keys(wf.labels).length > 0 && (
          <div className="labels">
            {Object.entries(wf.labels).map(([k, v]) => (
              <span key={k} className="label-chip">
                {k}={String(v)}
              </span>
            ))}
          </div>
        )}
      </td>
      <td data-label="Status">
        <StatusBadge status={wf.status} kind="workflow" />
      </td>
      <td data-label="Triggers">
        <span className="trigger-list" aria-label={`Triggers: ${triggers.join(", ")}`}>
          {triggers.map((t) => (
            <TriggerIcon key={t} type={t} />
          ))}
        </span>
      </td>
      <td data-label="Last run">
        {last ? (
          <Link to={`/executions/${last.id}`} className="last-run">
            <span className="visually-hidden">Last run: </span>
            <StatusBadge status={last.status} />
            <span className="muted small" title={exactTime(last.created_at)}>
              {/* An execution pauses only at an approval gate; said in words, so a "Paused" run
                  beside an "Active" workflow does not read as the workflow being paused. */}
              {last.status === "paused" ? "waiting for approval · " : ""}
              {relativeTime(last.created_at)}
            </span>
          </Link>
        ) : (
          <span className="muted">Never run</span>
        )}
      </td>
      <td data-label="Success">
        {wf.success_rate === null ? (
          <span className="muted">—</span>
        ) : (
          <span title={`of the last ${wf.ended_runs} ended runs`}>{Math.round(wf.success_rate * 100)}%</span>
        )}
      </td>
      <td className="cell-actions">
        <div className="actions">
        {canRun && (
          <button type="button" className="primary small" onClick={onRun} disabled={wf.latest_version === null} title={wf.latest_version === null ? "Publish a version first" : undefined} aria-label={`Run ${wf.name}`}>
            ▶ Run
          </button>
        )}
        <Link className="button small" to={`/executions?workflow=${encodeURIComponent(wf.id)}`} aria-label={`View runs of ${wf.name}`}>
          View runs
        </Link>
        {canEdit && (
          <>
            <Link className="button small" to={`/workflows/${encodeURIComponent(wf.id)}/edit`} aria-label={`Edit ${wf.name}`}>
              Edit
            </Link>
            {wf.status !== "draft" && (
              <button type="button" className="small" onClick={() => toggle.mutate()} disabled={toggle.isPending} aria-label={`${wf.status === "active" ? "Pause" : "Resume"} ${wf.name}`}>
                {wf.status === "active" ? "Pause" : "Resume"}
              </button>
            )}
            <button type="button" className="small" onClick={() => setDuplicating(true)} aria-label={`Duplicate ${wf.name}`}>
              Duplicate
            </button>
            <button type="button" className="small danger-text" onClick={() => setConfirmDelete(true)} aria-label={`Delete ${wf.name}`}>
              Delete
            </button>
          </>
        )}
        {confirmDelete && (
          <ConfirmDialog title={`Delete ${wf.name}?`} confirmLabel="Delete workflow" busy={remove.isPending} onConfirm={() => remove.mutate()} onClose={() => setConfirmDelete(false)}>
            <p>
              The workflow <strong>{wf.id}</strong> disappears from the list and its triggers stop. Past executions stay in the history.
            </p>
          </ConfirmDialog>
        )}
        {duplicating && <DuplicateDialog wf={wf} onClose={() => setDuplicating(false)} />}
        </div>
      </td>
    </tr>
  );
}

function DuplicateDialog({ wf, onClose }: { wf: WorkflowRow; onClose: () => void }) {
  const [newId, setNewId] = useState(`${wf.id}-copy`.slice(0, 64));
  const [name, setName] = useState(`${wf.name} (copy)`);
  const client = useQueryClient();
  const toast = useToast();
  const duplicate = useMutation({
    mutationFn: () =>
      call(api.POST("/api/v1/workflows/{workflow_id}/duplicate", { params: { path: { workflow_id: wf.id } }, body: { new_id: newId, name } })),
    onSuccess: () => {
      toast.ok(`Created ${newId} as a draft`);
      void client.invalidateQueries({ queryKey: ["workflows"] });
      onClose();
    },
  });
  return (
    <Dialog
      title={`Duplicate ${wf.name}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="dup-form" className="primary" disabled={duplicate.isPending}>Duplicate</button>
        </>
      }
    >
      <form id="dup-form" onSubmit={(e) => { e.preventDefault(); duplicate.mutate(); }}>
        <label className="field">
          <span>New id</span>
          <input value={newId} onChange={(e) => setNewId(e.target.value)} required pattern="[a-z0-9]([a-z0-9\-]{0,62}[a-z0-9])?" data-autofocus />
          <small className="muted">Lower-case letters, digits and dashes.</small>
        </label>
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        {duplicate.isError && <ErrorMessage error={duplicate.error} />}
      </form>
    </Dialog>
  );
}
