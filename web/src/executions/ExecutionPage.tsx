import { lazy, Suspense, useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { API } from "../api/client";
import type { StepSpec } from "../api/types";
import { useCan } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { elapsed, exactTime, formatDuration, relativeTime } from "../components/format";
import { useNow } from "../components/hooks";
import { ACTIVE_EXECUTION, shownStepStatus, StatusBadge, triggerLabel } from "../components/status";
import { useDefinition } from "../workflows/api";
import { stepTimes, useExecution, type ExecutionView } from "./api";
import { CancelDialog } from "./CancelDialog";
import { fanOutOf } from "./fanOut";
import { progressWords } from "./progress";
import type { DagStep } from "./Dag";
import { LogPanel } from "./LogPanel";
import { StepList } from "./StepList";
import { EngineLogTab, ITEM_TABS, OutputsTab, TimelineTab, VariablesTab } from "./Tabs";
import { TriggerSource } from "./TriggerSource";
import { ReopenStream, useExecutionStream } from "./useExecutionStream";

const Dag = lazy(() => import("./Dag"));

const TABS = [
  ["logs", "Logs"],
  ["outputs", "Outputs"],
  ["variables", "Variables"],
  ["engine", "Engine log"],
  ["timeline", "Timeline"],
] as const;
type Tab = (typeof TABS)[number][0];

export default function ExecutionPage() {
  const { id } = useParams();
  const [search, setSearch] = useSearchParams();
  const selected = search.get("step");
  // The item of a fanned-out step whose log shows: `?step=deploy&item=3`.
  const itemParam = search.get("item");
  const selectedItem = selected && itemParam !== null && /^\d+$/.test(itemParam) ? Number(itemParam) : null;
  const tab = (TABS.find(([t]) => t === search.get("tab"))?.[0] ?? "logs") as Tab;
  const execution = useExecution(id);
  const ex = execution.data;
  const stream = useExecutionStream(id, { active: !!ex && ACTIVE_EXECUTION.has(ex.status) });
  const definition = useDefinition(ex?.workflow_id, ex ? ex.version : undefined);

  const setParams = (values: Record<string, string | null>) => {
    const next = new URLSearchParams(search);
    for (const [key, value] of Object.entries(values)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    setSearch(next, { replace: true });
  };
  const setParam = (key: string, value: string | null) => setParams({ [key]: value });

  const specs: StepSpec[] = useMemo(() => {
    const fromDefinition = definition.data?.steps;
    if (fromDefinition && fromDefinition.length) return fromDefinition;
    return (ex?.steps ?? []).map((s) => ({ id: s.id, type: s.type }));
  }, [definition.data, ex?.steps]);

  const dagSteps = useMemo(() => {
    const map = new Map<string, DagStep>();
    const names = new Map(specs.map((s) => [s.id, s.name || s.id]));
    for (const s of ex?.steps ?? []) {
      const t = stepTimes(s);
      const status = shownStepStatus(s);
      const reason = status === "queued" ? s.pending_reason : null;
      map.set(s.id, { id: s.id, name: names.get(s.id) ?? s.id, type: s.type, status, reason, durationMs: t.start ? elapsed(t.start, t.end) : null, ...fanOutOf(s) });
    }
    return map;
  }, [ex?.steps, specs]);

  if (execution.isError) return <ErrorMessage error={execution.error} onRetry={() => void execution.refetch()} />;
  if (!ex) return <p className="muted">Loading execution…</p>;

  const active = ACTIVE_EXECUTION.has(ex.status);
  const downloadQuery = new URLSearchParams();
  if (selected) downloadQuery.set("step", selected);
  if (selectedItem !== null) downloadQuery.set("item", String(selectedItem));
  const downloadHref = `${API}/executions/${encodeURIComponent(ex.id)}/logs/download${downloadQuery.size ? `?${downloadQuery}` : ""}`;
  const selectedStep = selected ? ex.steps.find((s) => s.id === selected) : undefined;

  return (
    <ReopenStream.Provider value={stream.reopen}>
    <section className="execution" aria-labelledby="ex-title">
      <Banner ex={ex} workflowName={definition.data?.name} />
      <div className="execution-grid">
        <details className="dag-pane card" open>
          <summary>Graph</summary>
          <Suspense fallback={<div className="dag muted">Loading graph…</div>}>
            <Dag specs={specs} steps={dagSteps} selected={selected} onSelect={(s) => setParams({ step: s === selected ? null : s, item: null })} />
          </Suspense>
        </details>
        <div className="steps-pane card">
          <StepList
            ex={ex}
            specs={specs}
            selected={selected}
            selectedItem={selectedItem}
            onSelect={(s) => setParams({ step: s, item: null })}
            onSelectItem={(s, item) => setParams({ step: s, item: item === null ? null : String(item) })}
            onViewPlan={(s) => setParams({ step: s, tab: "outputs", item: null })}
          />
        </div>
      </div>
      <div className="card tabs-card">
        <div className="tabs">
          <div className="tab-list" role="tablist" aria-label="Execution details">
            {TABS.map(([key, label]) => (
              <button
                key={key}
                type="button"
                role="tab"
                id={`tab-${key}`}
                aria-selected={tab === key}
                aria-controls={`panel-${key}`}
                tabIndex={tab === key ? 0 : -1}
                className={tab === key ? "tab on" : "tab"}
                onClick={() => setParam("tab", key === "logs" ? null : key)}
                onKeyDown={(e) => {
                  const i = TABS.findIndex(([t]) => t === tab);
                  if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
                    const next = TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length]![0];
                    setParam("tab", next === "logs" ? null : next);
                    document.getElementById(`tab-${next}`)?.focus();
                  }
                }}
              >
                {label}
              </button>
            ))}
          </div>
          {selected && (
            <span className="tab-step">
              Step <strong>{selected}</strong>
              {selectedItem !== null && ITEM_TABS.has(tab) && (
                <>
                  {" "}
                  item <strong>#{selectedItem}</strong>
                </>
              )}{" "}
              <button type="button" className="link-button small" onClick={() => setParams({ step: null, item: null })}>
                show all
              </button>
            </span>
          )}
        </div>
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="tab-panel">
          {tab === "logs" && (
            <LogPanel
              entries={stream.store.entries}
              version={stream.version}
              step={selected}
              items={selectedStep?.items}
              item={selectedItem}
              onItem={(item) => setParam("item", item === null ? null : String(item))}
              downloadHref={downloadHref}
              live={active && stream.state === "live"}
            />
          )}
          {tab === "outputs" && <OutputsTab ex={ex} selected={selected} selectedItem={selectedItem} />}
          {tab === "variables" && <VariablesTab ex={ex} />}
          {tab === "engine" && <EngineLogTab ex={ex} selected={selected} />}
          {tab === "timeline" && <TimelineTab ex={ex} onSelect={(s) => setParams({ step: s, item: null })} />}
        </div>
        {stream.state === "reconnecting" && active && (
          <p className="muted small" role="status">
            Connection lost; reconnecting and resuming where it stopped…
          </p>
        )}
      </div>
    </section>
    </ReopenStream.Provider>
  );
}

function Banner({ ex, workflowName }: { ex: ExecutionView; workflowName: string | undefined }) {
  const active = ACTIVE_EXECUTION.has(ex.status);
  const now = useNow(active);
  const canCancel = useCan("executions:cancel");
  const [cancelling, setCancelling] = useState(false);
  const duration = ex.duration_ms ?? elapsed(ex.started_at, ex.ended_at, now);
  const triggerType = ex.trigger.type;
  const actor = ex.trigger.actor ?? ex.started_by;
  const steps = progressWords(ex.progress);
  return (
    <header className={`banner tone-border-${ex.status}`}>
      <div className="banner-main">
        <StatusBadge status={ex.status} />
        <h1 id="ex-title">
          <Link to={`/workflows/${ex.workflow_id}`}>{workflowName || ex.workflow_id}</Link>{" "}
          <span className="muted">{ex.test_run ? "test run" : `v${ex.version}`}</span>
        </h1>
        {ex.cancel && active && <span className="muted small">cancelling ({String(ex.cancel.mode ?? "graceful")})…</span>}
      </div>
      <dl className="banner-facts">
        <div>
          <dt>Trigger</dt>
          <dd>
            <TriggerSource trigger={ex.trigger} />
          </dd>
        </div>
        {ex.parent && (
          <div>
            <dt>Parent</dt>
            <dd data-testid="parent">
              <Link to={`/executions/${encodeURIComponent(ex.parent.execution_id)}?step=${encodeURIComponent(ex.parent.step)}`}>
                {ex.parent.execution_id}
              </Link>{" "}
              <span className="small">
                step <strong>{ex.parent.step}</strong>
              </span>
            </dd>
          </div>
        )}
        <div>
          <dt>Started by</dt>
          <dd>{actor || "—"}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd title={exactTime(ex.started_at ?? ex.created_at)}>{relativeTime(ex.started_at ?? ex.created_at, now)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd data-testid="duration">{ex.started_at ? formatDuration(duration) : "not started"}</dd>
        </div>
        <div>
          <dt>Steps done</dt>
          <dd data-testid="steps-done">
            {steps.done}
            {steps.others && <span className="muted small"> · {steps.others}</span>}
          </dd>
        </div>
        <div className="banner-id">
          <dt>Execution</dt>
          <dd>
            <code>{ex.id}</code>
          </dd>
        </div>
      </dl>
      {ex.status_reason && <p className="banner-reason">{ex.status_reason}</p>}
      {canCancel && active && (
        <button type="button" className="danger banner-cancel" onClick={() => setCancelling(true)}>
          Cancel…
        </button>
      )}
      {cancelling && <CancelDialog executionId={ex.id} label={`${workflowName || ex.workflow_id} (${ex.id})`} onClose={() => setCancelling(false)} />}
      <span className="visually-hidden">trigger {triggerLabel(triggerType)}</span>
    </header>
  );
}
