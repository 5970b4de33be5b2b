// Run a workflow: the params form, then the run's live progress in the same dialog.
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { ApiError, api, call } from "../api/client";
import type { ParamSpec } from "../api/types";
import { AnswerDialog } from "../approvals/AnswerDialog";
import { Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { JsonView } from "../components/JsonView";
import { ACTIVE_EXECUTION, StatusBadge } from "../components/status";
import { fanOutWords } from "../executions/fanOut";
import { useExecution } from "../executions/api";
import { useApprovalContext } from "../executions/StepList";
import { useExecutionStream } from "../executions/useExecutionStream";
import { useDefinition, useWorkflow } from "./api";
import { checkParams, initialValues, ParamsForm, serverFieldErrors, type FieldErrors, type ParamValues } from "./ParamsForm";

/** The run dialog; with `test`, a test run of the draft (its params, `test: true`), which needs
 *  no published version. */
export function RunDialog({ workflowId, onClose, test = false }: { workflowId: string; onClose: () => void; test?: boolean }) {
  const workflow = useWorkflow(workflowId);
  const definition = useDefinition(workflowId, test ? undefined : (workflow.data?.latest_version ?? undefined));
  const [executionId, setExecutionId] = useState<string | null>(null);
  const title = test ? `Test run of ${workflow.data?.name ?? workflowId} (draft)` : `Run ${workflow.data?.name ?? workflowId}`;

  if (workflow.isError) {
    return (
      <Dialog title={title} onClose={onClose}>
        <ErrorMessage error={workflow.error} />
      </Dialog>
    );
  }
  if (!workflow.data || !definition.data || (!test && !workflow.data.latest_version)) {
    return (
      <Dialog title={title} onClose={onClose}>
        {workflow.data && !test && !workflow.data.latest_version ? <p>Publish a version of this workflow before running it.</p> : <p className="muted">Loading…</p>}
      </Dialog>
    );
  }
  if (executionId) {
    return <RunProgress title={title} executionId={executionId} onClose={onClose} onAgain={() => setExecutionId(null)} />;
  }
  return <RunForm title={title} workflowId={workflowId} test={test} params={definition.data.params ?? {}} onClose={onClose} onStarted={setExecutionId} />;
}

function RunForm({
  title,
  workflowId,
  test,
  params,
  onClose,
  onStarted,
}: {
  title: string;
  workflowId: string;
  test: boolean;
  params: Record<string, ParamSpec>;
  onClose: () => void;
  onStarted: (id: string) => void;
}) {
  const [values, setValues] = useState<ParamValues>(() => initialValues(params));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [other, setOther] = useState<unknown>(null);
  const start = useMutation({
    mutationFn: (body: Record<string, unknown>) => call(api.POST("/api/v1/workflows/{workflow_id}/runs", { params: { path: { workflow_id: workflowId } }, body: { params: body, params_as_text: false, test } })),
    onSuccess: (ex) => onStarted(ex.id),
    onError: (err) => {
      if (err instanceof ApiError && err.fieldErrors.length) {
        const mapped = serverFieldErrors(err.fieldErrors);
        setErrors(mapped.fields);
        setOther(mapped.other.length ? new ApiError(err.status, err.title, mapped.other.join("; ")) : null);
      } else setOther(err);
    },
  });
  const submit = () => {
    const checked = checkParams(params, values);
    setErrors(checked.errors);
    setOther(null);
    if (Object.keys(checked.errors).length === 0) start.mutate(checked.body);
    else document.getElementById(`param-${Object.keys(checked.errors)[0]}`)?.focus();
  };
  return (
    <Dialog
      title={title}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form="run-form" className="primary" disabled={start.isPending}>
            {start.isPending ? "Starting…" : "▶ Start"}
          </button>
        </>
      }
    >
      <form
        id="run-form"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <ParamsForm params={params} values={values} errors={errors} onChange={(name, value) => setValues((v) => ({ ...v, [name]: value }))} />
        {other !== null && <ErrorMessage error={other} />}
      </form>
    </Dialog>
  );
}

function RunProgress({ title, executionId, onClose, onAgain }: { title: string; executionId: string; onClose: () => void; onAgain: () => void }) {
  const execution = useExecution(executionId);
  const navigate = useNavigate();
  const ex = execution.data;
  useExecutionStream(executionId, { logs: false, active: !!ex && ACTIVE_EXECUTION.has(ex.status) });
  const progress = ex && ex.progress.total > 0 ? Math.round((ex.progress.done / ex.progress.total) * 100) : 0;
  const ended = ex ? !ACTIVE_EXECUTION.has(ex.status) : false;
  const results = ex ? Object.fromEntries(ex.steps.filter((s) => Object.keys(s.outputs).length).map((s) => [s.id, s.outputs])) : {};
  return (
    <Dialog
      title={title}
      onClose={onClose}
      wide
      footer={
        <>
          <button type="button" onClick={onClose}>
            Close
          </button>
          {ended && (
            <button type="button" onClick={onAgain}>
              Run again
            </button>
          )}
          <button type="button" className="primary" onClick={() => navigate(`/executions/${executionId}`)}>
            View details
          </button>
        </>
      }
    >
      {execution.isError && <ErrorMessage error={execution.error} />}
      {ex && (
        <div className="run-progress">
          <div className="run-status">
            <StatusBadge status={ex.status} />
            <Link to={`/executions/${ex.id}`} className="muted small">
              {ex.id}
            </Link>
          </div>
          <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={progress} aria-label="Progress">
            <div className={`progress-bar${ended ? "" : " live"}`} style={{ width: `${progress}%` }} />
          </div>
          <p className="muted small">{progress}% of steps finished</p>
          {ex.status_reason && <p>{ex.status_reason}</p>}
          <ul className="run-steps">
            {ex.steps.map((s) => (
              <li key={s.id}>
                <StatusBadge status={s.status} /> <span>{s.id}</span>
                {s.fan_out && <span className="muted small"> items {fanOutWords(s.fan_out).line}</span>}
                {s.status === "waiting" && s.type === "approval" && <GateActions executionId={ex.id} step={s.id} />}
              </li>
            ))}
          </ul>
          {ended && (
            <section>
              <h3>Results</h3>
              <JsonView value={results} label="Results" />
            </section>
          )}
        </div>
      )}
    </Dialog>
  );
}

function GateActions({ executionId, step }: { executionId: string; step: string }) {
  const context = useApprovalContext(executionId, step, true);
  const [answer, setAnswer] = useState<null | "approve" | "reject">(null);
  if (!context.data) return null;
  if (!context.data.can_respond) return <span className="muted small"> — {context.data.why_not}</span>;
  return (
    <span className="gate-actions">
      <span className="small">{context.data.message}</span>
      <button type="button" className="small primary" onClick={() => setAnswer("approve")}>
        Approve
      </button>
      <button type="button" className="small danger" onClick={() => setAnswer("reject")}>
        Reject
      </button>
      {answer && <AnswerDialog executionId={executionId} step={step} decision={answer} message={context.data.message} onClose={() => setAnswer(null)} />}
    </span>
  );
}
