import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import { Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { useToast } from "../components/Toast";

/** Approve or reject a gate with an optional note. */
export function AnswerDialog({
  executionId,
  step,
  decision,
  message,
  onClose,
}: {
  executionId: string;
  step: string;
  decision: "approve" | "reject";
  message?: string;
  onClose: () => void;
}) {
  const [note, setNote] = useState("");
  const client = useQueryClient();
  const toast = useToast();
  const answer = useMutation({
    mutationFn: () => {
      const options = { params: { path: { execution_id: executionId, step_id: step } }, body: { note: note || null, via: "web" as const } };
      return decision === "approve"
        ? call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/approve", options))
        : call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/reject", options));
    },
    onSuccess: (out) => {
      toast.ok(`${decision === "approve" ? "Approved" : "Rejected"} ${step}${out.decided ? "" : " (more answers needed)"}`);
      void client.invalidateQueries({ queryKey: ["executions"] });
      void client.invalidateQueries({ queryKey: ["approvals"] });
      onClose();
    },
  });
  const verb = decision === "approve" ? "Approve" : "Reject";
  return (
    <Dialog
      title={`${verb} ${step}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="button" className={decision === "approve" ? "primary" : "danger"} disabled={answer.isPending} onClick={() => answer.mutate()}>
            {verb}
          </button>
        </>
      }
    >
      {message && <p className="approval-message">{message}</p>}
      <label className="field">
        <span>Note (optional)</span>
        <textarea value={note} onChange={(e) => setNote(e.target.value)} rows={3} data-autofocus placeholder={decision === "approve" ? "Looks good" : "Why not"} />
      </label>
      {answer.isError && <ErrorMessage error={answer.error} />}
    </Dialog>
  );
}
