// Every agent the server has seen: pools, labels, online or not, what it runs, and drain for
// those who may manage agents. The server's built-in agent is listed first.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { api, call, type Schemas } from "../api/client";
import { useCan } from "../auth/session";
import { Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useNow, useRowKeys } from "../components/hooks";
import { useToast } from "../components/Toast";
import "../settings/admin.css";

type Agent = Schemas["AgentOut"];

/** The in-process agent's id has the `local-` prefix (agent/identity.py). */
export function isLocalAgent(a: Pick<Agent, "id">): boolean {
  return a.id.startsWith("local-");
}

/** Built-in agents first, then online before offline, then most recently seen. */
export function agentOrder(agents: Agent[]): Agent[] {
  const rank = (a: Agent) => (isLocalAgent(a) ? 0 : a.online ? 1 : 2);
  return [...agents].sort((a, b) => rank(a) - rank(b) || b.last_seen.localeCompare(a.last_seen));
}

export default function AgentsPage() {
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: () => call(api.GET("/api/v1/agents")),
    refetchInterval: 5_000,
  });
  const canManage = useCan("agents:manage");
  const [target, setTarget] = useState<Agent | null>(null);
  const now = useNow(true, 5_000);
  const rows = useRef<HTMLTableSectionElement>(null);
  useRowKeys(rows);
  const list = agentOrder(agents.data ?? []);
  const online = list.filter((a) => a.online).length;
  return (
    <section aria-labelledby="ag-title">
      <div className="page-head">
        <h1 id="ag-title">Agents</h1>
        {agents.data && (
          <span className="muted">
            {online} online of {list.length}
          </span>
        )}
      </div>
      {agents.isError && <ErrorMessage error={agents.error} onRetry={() => void agents.refetch()} />}
      {agents.isPending && <p className="muted">Loading…</p>}
      {agents.data && list.length === 0 && (
        <div className="empty">
          <p>No agent has connected yet. Start one with <code>opsflow agent --server URL --token TOKEN</code>.</p>
        </div>
      )}
      {list.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Agents">
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">State</th>
                <th scope="col">Pools</th>
                <th scope="col">Labels</th>
                <th scope="col">Running</th>
                <th scope="col">Jobs done</th>
                <th scope="col">Last seen</th>
                <th scope="col">Version</th>
                {canManage && <th scope="col"><span className="visually-hidden">Actions</span></th>}
              </tr>
            </thead>
            <tbody ref={rows}>
              {list.map((a) => (
                <tr key={a.id} data-row tabIndex={-1} data-agent={a.id}>
                  <td>
                    <div className="row-title">
                      {a.id} {isLocalAgent(a) && <span className="label-chip">built-in</span>}
                    </div>
                    <div className="muted small">{a.hostname || "—"}</div>
                  </td>
                  <td data-label="State">
                    <AgentState agent={a} />
                  </td>
                  <td data-label="Pools">{a.pools.join(", ") || "—"}</td>
                  <td data-label="Labels">
                    {Object.entries(a.labels).length === 0
                      ? "—"
                      : Object.entries(a.labels).map(([k, v]) => (
                          <span key={k} className="label-chip">
                            {k}={v}
                          </span>
                        ))}
                  </td>
                  <td data-label="Running" title={a.running.join(", ")}>
                    {a.running.length}
                  </td>
                  <td data-label="Jobs done">
                    {a.jobs_done}
                    {a.jobs_failed > 0 && <span className="muted small"> · {a.jobs_failed} failed</span>}
                  </td>
                  <td data-label="Last seen" title={exactTime(a.last_seen)}>
                    {relativeTime(a.last_seen, now)}
                  </td>
                  <td data-label="Version">{a.version || "—"}</td>
                  {canManage && (
                    <td className="cell-actions">
                      <div className="actions">
                        <button type="button" className="small" onClick={() => setTarget(a)}>
                          {a.draining ? "Undrain" : "Drain"}
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
      {target && <DrainDialog agent={target} onClose={() => setTarget(null)} />}
    </section>
  );
}

function AgentState({ agent: a }: { agent: Agent }) {
  if (a.draining) {
    return (
      <span className="badge tone-yellow">
        <span aria-hidden="true">⏸</span> draining{a.online ? "" : ", offline"}
      </span>
    );
  }
  return a.online ? (
    <span className="badge tone-green">
      <span aria-hidden="true">●</span> online
    </span>
  ) : (
    <span className="badge tone-darkgray">
      <span aria-hidden="true">○</span> offline
    </span>
  );
}

function DrainDialog({ agent, onClose }: { agent: Agent; onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const undo = agent.draining;
  const drain = useMutation({
    mutationFn: () =>
      undo
        ? call(api.POST("/api/v1/agents/{agent_id}/undrain", { params: { path: { agent_id: agent.id } } }))
        : call(api.POST("/api/v1/agents/{agent_id}/drain", { params: { path: { agent_id: agent.id } } })),
    onSuccess: (a) => {
      toast.ok(undo ? `${a.id} takes jobs again` : `${a.id} is draining; ${a.running.length} running job(s) will finish`);
      void client.invalidateQueries({ queryKey: ["agents"] });
      onClose();
    },
    onError: (err) => toast.error(err, undo ? `Undraining ${agent.id}` : `Draining ${agent.id}`),
  });
  return (
    <Dialog
      title={undo ? `Undrain ${agent.id}?` : `Drain ${agent.id}?`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Keep as is
          </button>
          <button type="button" className={undo ? "primary" : "danger"} disabled={drain.isPending} onClick={() => drain.mutate()}>
            {undo ? "Undrain" : "Drain"} {agent.id}
          </button>
        </>
      }
    >
      <p>
        {undo
          ? "The agent will claim jobs again within a few seconds."
          : `The agent gets no more jobs; its ${agent.running.length} running job(s) finish. Its pools' queued jobs go to other agents.`}
      </p>
    </Dialog>
  );
}
