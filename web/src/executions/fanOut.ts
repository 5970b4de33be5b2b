// A fanned-out step (for_each or matrix) as a person reads it: its progress in words, each
// item's value as a short label, and which of people's actions an item or the step takes.
// The server owns the rules (it answers 409 with why); this only decides which buttons show.
import type { Schemas } from "../api/client";

export type FanOut = Schemas["FanOutOut"];
export type Item = Schemas["ItemOut"];

/** Item statuses in the order their counts are named after "done". */
const NAMED = ["running", "waiting", "failed", "cancelled", "skipped"] as const;
const ENDED = new Set(["succeeded", "failed", "skipped", "cancelled"]);
/** Step statuses in which an item may be retried or skipped. */
const ITEM_ACTION_STEP = new Set(["running", "failed", "cancelled"]);

export interface FanOutWords {
  /** "37 of 200 ended": items ended (succeeded, failed, cancelled or skipped), of all; "…"
   *  while the list is not worked out yet. Never "37/200", which reads as 37 succeeded. */
  done: string;
  /** "10 running · 2 failed": the counts worth naming, or "". */
  others: string;
  /** "at most 10 at once", or "" without a limit. */
  limit: string;
  /** The whole line: "37 of 200 ended · 10 running · 2 failed". */
  line: string;
}

function count(fan: FanOut, status: string): number {
  return fan.counts[status] ?? 0;
}

/** The status an item shows: "queued" (waiting for an agent, in the pending colour) while it
 *  runs but its job still waits for an agent, as a step does (`shownStepStatus`); its own status
 *  otherwise. `jobs` are the step's jobs. */
export function shownItemStatus(item: Pick<Item, "status" | "job_id">, jobs: ReadonlyMap<string, { status: string }>): string {
  if (item.status !== "running" || !item.job_id) return item.status;
  return jobs.get(item.job_id)?.status === "pending" ? "queued" : item.status;
}

/** A step's fan-out as its graph node shows it: the counts, and how many running items wait
 *  for an agent. */
export function fanOutOf(step: { fan_out?: FanOut | null; items?: readonly Item[]; jobs: readonly { id: string; status: string }[] }): { fanOut: FanOut | null; queuedItems: number } {
  if (!step.fan_out) return { fanOut: null, queuedItems: 0 };
  return { fanOut: step.fan_out, queuedItems: queuedItems(step.items ?? [], new Map(step.jobs.map((j) => [j.id, j]))) };
}

/** How many of a step's running items wait for an agent. */
export function queuedItems(items: readonly Pick<Item, "status" | "job_id">[], jobs: ReadonlyMap<string, { status: string }>): number {
  return items.reduce((n, i) => n + (shownItemStatus(i, jobs) === "queued" ? 1 : 0), 0);
}

/** The progress of a fanned-out step: items ended of all, then what is running, waiting for a
 *  retry, failed, cancelled or skipped (skipped items count as succeeded for the step, but a
 *  person wants to see them), and of the running ones, `queued` waiting for an agent. */
export function fanOutWords(fan: FanOut, queued = 0): FanOutWords {
  const ended = Object.entries(fan.counts).reduce((sum, [status, n]) => sum + (ENDED.has(status) ? n : 0), 0);
  const done = fan.total === null ? "…" : `${ended} of ${fan.total} ended`;
  const shown: Record<string, number> = { ...fan.counts, running: Math.max(0, count(fan, "running") - queued) };
  const words = NAMED.filter((s) => (shown[s] ?? 0) > 0).map((s) => `${shown[s]} ${s === "waiting" ? "waiting to retry" : s}`);
  // last, so a node too narrow for the whole line still shows what failed
  if (queued > 0) words.push(`${queued} waiting for an agent`);
  const others = words.join(" · ");
  const limit = fan.max_parallel !== null ? `at most ${fan.max_parallel} at once` : "";
  const line = fan.total === null ? "working out the items…" : [done, others].filter(Boolean).join(" · ");
  return { done, others, limit, line };
}

/** Share of the items in each tone of the bar, in percent: succeeded, skipped, failed,
 *  cancelled, running, waiting; the rest (pending) is the bar's background. */
export function fanOutBar(fan: FanOut): { status: string; percent: number }[] {
  const total = fan.total ?? 0;
  if (total <= 0) return [];
  return ["succeeded", "skipped", "failed", "cancelled", "running", "waiting"]
    .map((status) => ({ status, percent: (count(fan, status) / total) * 100 }))
    .filter((s) => s.percent > 0);
}

/** An item's value in a few words: a string as it is, a matrix combination as
 *  `region=eu · tier=api`, anything else as compact JSON; cut at `max` characters. */
export function itemLabel(value: unknown, max = 80): string {
  let text: string;
  if (typeof value === "string") text = value;
  else if (value && typeof value === "object" && !Array.isArray(value)) {
    text = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" · ");
  } else text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export type ItemAction = "retry" | "skip" | "cancel";

/** The actions an item offers: retry (and skip, where the step allows it) once it failed or
 *  was cancelled; cancel while it has not ended and its step runs. */
export function itemActions(
  item: Pick<Item, "status">,
  { stepStatus, allowSkip, resumable = true }: { stepStatus: string; allowSkip: boolean; resumable?: boolean },
): ItemAction[] {
  // retry and skip: the server's retry_item / skip_item rules (an execution that takes them,
  // a step running, failed or cancelled); see ./actions.ts
  if (item.status === "failed" || item.status === "cancelled") {
    if (!resumable || !ITEM_ACTION_STEP.has(stepStatus)) return [];
    return allowSkip ? ["retry", "skip"] : ["retry"];
  }
  if (!ENDED.has(item.status) && stepStatus === "running") return ["cancel"];
  return [];
}

/** Each job's attempt number as a person counts it: a plain step's as the job says; an item's
 *  among that item's jobs, in order (a job's `attempt` counts every attempt of its step). */
export function attemptNumbers(jobs: readonly { id: string; attempt: number; item?: number | null }[]): Map<string, number> {
  const numbers = new Map<string, number>();
  const seen = new Map<number, number>();
  for (const j of [...jobs].sort((a, b) => a.attempt - b.attempt)) {
    if (j.item === null || j.item === undefined) numbers.set(j.id, j.attempt);
    else {
      const n = (seen.get(j.item) ?? 0) + 1;
      seen.set(j.item, n);
      numbers.set(j.id, n);
    }
  }
  return numbers;
}

/** Whether a step has items still to end (its "Cancel items" applies). */
export function hasOpenItems(fan: FanOut): boolean {
  return count(fan, "pending") + count(fan, "waiting") + count(fan, "running") > 0;
}

export type ItemFilter = "all" | "failed" | "running" | "open";

/** Items under a filter: failed takes failed and cancelled ones, running the running ones, open
 *  those not ended yet. */
export function filterItems(items: readonly Item[], filter: ItemFilter): Item[] {
  if (filter === "all") return items as Item[];
  if (filter === "failed") return items.filter((i) => i.status === "failed" || i.status === "cancelled");
  if (filter === "running") return items.filter((i) => i.status === "running");
  return items.filter((i) => !ENDED.has(i.status));
}
