import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useToast } from "./Toast";

/** The mutation behind a confirm dialog (delete, revoke): runs `run`, then toasts `done(result)`,
 * refreshes the queries under `invalidate` and closes the dialog; a failure toasts with `doing`. */
export function useConfirmedAction<T>({
  run,
  done,
  doing,
  invalidate,
  onClose,
}: {
  run: () => Promise<T>;
  done: (result: T) => string;
  doing: string;
  invalidate: string;
  onClose: () => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  return useMutation({
    mutationFn: run,
    onSuccess: (result) => {
      toast.ok(done(result));
      void client.invalidateQueries({ queryKey: [invalidate] });
      onClose();
    },
    onError: (err) => toast.error(err, doing),
  });
}
