// A workflow's triggers as the server keeps them: where each is reached (hook URL, copyable),
// when a schedule fires next and fired last, and what reached it last (deliveries).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router-dom";
import { api, call, type Schemas } from "../api/client";
import { useCan } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useToast } from "../components/Toast";
import { StatusBadge, TriggerIcon } from "../components/status";

type TriggerListed = Schemas["TriggerListed"];
type ScheduleOut = Schemas["ScheduleOut"];
type DeliveryOut = Schemas["DeliveryOut"];

/** A delivery's outcome in the status palette: a run started is green, a refusal red, the
 *  rest (filtered out, deduplicated) gray. The word is always shown beside the colour. */
const OUTCOME_TONE: Record<string, string> = { started: "green", refused: "red", filtered: "gray", deduplicated: "gray" };

export function TriggersCard({ workflowId }: { workflowId: string }) {
  const triggers = useQuery({
    queryKey: ["workflows", "triggers", workflowId],
    queryFn: () => call(api.GET("/api/v1/workflows/{workflow_id}/triggers", { params: { path: { workflow_id: workflowId } } })),
    refetchInterval: 30_000,
  });
  const hasSchedule = (triggers.data ?? []).some((t) => t.type === "schedule");
  const schedules = useQuery({
    queryKey: ["schedules"],
    enabled: hasSchedule,
    queryFn: () => call(api.GET("/api/v1/schedules")),
    refetchInterval: 30_000,
  });
  if (triggers.isError) return <ErrorMessage error={triggers.error} onRetry={() => void triggers.refetch()} />;
  const byName = new Map((schedules.data ?? []).filter((s) => s.workflow_id === workflowId).map((s) => [s.name, s]));
  return (
    <ul className="plain trigger-cards" aria-label="Triggers">
      <li>
        <TriggerIcon type="manual" withLabel /> <span className="muted small">Run button, API, CLI</span>
      </li>
      {triggers.isPending && <li className="muted">Loading…</li>}
      {(triggers.data ?? []).map((t) => (
        <TriggerItem key={t.name} workflowId={workflowId} trigger={t} schedule={byName.get(t.name)} />
      ))}
    </ul>
  );
}

function TriggerItem({ workflowId, trigger: t, schedule }: { workflowId: string; trigger: TriggerListed; schedule: ScheduleOut | undefined }) {
  const canSwitch = useCan("workflows:update");
  const toast = useToast();
  const client = useQueryClient();
  const path = { params: { path: { workflow_id: workflowId, name: t.name } } };
  const toggle = useMutation({
    mutationFn: () =>
      t.enabled
        ? call(api.POST("/api/v1/workflows/{workflow_id}/triggers/{name}/disable", path))
        : call(api.POST("/api/v1/workflows/{workflow_id}/triggers/{name}/enable", path)),
    onSuccess: (out) => {
      toast.ok(`Trigger ${out.name} ${out.enabled ? "enabled" : "disabled"}`);
      void client.invalidateQueries({ queryKey: ["workflows", "triggers", workflowId] });
      void client.invalidateQueries({ queryKey: ["schedules"] });
    },
    onError: (err) => toast.error(err, `${t.enabled ? "Disabling" : "Enabling"} trigger ${t.name}`),
  });
  return (
    <li className="trigger-card" data-trigger={t.name}>
      <div className="trigger-head">
        <TriggerIcon type={t.type} withLabel /> <strong>{t.name}</strong>{" "}
        <span className={`badge tone-${t.enabled ? "green" : "gray"}`}>{t.enabled ? "enabled" : "disabled"}</span>
        {canSwitch && (
          <button type="button" className="link-button small" disabled={toggle.isPending} onClick={() => toggle.mutate()} aria-label={`${t.enabled ? "Disable" : "Enable"} ${t.name}`}>
            {t.enabled ? "Disable" : "Enable"}
          </button>
        )}
      </div>
      <TriggerWhat trigger={t} />
      {t.url && <HookUrl url={t.url} secret={t.secret} />}
      {t.type === "schedule" && <ScheduleFires schedule={schedule} />}
      {t.url && <Deliveries items={t.last_deliveries} />}
    </li>
  );
}

/** One line on what the trigger listens for, from its spec. */
function TriggerWhat({ trigger: t }: { trigger: TriggerListed }) {
  const spec = t.spec as Record<string, unknown>;
  const list = (v: unknown, fallback: string) => (Array.isArray(v) ? v.map(String).join(", ") : fallback);
  if (t.type === "workflow") {
    const upstream = String(spec.workflow);
    return (
      <div className="small">
        after a run of <Link to={`/workflows/${encodeURIComponent(upstream)}`}>{upstream}</Link> ends {list(spec.statuses, "completed")}
      </div>
    );
  }
  let what: string | null = null;
  if (t.type === "schedule") what = `${String(spec.cron)} (${String(spec.timezone ?? "UTC")})`;
  else if (t.type === "git") what = `${String(spec.repository ?? "")} · ${list(spec.branches, "any branch")}`;
  else if (t.type === "incident" && spec.match) what = Object.entries(spec.match as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`).join(" ");
  return what ? (
    <div className="small">
      <code>{what}</code>
    </div>
  ) : null;
}

function HookUrl({ url, secret }: { url: string; secret: string | null }) {
  const toast = useToast();
  const copy = () => {
    navigator.clipboard.writeText(url).then(
      () => toast.ok("Hook URL copied"),
      (err: unknown) => toast.error(err, "Copying the hook URL"),
    );
  };
  return (
    <div className="hook-url small">
      <code data-testid="hook-url">{url}</code>{" "}
      <button type="button" className="link-button small" onClick={copy} aria-label={`Copy ${url}`}>
        Copy
      </button>
      {secret && <span className="muted"> · {secret === "generated" ? "generated secret (rotate to read)" : secret}</span>}
    </div>
  );
}

function ScheduleFires({ schedule }: { schedule: ScheduleOut | undefined }) {
  if (!schedule) return <div className="muted small">Loading schedule…</div>;
  const last = schedule.last_fire;
  return (
    <div className="small">
      <div>
        Next: {schedule.next_fire_at ?? <span className="muted">not while paused or disabled</span>}
      </div>
      <div>
        Last:{" "}
        {last ? (
          <>
            {last.instant}{" "}
            {last.execution_id ? (
              <Link to={`/executions/${last.execution_id}`}>{last.status ? <StatusBadge status={last.status} /> : last.execution_id}</Link>
            ) : (
              <span className="badge tone-red">not started</span>
            )}
            {last.error && <span className="muted"> {last.error}</span>}
          </>
        ) : (
          <span className="muted">never fired</span>
        )}
      </div>
    </div>
  );
}

function Deliveries({ items }: { items: DeliveryOut[] }) {
  if (items.length === 0) return <div className="muted small">No deliveries yet.</div>;
  return (
    <table className="table compact deliveries" aria-label="Last deliveries">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Outcome</th>
          <th scope="col">Reason</th>
          <th scope="col">Run</th>
        </tr>
      </thead>
      <tbody>
        {items.map((d) => (
          <tr key={d.id}>
            <td title={exactTime(d.received_at)}>{relativeTime(d.received_at)}</td>
            <td>
              <span className={`badge tone-${OUTCOME_TONE[d.outcome] ?? "gray"}`}>
                {d.outcome} {d.status_code}
              </span>
            </td>
            <td>{d.reason || "—"}</td>
            <td>{d.execution_id ? <Link to={`/executions/${d.execution_id}`}>{d.execution_id.slice(0, 8)}</Link> : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
