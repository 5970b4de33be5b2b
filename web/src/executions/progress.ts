// An execution's step counts as a person reads them. The API's `done` counts every ended step,
// cancelled and skipped ones too, so a run cancelled before any step ran would read "8/8";
// here only the steps that ran to an end count as done, and the others are named.
import type { ExecutionSummary } from "../api/types";

export type StepProgress = ExecutionSummary["progress"];

export interface ProgressWords {
  /** "3/8": steps that ran to an end, of all. */
  done: string;
  /** "5 cancelled", "1 skipped, 2 cancelled", or "" when every ended step ran. */
  others: string;
}

export function progressWords(p: StepProgress): ProgressWords {
  const ran = Math.max(0, p.done - p.skipped - p.cancelled);
  const others = [p.skipped ? `${p.skipped} skipped` : "", p.cancelled ? `${p.cancelled} cancelled` : ""].filter(Boolean).join(", ");
  return { done: `${ran}/${p.total}`, others };
}
