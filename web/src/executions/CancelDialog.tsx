import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import { Dialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { useToast } from "../components/Toast";

const MODES = [
  ["graceful", "Graceful", "Running jobs finish; nothing new starts."],
  ["force", "Force", "Running jobs are stopped now."],
  ["cleanup", "Graceful, then clean up", "Running jobs finish, then each step's cleanup action runs."],
] as const;

export function CancelDialog({ executionId, label, onClose }: { executionId: string; label: string; onClose: () => void }) {
  const [mode, setMode] = useState<(typeof MODES)[number][0]>("graceful");
  const [reason, setReason] = useState("");
  const client = useQueryClient();
  const toast = useToast();
  const cancel = useMutation({
    mutationFn: () => call(api.POST("/api/v1/executions/{execution_id}/cancel", { params: { path: { execution_id: executionId } }, body: { mode, reason } })),
    onSuccess: () => {
      toast.ok(`Cancel requested (${mode})`);
      void client.invalidateQueries({ queryKey: ["executions"] });
      onClose();
    },
  });
  return (
    <Dialog
      title="Cancel this execution?"
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose} data-autofocus>
            Keep running
          </button>
          <button type="button" className="danger" disabled={cancel.isPending} onClick={() => cancel.mutate()}>
            Cancel execution
          </button>
        </>
      }
    >
      <p>
        Stops <strong>{label}</strong>.
      </p>
      <fieldset className="radio-group">
        <legend>How</legend>
        {MODES.map(([value, title, help]) => (
          <label key={value} className="radio">
            <input type="radio" name="cancel-mode" value={value} checked={mode === value} onChange={() => setMode(value)} />
            <span>
              <strong>{title}</strong> <span className="muted small">{help}</span>
            </span>
          </label>
        ))}
      </fieldset>
      <label className="field">
        <span>Reason (optional)</span>
        <input value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      {cancel.isError && <ErrorMessage error={cancel.error} />}
    </Dialog>
  );
}
