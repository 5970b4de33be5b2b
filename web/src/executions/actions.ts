// Which of people's actions on a step the server accepts, mirroring its rules
// (src/opsflow/engine/control.py: retry_step, skip_step, retry_item, skip_item); the server
// still decides (it answers 409 with why), this only keeps refused buttons from showing.

/** Execution statuses whose steps may be retried or skipped (the engine's `_RESUMABLE`): an
 *  ended completed or cancelled run is not, and neither is one being cancelled. */
const RESUMABLE = new Set(["running", "paused", "failed", "rejected"]);

export type StepAction = "retry" | "from_here" | "skip";

/** Whether the execution takes retries and skips at all: it is resumable and no cancel is
 *  under way ("the execution is completed; start a new run instead" otherwise). */
export function acceptsStepActions(ex: { status: string; cancel?: unknown }): boolean {
  return RESUMABLE.has(ex.status) && (ex.cancel === null || ex.cancel === undefined);
}

/** The step actions the server accepts for a step in status `status`:
 *  - retry: a failed step;
 *  - from_here: a failed or succeeded step (an approval also when approved or rejected),
 *    while no step after it (through `needs`) runs or waits;
 *  - skip: a failed step whose workflow sets `allow_skip`. */
export function stepActions(
  ex: { status: string; cancel?: unknown; steps: readonly { id: string; status: string }[] },
  spec: { id: string; type: string; allow_skip?: boolean },
  status: string,
  specs: readonly { id: string; needs?: string[] }[],
): StepAction[] {
  if (!acceptsStepActions(ex)) return [];
  const actions: StepAction[] = [];
  if (status === "failed") actions.push("retry");
  const fromHere = status === "failed" || status === "succeeded" || (spec.type === "approval" && (status === "approved" || status === "rejected"));
  if (fromHere && !downstreamBusy(ex.steps, spec.id, specs)) actions.push("from_here");
  if (status === "failed" && spec.allow_skip) actions.push("skip");
  return actions;
}

/** Whether a step after `id` (through `needs`, at any depth) is running or waiting. */
function downstreamBusy(steps: readonly { id: string; status: string }[], id: string, specs: readonly { id: string; needs?: string[] }[]): boolean {
  const status = new Map(steps.map((s) => [s.id, s.status]));
  const after = new Set<string>([id]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of specs) {
      // an entry is a step id, or one with an outcome after a dot (`approve.rejected`)
      if (!after.has(s.id) && (s.needs ?? []).some((n) => after.has(n) || after.has(n.slice(0, n.lastIndexOf("."))))) {
        after.add(s.id);
        grew = true;
      }
    }
  }
  after.delete(id);
  return [...after].some((s) => status.get(s) === "running" || status.get(s) === "waiting");
}
