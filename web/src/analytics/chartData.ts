// From GET /analytics to what the charts draw: pure functions, tested on their own.
import type { Schemas } from "../api/client";

export type Analytics = Schemas["AnalyticsOut"];

/** The ranges the page offers; `custom` reads the two dates from the query string. */
export const RANGES = [
  { key: "7d", label: "Last 7 days", days: 7 },
  { key: "30d", label: "Last 30 days", days: 30 },
  { key: "90d", label: "Last 90 days", days: 90 },
  { key: "custom", label: "Custom dates", days: 0 },
] as const;
export type RangeKey = (typeof RANGES)[number]["key"];

export interface Filters {
  range: RangeKey;
  from: string; // YYYY-MM-DD, custom only
  to: string; // YYYY-MM-DD, custom only, inclusive
  workflow: string;
}

/** The page's query string as filters (unknown values fall back to the last 30 days). */
export function filtersOf(search: URLSearchParams): Filters {
  const range = search.get("range");
  const known = RANGES.find((r) => r.key === range);
  return {
    range: known ? known.key : "30d",
    from: search.get("from") ?? "",
    to: search.get("to") ?? "",
    workflow: search.get("workflow") ?? "",
  };
}

/** The API query of the filters: a relative range is `since=Nd` up to now; a custom range is
 * `since=from` and `until=` the day after `to` (the API's until is exclusive). */
export function apiQuery(f: Filters): { since?: string; until?: string; workflow?: string } {
  const q: { since?: string; until?: string; workflow?: string } = {};
  if (f.range === "custom") {
    if (f.from) q.since = f.from;
    if (f.to) q.until = nextDay(f.to);
  } else {
    q.since = f.range;
  }
  if (f.workflow) q.workflow = f.workflow;
  return q;
}

export function nextDay(day: string): string {
  const t = Date.parse(`${day}T00:00:00Z`);
  if (!Number.isFinite(t)) return day;
  return new Date(t + 86_400_000).toISOString().slice(0, 10);
}

export interface TrendPoint {
  day: string;
  label: string;
  completed: number;
  failed: number;
  other: number;
  total: number;
}

/** One stacked bar per UTC day, labelled `Nov 3`. */
export function trendSeries(daily: Analytics["daily"]): TrendPoint[] {
  return daily.map((d) => ({
    day: d.day,
    label: dayLabel(d.day),
    completed: d.completed,
    failed: d.failed,
    other: d.other,
    total: d.completed + d.failed + d.other,
  }));
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
export function dayLabel(day: string): string {
  const [, m, d] = day.split("-");
  const month = MONTHS[Number(m) - 1];
  return month && d ? `${month} ${Number(d)}` : day;
}

export interface WorkflowBar {
  workflow: string;
  runs: number;
  successPct: number | null;
  label: string;
}

/** Top workflows by runs, with the success rate as a whole percentage for the label. */
export function workflowBars(top: Analytics["top_workflows"]): WorkflowBar[] {
  return top.map((t) => {
    const pct = t.success_rate === null || t.success_rate === undefined ? null : Math.round(t.success_rate * 1000) / 10;
    return { workflow: t.workflow_id, runs: t.runs, successPct: pct, label: pct === null ? `${t.runs}` : `${t.runs} · ${pct}%` };
  });
}

export interface StepBar {
  name: string;
  avgSeconds: number;
  maxSeconds: number;
  runs: number;
}

/** Slowest steps as `workflow › step`, average and maximum in seconds (one decimal). */
export function stepBars(steps: Analytics["slowest_steps"]): StepBar[] {
  return steps.map((s) => ({
    name: `${s.workflow_id} › ${s.step_id}`,
    avgSeconds: round1(s.avg_duration_ms / 1000),
    maxSeconds: round1(s.max_duration_ms / 1000),
    runs: s.runs,
  }));
}

export interface AgentSlice {
  agent: string;
  jobs: number;
  sharePct: number;
  utilizationPct: number;
  failed: number;
}

/** Each agent's share of all jobs and its utilization, as percentages (one decimal). */
export function agentSlices(agents: Analytics["agents"]): AgentSlice[] {
  const total = agents.reduce((n, a) => n + a.jobs, 0);
  return agents.map((a) => ({
    agent: a.agent_id,
    jobs: a.jobs,
    sharePct: total ? round1((a.jobs / total) * 100) : 0,
    utilizationPct: round1(a.utilization * 100),
    failed: a.failed,
  }));
}

export interface WaitBar {
  name: string;
  minutes: number | null;
}

/** Approval waits (average, p95, longest) in minutes, for one small bar chart. */
export function waitBars(ap: Analytics["approvals"]): WaitBar[] {
  const min = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : round1(ms / 60_000));
  return [
    { name: "Average", minutes: min(ap.avg_wait_ms) },
    { name: "95th percentile", minutes: min(ap.p95_wait_ms) },
    { name: "Longest", minutes: min(ap.max_wait_ms) },
  ];
}

/** `72.4%`, or `—` when there is nothing to rate. */
export function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? "—" : `${round1(rate * 100)}%`;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
