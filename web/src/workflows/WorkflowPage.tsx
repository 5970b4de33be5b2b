// One workflow: description, params, triggers, versions and its recent runs.
import { useQuery } from "@tanstack/react-query";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, call } from "../api/client";
import { useCan } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, formatDuration, relativeTime } from "../components/format";
import { StatusBadge } from "../components/status";
import { useDefinition, useWorkflow } from "./api";
import { RunDialog } from "./RunDialog";
import { TriggersCard } from "./TriggersCard";

export default function WorkflowPage() {
  const { id } = useParams();
  const [search, setSearch] = useSearchParams();
  const workflow = useWorkflow(id);
  const definition = useDefinition(id, workflow.data?.latest_version ?? undefined);
  const canRun = useCan("workflows:run");
  const canEdit = useCan("workflows:update");
  const runs = useQuery({
    queryKey: ["executions", "list", "of", id],
    enabled: !!id,
    queryFn: () => call(api.GET("/api/v1/executions", { params: { query: { workflow: id, limit: 20 } } })),
  });
  const versions = useQuery({
    queryKey: ["workflows", "versions", id],
    enabled: !!id,
    queryFn: () => call(api.GET("/api/v1/workflows/{workflow_id}/versions", { params: { path: { workflow_id: id! } } })),
  });
  if (workflow.isError) return <ErrorMessage error={workflow.error} />;
  const wf = workflow.data;
  if (!wf) return <p className="muted">Loading…</p>;
  const params = definition.data?.params ?? {};
  return (
    <section aria-labelledby="wfd-title" className="workflow-detail">
      <div className="page-head">
        <h1 id="wfd-title">{wf.name}</h1>
        <StatusBadge status={wf.status} kind="workflow" />
        {canRun && wf.latest_version !== null && (
          <button type="button" className="primary" onClick={() => setSearch({ run: "1" })}>
            ▶ Run
          </button>
        )}
        <Link className="button" to={`/executions?workflow=${encodeURIComponent(wf.id)}`}>
          All runs
        </Link>
        {canEdit && (
          <Link className="button" to={`/workflows/${encodeURIComponent(wf.id)}/edit`}>
            ✎ Edit
          </Link>
        )}
      </div>
      <p>{wf.description}</p>
      <div className="two-col">
        <div className="card">
          <h2>Params</h2>
          {Object.keys(params).length === 0 ? (
            <p className="muted">None.</p>
          ) : (
            <table className="table compact">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Type</th>
                  <th scope="col">Default</th>
                  <th scope="col">Description</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(params).map(([name, p]) => (
                  <tr key={name}>
                    <td>
                      <code>{name}</code>
                      {p.required ? " *" : ""}
                    </td>
                    <td>{p.type ?? "string"}</td>
                    <td>{p.default === undefined || p.default === null ? "—" : String(p.default)}</td>
                    <td>{p.description}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2>Triggers</h2>
          <TriggersCard workflowId={wf.id} />
          <h2>Versions</h2>
          <ul className="plain">
            {(versions.data ?? []).map((v) => (
              <li key={v.number}>
                <Link to={`/workflows/${encodeURIComponent(wf.id)}/edit?tab=versions&v=${v.number}`}>v{v.number}</Link> <span className="muted small" title={exactTime(v.created_at)}>{relativeTime(v.created_at)} by {v.created_by ?? "—"}</span>
              </li>
            ))}
            {versions.data?.length === 0 && <li className="muted">Not published yet.</li>}
          </ul>
        </div>
        <div className="card">
          <h2>Recent runs</h2>
          {runs.data?.items.length === 0 && <p className="muted">No runs yet.</p>}
          <ul className="plain run-list">
            {runs.data?.items.map((r) => (
              <li key={r.id}>
                <Link to={`/executions/${r.id}`}>
                  <StatusBadge status={r.status} /> <span className="muted small">{relativeTime(r.created_at)}</span> <span className="small">{formatDuration(r.duration_ms)}</span>
                </Link>
              </li>
            ))}
          </ul>
        </div>
      </div>
      {search.get("run") && <RunDialog workflowId={wf.id} onClose={() => setSearch({})} />}
    </section>
  );
}
