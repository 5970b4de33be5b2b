// Pending approvals across workflows, answerable in place by those who may.
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router-dom";
import { api, call } from "../api/client";
import type { Approval } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { PlanSummary } from "../executions/Tabs";
import { useApprovalContext } from "../executions/StepList";
import { AnswerDialog } from "./AnswerDialog";

export default function ApprovalsPage() {
  const approvals = useQuery({
    queryKey: ["approvals", "pending"],
    queryFn: () => call(api.GET("/api/v1/approvals", { params: { query: { status: "pending", limit: 200 } } })),
    refetchInterval: 10_000,
  });
  return (
    <section aria-labelledby="ap-title">
      <div className="page-head">
        <h1 id="ap-title">Pending approvals</h1>
        <span className="muted">{approvals.data ? `${approvals.data.total} waiting` : ""}</span>
      </div>
      {approvals.isError && <ErrorMessage error={approvals.error} onRetry={() => void approvals.refetch()} />}
      {approvals.isPending && <p className="muted">Loading…</p>}
      {approvals.data?.items.length === 0 && (
        <div className="empty">
          <p>Nothing is waiting for a decision.</p>
        </div>
      )}
      <ul className="approval-list">
        {approvals.data?.items.map((a) => (
          <ApprovalCard key={a.id} approval={a} />
        ))}
      </ul>
    </section>
  );
}

function ApprovalCard({ approval: a }: { approval: Approval }) {
  const [answer, setAnswer] = useState<null | "approve" | "reject">(null);
  const context = useApprovalContext(a.execution_id, a.step, true);
  const plans = Object.entries(context.data?.upstream ?? {}).filter(([, v]) => {
    const outputs = (v as { outputs?: Record<string, unknown> }).outputs;
    return outputs && ("changes" in outputs || "plan_text" in outputs);
  });
  return (
    <li className="card approval" data-row tabIndex={-1}>
      <div className="approval-head">
        <h2>
          <Link to={`/executions/${a.execution_id}?step=${encodeURIComponent(a.step)}`}>
            {context.data?.workflow_name ?? a.workflow_id} · {a.step}
          </Link>
        </h2>
        <span className="muted small" title={exactTime(a.opened_at)}>
          waiting since {relativeTime(a.opened_at)}
        </span>
      </div>
      <p className="approval-message">{a.message}</p>
      <dl className="facts">
        <div>
          <dt>Asked by</dt>
          <dd>{a.requested_by ?? "—"}</dd>
        </div>
        <div>
          <dt>Approvers</dt>
          <dd>{a.approvers.length ? a.approvers.join(", ") : "anyone who may approve"}</dd>
        </div>
        <div>
          <dt>Needs</dt>
          <dd>
            {a.responses.filter((r) => r.decision === "approve" || r.decision === "approved").length} of {a.min_approvals}
          </dd>
        </div>
        <div>
          <dt>Times out</dt>
          <dd title={exactTime(a.timeout_at)}>{a.timeout_at ? relativeTime(a.timeout_at) : "never"}</dd>
        </div>
      </dl>
      {plans.map(([step, v]) => (
        <div key={step}>
          <span className="small muted">Plan of {step}</span>
          <PlanSummary outputs={(v as { outputs: Record<string, unknown> }).outputs} />
        </div>
      ))}
      <div className="approval-actions">
        {a.can_respond ? (
          <>
            <button type="button" className="primary" onClick={() => setAnswer("approve")}>
              Approve
            </button>
            <button type="button" className="danger" onClick={() => setAnswer("reject")}>
              Reject
            </button>
          </>
        ) : (
          <span className="muted">You cannot answer: {a.why_not}</span>
        )}
      </div>
      {answer && <AnswerDialog executionId={a.execution_id} step={a.step} decision={answer} message={a.message} onClose={() => setAnswer(null)} />}
    </li>
  );
}
