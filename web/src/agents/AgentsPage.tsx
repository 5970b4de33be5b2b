// Every agent the server has seen: pools, labels, online, offline or revoked, what it runs; for those who
// may manage agents, drain and revoke, and the agent tokens remote agents register with. The
// server's built-in agent is listed first.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { api, call, type Schemas } from "../api/client";
import { useCan } from "../auth/session";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useNow, useRowKeys } from "../components/hooks";
import { useToast } from "../components/Toast";
import { useConfirmedAction } from "../components/useConfirmedAction";
import "../settings/admin.css";

type Agent = Schemas["AgentOut"];
type AgentToken = Schemas["AgentTokenOut"];
type AgentTokenCreated = Schemas["AgentTokenCreated"];

/** A server's built-in agent registers without an agent token. */
export function isLocalAgent(a: Pick<Agent, "token_id">): boolean {
  return !a.token_id;
}

/** What the agent's Actions cell offers for its token: "local" (the built-in agent has none),
 * "revoked" (its token is already revoked: nothing to revoke), "revoke", or "unknown" while
 * the token list is loading. */
export function agentRevokeState(
  a: Pick<Agent, "token_id" | "revoked">,
  tokens: Pick<AgentToken, "id" | "active">[] | undefined,
): "local" | "revoked" | "revoke" | "unknown" {
  if (isLocalAgent(a)) return "local";
  if (a.revoked) return "revoked";
  if (!tokens) return "unknown";
  const token = tokens.find((t) => t.id === a.token_id);
  return token && !token.active ? "revoked" : "revoke";
}

/** An agent's state in the words of `opsflow agents list`: "revoked" when the agent token it
 * registered with was revoked (it is refused, so offline too), else "online" or "offline".
 * Draining is said beside it. */
export function agentState(a: Pick<Agent, "online" | "revoked">): "online" | "offline" | "revoked" {
  if (a.revoked) return "revoked";
  return a.online ? "online" : "offline";
}

/** An agent's jobs in flight against its job slots (its `--concurrency`, the CLI's
 * CONCURRENCY): "1 of 4", or "1" when its slots are not known. */
export function runningText(a: Pick<Agent, "running" | "concurrency">): string {
  const running = a.running.length;
  return a.concurrency == null ? String(running) : `${running} of ${a.concurrency}`;
}

/** The Running cell's tooltip: what the count means, then the ids of the jobs it holds. */
export function runningTitle(a: Pick<Agent, "running" | "concurrency">): string {
  const slots =
    a.concurrency == null
      ? "jobs in flight (its job slots are not known)"
      : `jobs in flight of its ${a.concurrency} job slots (--concurrency)`;
  return a.running.length === 0 ? slots : `${slots}: ${a.running.join(", ")}`;
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
  const tokens = useQuery({
    queryKey: ["agents", "tokens"],
    queryFn: () => call(api.GET("/api/v1/agents/tokens")),
    refetchInterval: 10_000,
    enabled: canManage,
  });
  const [target, setTarget] = useState<Agent | null>(null);
  const [revoking, setRevoking] = useState<Agent | null>(null);
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
          <p>No agent has connected yet. Start one with <code>OPSFLOW_TOKEN=TOKEN opsflow agent --server URL</code>.</p>
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
                  <td data-label="Running" title={runningTitle(a)}>
                    {runningText(a)}
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
                        {agentRevokeState(a, tokens.data) === "revoke" && (
                          <button type="button" className="small danger-text" onClick={() => setRevoking(a)}>
                            Revoke
                          </button>
                        )}
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
      {revoking && <RevokeAgent agent={revoking} onClose={() => setRevoking(null)} />}
      {canManage && <AgentTokens />}
    </section>
  );
}

/** The State cell: revoked (with ", draining" when it was draining), draining (with ", offline"
 * when it is), online or offline. */
export function AgentState({ agent: a }: { agent: Agent }) {
  if (agentState(a) === "revoked") {
    return <RevokedBadge title={`Its agent token ${a.token_id ?? ""} is revoked: the server refuses it`} draining={a.draining} />;
  }
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

/** A revoked agent token, or an agent that registered with one: the cancelled palette (dark
 * gray, slashed circle), as UI.md gives a stopped thing; the word always shown. */
function RevokedBadge({ title, draining = false }: { title?: string; draining?: boolean }) {
  return (
    <span className="badge tone-darkgray" title={title}>
      <span aria-hidden="true">⊘</span> revoked{draining ? ", draining" : ""}
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

function RevokeAgent({ agent, onClose }: { agent: Agent; onClose: () => void }) {
  const revoke = useConfirmedAction({
    run: () => call(api.POST("/api/v1/agents/{agent_id}/revoke", { params: { path: { agent_id: agent.id } } })),
    done: (t) => `Revoked agent token ${t.name || t.id} (pool ${t.pool}): ${t.agents.join(", ")} refused from now on`,
    doing: `Revoking ${agent.id}`,
    invalidate: "agents",
    onClose,
  });
  return (
    <ConfirmDialog title={`Revoke ${agent.id}?`} confirmLabel={`Revoke ${agent.id}`} busy={revoke.isPending} onConfirm={() => revoke.mutate()} onClose={onClose}>
      <p>
        This revokes the agent token <code>{agent.token_id}</code> it registered with: every agent using that token is refused from its next
        request on, and its running jobs count as lost when their leases expire. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}

/** The agent tokens remote agents register with (one pool each): create one, shown once; revoke. */
function AgentTokens() {
  const tokens = useQuery({ queryKey: ["agents", "tokens"], queryFn: () => call(api.GET("/api/v1/agents/tokens")), refetchInterval: 10_000 });
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<AgentToken | null>(null);
  return (
    <section aria-labelledby="agent-tokens-title" className="agent-tokens">
      <div className="page-head">
        <h2 id="agent-tokens-title">Agent tokens</h2>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New agent token
        </button>
      </div>
      {tokens.isError && <ErrorMessage error={tokens.error} onRetry={() => void tokens.refetch()} />}
      {tokens.data && tokens.data.length === 0 && (
        <div className="empty">
          <p>No agent tokens yet. A remote agent needs one: <code>OPSFLOW_TOKEN=TOKEN opsflow agent --server URL</code>.</p>
        </div>
      )}
      {tokens.data && tokens.data.length > 0 && (
        <div className="table-wrap">
          <table className="table stack-narrow" aria-label="Agent tokens">
            <thead>
              <tr>
                <th scope="col">Token</th>
                <th scope="col">Pool</th>
                <th scope="col">Agents</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {tokens.data.map((t) => (
                <tr key={t.id} data-agent-token={t.id}>
                  <td>
                    <div className="row-title">{t.name || "(no name)"}</div>
                    <div className="muted small">
                      <code>{t.prefix}…</code> · {t.id}
                    </div>
                  </td>
                  <td data-label="Pool">{t.pool}</td>
                  <td data-label="Agents">{t.agents.join(", ") || "—"}</td>
                  <td data-label="State">
                    {t.active ? (
                      <span className="badge tone-green"><span aria-hidden="true">✓</span> active</span>
                    ) : (
                      <RevokedBadge />
                    )}
                  </td>
                  <td data-label="Created" title={exactTime(t.created_at)}>
                    {relativeTime(t.created_at)} by {t.created_by}
                  </td>
                  <td data-label="Last used" title={exactTime(t.last_used_at)}>{t.last_used_at ? relativeTime(t.last_used_at) : "never"}</td>
                  <td className="cell-actions">
                    <div className="actions">
                      {t.active && (
                        <button type="button" className="small danger-text" onClick={() => setRevoking(t)}>
                          Revoke
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && <NewAgentToken onClose={() => setCreating(false)} />}
      {revoking && <RevokeAgentToken token={revoking} onClose={() => setRevoking(null)} />}
    </section>
  );
}

function NewAgentToken({ onClose }: { onClose: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const [pool, setPool] = useState("default");
  const [name, setName] = useState("");
  const [created, setCreated] = useState<AgentTokenCreated | null>(null);
  const create = useMutation({
    mutationFn: () => call(api.POST("/api/v1/agents/tokens", { body: { pool, name } })),
    onSuccess: (t) => {
      setCreated(t);
      toast.ok(`Created agent token ${t.name || t.id} for pool ${t.pool}`);
      void client.invalidateQueries({ queryKey: ["agents", "tokens"] });
    },
  });
  if (created) {
    return (
      <Dialog title="Agent token created" onClose={onClose} footer={<button type="button" className="primary" onClick={onClose}>Done</button>}>
        <div className="once">
          <strong>Copy it now: it is shown only once.</strong>
          <code data-token-secret>{created.token}</code>
        </div>
        <p className="small muted">
          Start an agent of pool {created.pool} with <code>OPSFLOW_TOKEN=… opsflow agent --server {window.location.origin}</code>
        </p>
      </Dialog>
    );
  }
  return (
    <Dialog
      title="New agent token"
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="agent-token-form" className="primary" disabled={!pool.trim() || create.isPending}>Create agent token</button>
        </>
      }
    >
      <form
        id="agent-token-form"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        {create.isError && <ErrorMessage error={create.error} />}
        <label className="field">
          <span>Pool</span>
          <input value={pool} onChange={(e) => setPool(e.target.value)} required data-autofocus />
          <small className="muted">Agents with this token serve only this pool (a step's agent.pool).</small>
        </label>
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. eu-hosts" />
        </label>
      </form>
    </Dialog>
  );
}

function RevokeAgentToken({ token, onClose }: { token: AgentToken; onClose: () => void }) {
  const revoke = useConfirmedAction({
    run: () => call(api.DELETE("/api/v1/agents/tokens/{token_id}", { params: { path: { token_id: token.id } } })),
    done: () => `Revoked agent token ${token.name || token.id}`,
    doing: `Revoking ${token.name || token.id}`,
    invalidate: "agents",
    onClose,
  });
  return (
    <ConfirmDialog
      title={`Revoke agent token ${token.name || token.id}?`}
      confirmLabel={`Revoke ${token.name || token.id}`}
      busy={revoke.isPending}
      onConfirm={() => revoke.mutate()}
      onClose={onClose}
    >
      <p>
        {token.agents.length ? `${token.agents.join(", ")} (pool ${token.pool})` : `Agents of pool ${token.pool} using it`} will be refused from
        their next request on. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}
