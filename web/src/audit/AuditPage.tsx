// Who did what and when: the audit log, filtered by actor, action and time. Filters live in
// the query string (?actor=&action=&since=&until=&page=), so a link shows the same entries.
import { useQuery } from "@tanstack/react-query";
import { useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api, call, type Schemas } from "../api/client";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useRowKeys, useSlashFocus } from "../components/hooks";
import "../settings/admin.css";

type Entry = Schemas["AuditOut"];
const PAGE = 50;

/** The action groups the filter offers (the API matches `action` as a prefix). */
export const ACTION_GROUPS: { value: string; label: string }[] = [
  { value: "", label: "All actions" },
  { value: "execution.run", label: "Runs started" },
  { value: "execution.cancel", label: "Cancels" },
  { value: "approval.", label: "Approvals and rejections" },
  { value: "step.", label: "Step retries and skips" },
  { value: "workflow.publish", label: "Publishes" },
  { value: "workflow.", label: "Workflow changes" },
  { value: "trigger.", label: "Trigger changes" },
  { value: "secret.", label: "Secret changes" },
  { value: "connection.", label: "Connection changes" },
  { value: "token.", label: "Token changes" },
  { value: "auth.", label: "Sign-ins and sign-outs" },
  { value: "user.", label: "User changes" },
  { value: "team.", label: "Team changes" },
  { value: "agent.", label: "Agent drains" },
  { value: "agent_token.", label: "Agent token changes" },
];

const VERBS: Record<string, string> = {
  "execution.run": "started a run",
  "execution.cancel": "cancelled a run",
  "approval.approve": "approved",
  "approval.reject": "rejected",
  "step.retry": "retried a step",
  "step.skip": "skipped a step",
  "workflow.create": "created a workflow",
  "workflow.update": "saved a draft",
  "workflow.publish": "published",
  "workflow.delete": "deleted a workflow",
  "workflow.pause": "paused a workflow",
  "workflow.resume": "resumed a workflow",
  "workflow.duplicate": "duplicated a workflow",
  "workflow.restore": "restored a version",
  "secret.create": "created a secret",
  "secret.update": "replaced a secret",
  "secret.delete": "deleted a secret",
  "connection.create": "created a connection",
  "connection.update": "changed a connection",
  "connection.enable": "enabled a connection",
  "connection.disable": "disabled a connection",
  "connection.delete": "deleted a connection",
  "connection.test": "tested a connection",
  "token.create": "created a token",
  "token.revoke": "revoked a token",
  "auth.login": "signed in",
  "auth.logout": "signed out",
  "user.create": "created a user",
  "user.update": "changed a user",
  "user.delete": "deleted a user",
  "user.password": "changed a password",
  "team.create": "created a team",
  "team.delete": "deleted a team",
  "team.member.add": "added a team member",
  "team.member.remove": "removed a team member",
  "agent.drain": "drained an agent",
  "agent.undrain": "undrained an agent",
  "agent_token.create": "created an agent token",
  "agent_token.revoke": "revoked an agent token",
  "trigger.enable": "enabled a trigger",
  "trigger.disable": "disabled a trigger",
};

/** An action in words (`approved`), or the action itself when we have no words for it. */
export function actionWords(action: string): string {
  return VERBS[action] ?? action;
}

/** Where a target leads: executions (and their steps) and workflows have pages. */
export function targetLink(e: Pick<Entry, "action" | "target">): string | null {
  const [group] = e.action.split(".");
  if (group === "execution") return `/executions/${encodeURIComponent(e.target)}`;
  if (group === "approval" || group === "step") {
    const [exec, step] = e.target.split("/");
    return exec && step ? `/executions/${encodeURIComponent(exec)}?step=${encodeURIComponent(step)}` : null;
  }
  if (group === "workflow" && e.action !== "workflow.delete") return `/workflows/${encodeURIComponent(e.target)}`;
  if (group === "trigger") return `/workflows/${encodeURIComponent(e.target.split("/")[0] ?? "")}`;
  return null;
}

/** `datetime-local` value (local time) to ISO 8601 UTC, or undefined when empty. */
export function localToIso(value: string): string | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

function detailText(detail: Entry["detail"]): string {
  return Object.entries(detail)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" · ");
}

export default function AuditPage() {
  const [search, setSearch] = useSearchParams();
  const actor = search.get("actor") ?? "";
  const action = search.get("action") ?? "";
  const since = search.get("since") ?? "";
  const until = search.get("until") ?? "";
  const page = Math.max(0, Number(search.get("page") ?? "0") || 0);
  const query = {
    actor: actor || undefined,
    action: action || undefined,
    since: localToIso(since),
    until: localToIso(until),
    limit: PAGE,
    offset: page * PAGE,
  };
  const entries = useQuery({
    queryKey: ["audit", query],
    queryFn: () => call(api.GET("/api/v1/audit", { params: { query } })),
    refetchInterval: 15_000,
    placeholderData: (previous) => previous,
  });
  const [actorText, setActorText] = useState(actor);
  const actorInput = useRef<HTMLInputElement>(null);
  useSlashFocus(actorInput);
  const rows = useRef<HTMLTableSectionElement>(null);
  useRowKeys(rows);

  const set = (changes: Record<string, string>) => {
    const next = new URLSearchParams(search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!("page" in changes)) next.delete("page");
    setSearch(next, { replace: !("page" in changes) });
  };
  const submitActor = (e: FormEvent) => {
    e.preventDefault();
    set({ actor: actorText.trim() });
  };
  const total = entries.data?.total ?? 0;
  const last = Math.max(0, Math.ceil(total / PAGE) - 1);

  return (
    <section aria-labelledby="au-title">
      <div className="page-head">
        <h1 id="au-title">Audit log</h1>
        <span className="muted">{entries.data ? `${total} entr${total === 1 ? "y" : "ies"}` : ""}</span>
      </div>
      <form className="filters" onSubmit={submitActor} aria-label="Audit filters">
        <label className="field inline">
          <span>Actor</span>
          <input
            ref={actorInput}
            value={actorText}
            onChange={(e) => setActorText(e.target.value)}
            onBlur={() => actorText.trim() !== actor && set({ actor: actorText.trim() })}
            placeholder="user name, e.g. admin"
            name="actor"
          />
        </label>
        <label className="field inline">
          <span>Action</span>
          <select value={action} onChange={(e) => set({ action: e.target.value })} name="action">
            {ACTION_GROUPS.map((g) => (
              <option key={g.value} value={g.value}>
                {g.label}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>From</span>
          <input type="datetime-local" value={since} onChange={(e) => set({ since: e.target.value })} name="since" />
        </label>
        <label className="field inline">
          <span>Until</span>
          <input type="datetime-local" value={until} onChange={(e) => set({ until: e.target.value })} name="until" />
        </label>
        <button type="submit">Filter</button>
        {(actor || action || since || until) && (
          <button
            type="button"
            className="link-button"
            onClick={() => {
              setActorText("");
              setSearch(new URLSearchParams(), { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </form>
      {entries.isError && <ErrorMessage error={entries.error} onRetry={() => void entries.refetch()} />}
      {entries.isPending && <p className="muted">Loading…</p>}
      {entries.data && entries.data.items.length === 0 && (
        <div className="empty">
          <p>No entry matches these filters.</p>
        </div>
      )}
      {entries.data && entries.data.items.length > 0 && (
        <>
          <div className="table-wrap">
            <table className="table stack-narrow" aria-label="Audit entries">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody ref={rows}>
                {entries.data.items.map((e) => {
                  const to = targetLink(e);
                  return (
                    <tr key={e.id} data-row tabIndex={-1} data-action={e.action}>
                      <td className="nowrap" title={exactTime(e.at)}>
                        {relativeTime(e.at)}
                      </td>
                      <td data-label="Actor">
                        <button type="button" className="link-button" title={`Only ${e.actor}'s actions`} onClick={() => { setActorText(e.actor); set({ actor: e.actor }); }}>
                          {e.actor}
                        </button>
                      </td>
                      <td data-label="Action">
                        <span className="row-title">{actionWords(e.action)}</span> <code className="muted small">{e.action}</code>
                      </td>
                      <td data-label="Target" className="clamp">
                        {to ? <Link to={to}>{e.target}</Link> : e.target || "—"}
                      </td>
                      <td data-label="Details" className="clamp muted small" title={detailText(e.detail)}>
                        {detailText(e.detail) || "—"}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <nav className="pager" aria-label="Pages">
            <button type="button" disabled={page === 0} onClick={() => set({ page: String(page - 1) })}>
              ← Newer
            </button>
            <span className="muted small">
              Page {page + 1} of {last + 1}
            </span>
            <button type="button" disabled={page >= last} onClick={() => set({ page: String(page + 1) })}>
              Older →
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
