import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, useContext, useMemo, useRef, useState } from "react";
import { api, call } from "../api/client";
import type { StepSpec } from "../api/types";
import { AnswerDialog } from "../approvals/AnswerDialog";
import { useCan } from "../auth/session";
import { ConfirmDialog } from "../components/Dialog";
import { elapsed, formatDuration } from "../components/format";
import { useNow, useRowKeys } from "../components/hooks";
import { agentWaitText, shownStepStatus, StatusBadge } from "../components/status";
import { useToast } from "../components/Toast";
import { stepTimes, type ExecutionView, type JobRow, type StepRow } from "./api";
import { SshHostsTable, sshHosts } from "./SshHosts";
import { FanOutItems, FanOutProgress } from "./FanOutItems";
import { attemptNumbers, hasOpenItems, queuedItems } from "./fanOut";
import { ReopenStream } from "./useExecutionStream";
import { acceptsStepActions, stepActions } from "./actions";


/** Whether a step's outputs hold a Terraform plan (its change counts or text) to show. */
function hasPlan(outputs: Record<string, unknown>): boolean {
  return typeof outputs.plan_text === "string" || (typeof outputs.changes === "object" && outputs.changes !== null);
}

export function useApprovalContext(executionId: string, step: string, enabled: boolean) {
  return useQuery({
    queryKey: ["approvals", "context", executionId, step],
    enabled,
    queryFn: () => call(api.GET("/api/v1/executions/{execution_id}/approvals/{step_id}", { params: { path: { execution_id: executionId, step_id: step } } })),
  });
}

export function StepList({
  ex,
  specs,
  selected,
  selectedItem = null,
  onSelect,
  onSelectItem = () => undefined,
  onViewPlan,
}: {
  ex: ExecutionView;
  specs: StepSpec[];
  selected: string | null;
  /** The item of the selected step whose log shows, if one is chosen. */
  selectedItem?: number | null;
  onSelect: (id: string) => void;
  onSelectItem?: (step: string, item: number | null) => void;
  onViewPlan: (id: string) => void;
}) {
  const list = useRef<HTMLUListElement>(null);
  useRowKeys(list);
  const byId = new Map((ex.steps as StepRow[]).map((s) => [s.id, s]));
  const ordered = specs.map((s) => ({ spec: s, step: byId.get(s.id) }));
  const running = ex.steps.some((s) => s.status === "running" || s.status === "waiting");
  const now = useNow(running);
  return (
    <>
      <h2 className="pane-title">Steps</h2>
      <ul className="step-list" ref={list}>
        {ordered.map(({ spec, step }) => (
          <StepItem
            key={spec.id}
            ex={ex}
            spec={spec}
            specs={specs}
            step={step}
            selected={selected === spec.id}
            selectedItem={selected === spec.id ? selectedItem : null}
            onSelect={() => onSelect(spec.id)}
            onSelectItem={(item) => onSelectItem(spec.id, item)}
            onViewPlan={() => onViewPlan(spec.id)}
            now={now}
          />
        ))}
      </ul>
    </>
  );
}

function StepItem({
  ex,
  spec,
  specs,
  step,
  selected,
  selectedItem,
  onSelect,
  onSelectItem,
  onViewPlan,
  now,
}: {
  ex: ExecutionView;
  spec: StepSpec;
  specs: StepSpec[];
  step: StepRow | undefined;
  selected: boolean;
  selectedItem: number | null;
  onSelect: () => void;
  onSelectItem: (item: number | null) => void;
  onViewPlan: () => void;
  now: number;
}) {
  const status = step?.status ?? "pending";
  const shown = step ? shownStepStatus(step) : status;
  const fan = step?.fan_out ?? null;
  const jobsById = useMemo(() => new Map((step?.jobs ?? []).map((j) => [j.id, j])), [step?.jobs]);
  const queued = fan ? queuedItems(step?.items ?? [], jobsById) : 0;
  const [open, setOpen] = useState(selectedItem !== null);
  const [confirm, setConfirm] = useState<null | "retry" | "from_here" | "skip" | "cancel_items">(null);
  const [answer, setAnswer] = useState<null | "approve" | "reject">(null);
  const canRetry = useCan("executions:retry");
  const canAnswer = useCan("approvals:respond");
  const canCancel = useCan("executions:cancel");
  const client = useQueryClient();
  const toast = useToast();
  const reopen = useContext(ReopenStream);
  const times = step ? stepTimes(step) : { start: null, end: null };
  const duration = times.start ? elapsed(times.start, times.end, now) : null;
  // A fanned-out step's jobs are its items' attempts: the items say those, not the step.
  const attempts = fan ? 0 : (step?.jobs.filter((j) => j.purpose !== "cleanup").length ?? 0);
  const waitingGate = status === "waiting" && spec.type === "approval";
  const context = useApprovalContext(ex.id, spec.id, waitingGate && canAnswer);

  const act = useMutation({
    mutationFn: (what: "retry" | "from_here" | "skip" | "cancel_items") => {
      const path = { params: { path: { execution_id: ex.id, step_id: spec.id } } };
      if (what === "skip") return call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/skip", path));
      if (what === "cancel_items") return call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/cancel", { ...path, body: {} }));
      return call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/retry", { ...path, body: { from_here: what === "from_here" } }));
    },
    onSuccess: (_, what) => {
      toast.ok(
        what === "skip"
          ? `Skipped ${spec.id}`
          : what === "cancel_items"
            ? `Cancelled the items of ${spec.id} that had not ended`
            : `Retrying ${spec.id}${what === "from_here" ? " and the steps after it" : ""}`,
      );
      setConfirm(null);
      reopen();
      void client.invalidateQueries({ queryKey: ["executions"] });
    },
    onError: (err, what) => {
      setConfirm(null);
      toast.error(err, what === "skip" ? "Skip" : what === "cancel_items" ? "Cancel items" : "Retry");
    },
  });

  // only what the server accepts: an ended completed run offers no retry (it answers 409)
  const actions = step ? stepActions(ex, spec, status, specs) : [];
  return (
    <li className={`step-item${selected ? " selected" : ""}`}>
      <div className="step-row">
        <button type="button" className="step-select" onClick={onSelect} aria-pressed={selected} data-row data-step={spec.id}>
          <StatusBadge status={shown} />
          <span className="step-name">{spec.name || spec.id}</span>
        </button>
        <span className="step-time muted small">{duration !== null ? formatDuration(duration) : ""}</span>
        {attempts > 1 && <span className="muted small" title="attempts">×{attempts}</span>}
        <button type="button" className="icon-button small" aria-expanded={open} aria-label={fan ? `Items of ${spec.id}` : `Details of ${spec.id}`} onClick={() => setOpen((o) => !o)}>
          {open ? "▾" : "▸"}
        </button>
      </div>
      {fan && <FanOutProgress step={spec.id} fan={fan} queued={queued} />}
      {step?.pending_reason && status !== "succeeded" && (
        <div className="muted small step-reason" data-step-reason={spec.id}>
          {shown === "queued" ? agentWaitText(step.pending_reason) : step.pending_reason}
        </div>
      )}
      {step?.error && <div className={`small ${status === "skipped" ? "muted step-reason" : "step-error"}`}>{step.error}</div>}
      <div className="step-actions">
        {step && hasPlan(step.outputs) && (
          <button type="button" className="small" onClick={onViewPlan}>
            {typeof step.outputs.plan_text === "string" ? "View plan" : "View changes"}
          </button>
        )}
        {canRetry && actions.includes("retry") && (
          <button type="button" className="small" onClick={() => setConfirm("retry")}>
            Retry step
          </button>
        )}
        {canRetry && actions.includes("from_here") && (
          <button type="button" className="small" onClick={() => setConfirm("from_here")}>
            Retry from here
          </button>
        )}
        {canRetry && actions.includes("skip") && (
          <button type="button" className="small" onClick={() => setConfirm("skip")}>
            Skip
          </button>
        )}
        {canCancel && fan && status === "running" && hasOpenItems(fan) && (
          <button type="button" className="small danger-text" onClick={() => setConfirm("cancel_items")}>
            Cancel items
          </button>
        )}
        {waitingGate && canAnswer && context.data?.can_respond && (
          <>
            <button type="button" className="small primary" onClick={() => setAnswer("approve")}>
              Approve
            </button>
            <button type="button" className="small danger" onClick={() => setAnswer("reject")}>
              Reject
            </button>
          </>
        )}
        {waitingGate && (!canAnswer || (context.data && !context.data.can_respond)) && (
          <span className="muted small">You cannot answer: {context.data?.why_not ?? "your role lacks approvals:respond"}</span>
        )}
      </div>
      {open && step && fan && (
        <FanOutItems
          executionId={ex.id}
          step={spec.id}
          stepStatus={status}
          allowSkip={!!spec.allow_skip}
          resumable={acceptsStepActions(ex)}
          items={step.items ?? []}
          jobs={jobsById}
          selectedItem={selectedItem}
          onSelectItem={onSelectItem}
          now={now}
        />
      )}
      {open && step && fan && selectedItem !== null && (
        <section className="item-attempts" aria-label={`Attempts of item #${selectedItem} of ${spec.id}`}>
          <h3 className="small">Attempts of item #{selectedItem}</h3>
          <JobDetails
            jobs={(step.jobs as JobRow[]).filter((j) => j.item === selectedItem)}
            result={null}
            waitingFor={step.pending_reason}
            numbers={attemptNumbers(step.jobs)}
            empty="This item has not started."
          />
        </section>
      )}
      {open && step && !fan && <JobDetails jobs={step.jobs as JobRow[]} result={step.result} waitingFor={shown === "queued" ? step.pending_reason : null} />}
      {open && !step && <p className="muted small">Not started.</p>}
      {confirm && (
        <ConfirmDialog
          title={
            confirm === "skip"
              ? `Skip ${spec.id}?`
              : confirm === "cancel_items"
                ? `Cancel the items of ${spec.id} that have not ended?`
                : `Retry ${spec.id}${confirm === "from_here" ? " and everything after it" : ""}?`
          }
          confirmLabel={confirm === "skip" ? "Skip step" : confirm === "cancel_items" ? "Cancel items" : "Retry"}
          danger={confirm === "cancel_items"}
          busy={act.isPending}
          onConfirm={() => act.mutate(confirm)}
          onClose={() => setConfirm(null)}
        >
          <p>
            {confirm === "skip"
              ? "The step counts as skipped and the steps after it go on."
              : confirm === "cancel_items"
                ? `Every item of ${spec.id} still pending, waiting or running is cancelled (their jobs are stopped); items that ended keep their result.`
                : confirm === "from_here"
                  ? "This step runs again, and so does every step that depends on it."
                  : fan
                    ? "Its items that did not succeed run again, each as a new attempt; steps after it wait for the result."
                    : "This step runs again as a new attempt; steps after it wait for the result."}
          </p>
        </ConfirmDialog>
      )}
      {answer && <AnswerDialog executionId={ex.id} step={spec.id} decision={answer} message={context.data?.message} onClose={() => setAnswer(null)} />}
    </li>
  );
}

/** Each attempt of a step (or of one item: `labels` then numbers them per item). */
function JobDetails({
  jobs,
  result,
  waitingFor,
  numbers,
  empty = "No job ran for this step.",
}: {
  jobs: JobRow[];
  result: string | null | undefined;
  waitingFor: string | null | undefined;
  /** Attempt numbers to show instead of the jobs' own (`attemptNumbers`). */
  numbers?: ReadonlyMap<string, number>;
  empty?: string;
}) {
  if (jobs.length === 0) return <p className="muted small">{result ? `Result: ${result}` : empty}</p>;
  return (
    <div className="job-details">
      {jobs.map((j) => {
        const response = (j.outputs as Record<string, unknown>).status_code ?? (j.outputs as Record<string, unknown>).status;
        const hosts = sshHosts(j.action, j.outputs as Record<string, unknown>);
        return (
          <Fragment key={j.id}>
            <dl className="job">
              <div>
                <dt>Attempt</dt>
                <dd>
                  {numbers?.get(j.id) ?? j.attempt}
                  {j.purpose === "cleanup" ? " (cleanup)" : ""} <StatusBadge status={j.status} />
                  {waitingFor && j.status === "pending" && <span className="muted small"> {agentWaitText(waitingFor)}</span>}
                </dd>
              </div>
              {j.action && (
                <div>
                  <dt>Action</dt>
                  <dd><code>{j.action}</code></dd>
                </div>
              )}
              <div>
                <dt>Agent</dt>
                <dd>{j.agent_id ?? "—"}</dd>
              </div>
              <div>
                <dt>Duration</dt>
                <dd>{formatDuration(j.duration_ms)}</dd>
              </div>
              <div>
                <dt>Exit code</dt>
                <dd>{j.exit_code ?? "—"}</dd>
              </div>
              {response !== undefined && (
                <div>
                  <dt>HTTP status</dt>
                  <dd>{String(response)}</dd>
                </div>
              )}
              {j.error && (
                <div className="job-error">
                  <dt>Error</dt>
                  <dd>{j.error}</dd>
                </div>
              )}
            </dl>
            {hosts && <SshHostsTable hosts={hosts} label={`Hosts of attempt ${j.attempt}`} />}
          </Fragment>
        );
      })}
    </div>
  );
}
