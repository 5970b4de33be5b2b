// A fanned-out step (for_each or matrix) as a person reads it: its progress in words, each
// item's value as a short label, and which of people's actions an item or the step takes.
// The server owns the rules (it answers 409 with why); this only decides which buttons show.
import type { Schemas } from "../api/client";

export type FanOut = Schemas["FanOutOut"];
export type Item = Schemas["ItemOut"];

/** Item statuses in the order their counts are named after "done". */
const NAMED = ["running", "waiting", "failed", "cancelled", "skipped"] as const;
const ENDED = new Set(["succeeded", "failed", "skipped", "cancelled"]);

export interface FanOutWords {
  /** "37/200": items ended, of all; "…" while the list is not worked out yet. */
  done: string;
  /** "10 running · 2 failed": the counts worth naming, or "". */
  others: string;
  /** "at most 10 at once", or "" without a limit. */
  limit: string;
  /** The whole line: "37/200 · 10 running · 2 failed". */
  line: string;
}

function count(fan: FanOut, status: string): number {
  return fan.counts[status] ?? 0;
}

/** The progress of a fanned-out step: items ended of all, then what is running, waiting for
 *  a retry, failed, cancelled or skipped (skipped items count as succeeded for the step, but a
 *  person wants to see them). */
export function fanOutWords(fan: FanOut): FanOutWords {
  const ended = Object.entries(fan.counts).reduce((sum, [status, n]) => sum + (ENDED.has(status) ? n : 0), 0);
  const done = fan.total === null ? "…" : `${ended}/${fan.total}`;
  const others = NAMED.filter((s) => count(fan, s) > 0)
    .map((s) => `${count(fan, s)} ${s === "waiting" ? "waiting to retry" : s}`)
    .join(" · ");
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
export function itemActions(item: Pick<Item, "status">, { stepStatus, allowSkip }: { stepStatus: string; allowSkip: boolean }): ItemAction[] {
  if (item.status === "failed" || item.status === "cancelled") return allowSkip ? ["retry", "skip"] : ["retry"];
  if (!ENDED.has(item.status) && stepStatus === "running") return ["cancel"];
  return [];
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
