// How runs went over a window: the figures of GET /analytics as cards and charts. Filters live
// in the query string (?range=7d|30d|90d|custom&from=&to=&workflow=), so a link shows the same.
import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { Bar, BarChart, CartesianGrid, LabelList, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { api, call } from "../api/client";
import { ErrorMessage } from "../components/ErrorMessage";
import { formatDuration } from "../components/format";
import {
  RANGES,
  agentSlices,
  apiQuery,
  filtersOf,
  percent,
  stepBars,
  trendSeries,
  waitBars,
  workflowBars,
  type Analytics,
  type Filters,
} from "./chartData";
import "./analytics.css";

// The status palette of styles.css (UI.md): SVG fills cannot read CSS variables.
const COLOURS = { completed: "#196c2e", failed: "#b42318", other: "#5b6470", runs: "#0b56c6", slow: "#4338ca", wait: "#a14a00" };
const AXIS = { fontSize: 12, fill: "#59636e" };

export default function AnalyticsPage() {
  const [search, setSearch] = useSearchParams();
  const filters = filtersOf(search);
  const query = apiQuery(filters);
  const analytics = useQuery({
    queryKey: ["analytics", query],
    queryFn: () => call(api.GET("/api/v1/analytics", { params: { query } })),
    refetchInterval: 30_000,
    placeholderData: (previous) => previous,
  });
  const workflows = useQuery({
    queryKey: ["workflows", "names"],
    queryFn: () => call(api.GET("/api/v1/workflows", { params: { query: { limit: 500 } } })),
    staleTime: 60_000,
  });

  const update = (change: Partial<Filters>) => {
    const next = { ...filters, ...change };
    const params = new URLSearchParams();
    if (next.range !== "30d") params.set("range", next.range);
    if (next.range === "custom") {
      if (next.from) params.set("from", next.from);
      if (next.to) params.set("to", next.to);
    }
    if (next.workflow) params.set("workflow", next.workflow);
    setSearch(params, { replace: true });
  };

  const data = analytics.data;
  return (
    <section aria-labelledby="an-title" className="analytics">
      <div className="page-head">
        <h1 id="an-title">Analytics</h1>
        {data && (
          <span className="muted small">
            {data.window.workflow ?? "All workflows"} · runs created {data.window.since.slice(0, 10)} to{" "}
            {data.window.until.slice(0, 16).replace("T", " ")} UTC
          </span>
        )}
      </div>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Analytics filters">
        <label className="field inline">
          <span>Range</span>
          <select value={filters.range} onChange={(e) => update({ range: e.target.value as Filters["range"] })}>
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        {filters.range === "custom" && (
          <>
            <label className="field inline">
              <span>From</span>
              <input type="date" value={filters.from} onChange={(e) => update({ from: e.target.value })} />
            </label>
            <label className="field inline">
              <span>To (inclusive)</span>
              <input type="date" value={filters.to} onChange={(e) => update({ to: e.target.value })} />
            </label>
          </>
        )}
        <label className="field inline">
          <span>Workflow</span>
          <select value={filters.workflow} onChange={(e) => update({ workflow: e.target.value })}>
            <option value="">All workflows</option>
            {workflowOptions(workflows.data?.items ?? [], data, filters.workflow).map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </label>
        {analytics.isFetching && <span className="muted small" aria-live="polite">Updating…</span>}
      </form>
      {analytics.isError && <ErrorMessage error={analytics.error} onRetry={() => void analytics.refetch()} />}
      {analytics.isPending && <p className="muted">Loading…</p>}
      {data && <Figures data={data} />}
    </section>
  );
}

/** The workflows to pick from: those that exist, those that ran in the range (a deleted
 * workflow keeps its history), and the one chosen. */
function workflowOptions(existing: { id: string; name: string }[], data: Analytics | undefined, chosen: string) {
  const names = new Map(existing.map((w) => [w.id, w.name || w.id]));
  for (const t of data?.top_workflows ?? []) if (!names.has(t.workflow_id)) names.set(t.workflow_id, t.workflow_id);
  if (chosen && !names.has(chosen)) names.set(chosen, chosen);
  return [...names].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name));
}

function Figures({ data }: { data: Analytics }) {
  const s = data.summary;
  const trend = trendSeries(data.daily);
  const top = workflowBars(data.top_workflows);
  const steps = stepBars(data.slowest_steps);
  const agents = agentSlices(data.agents);
  const waits = waitBars(data.approvals);
  return (
    <>
      <dl className="kpis" aria-label="Summary">
        <Kpi name="Executions" value={s.total_executions.toLocaleString()} note={`${s.completed} completed · ${s.failed} failed · ${s.other} other`} id="total" />
        <Kpi name="Success rate" value={percent(s.success_rate)} note={`of ${s.ended} ended`} id="success" />
        <Kpi name="Average duration" value={formatDuration(s.avg_duration_ms)} note="start to end" id="avg" />
        <Kpi name="p95 duration" value={formatDuration(s.p95_duration_ms)} note="95% ended faster" id="p95" />
        <Kpi name="Active workflows" value={String(s.active_workflows)} note="with a run in the range" id="workflows" />
        <Kpi name="Approval wait" value={formatDuration(data.approvals.avg_wait_ms)} note={`average of ${data.approvals.decided} decided`} id="wait" />
      </dl>
      {s.total_executions === 0 ? (
        <div className="empty">
          <p>No runs in this range. Pick a longer range or another workflow.</p>
        </div>
      ) : (
        <div className="chart-grid">
          <ChartCard id="trend" title="Daily runs" wide caption="Executions created each UTC day, by how they ended.">
            <ResponsiveContainer width="100%" height={260}>
              <BarChart data={trend} margin={{ top: 8, right: 12, bottom: 0, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="label" tick={AXIS} interval="preserveStartEnd" minTickGap={12} />
                <YAxis allowDecimals={false} tick={AXIS} width={44} />
                <Tooltip />
                <Legend />
                <Bar dataKey="completed" name="Completed" stackId="runs" fill={COLOURS.completed} isAnimationActive={false} />
                <Bar dataKey="failed" name="Failed" stackId="runs" fill={COLOURS.failed} isAnimationActive={false} />
                <Bar dataKey="other" name="Other (cancelled, rejected, running)" stackId="runs" fill={COLOURS.other} isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </ChartCard>
          <ChartCard id="top" title="Top workflows" caption="Most runs in the range; the label is runs · success rate.">
            <ResponsiveContainer width="100%" height={Math.max(160, top.length * 34 + 30)}>
              <BarChart data={top} layout="vertical" margin={{ top: 4, right: 80, bottom: 4, left: 8 }}>
                <XAxis type="number" allowDecimals={false} tick={AXIS} />
                <YAxis type="category" dataKey="workflow" tick={AXIS} width={130} />
                <Tooltip />
                <Bar dataKey="runs" name="Runs" fill={COLOURS.runs} isAnimationActive={false}>
                  <LabelList dataKey="label" position="right" style={{ fontSize: 12, fill: "#1b1f24" }} />
                </Bar>
              </BarChart>
            </ResponsiveContainer>
            <table className="table compact chart-table">
              <caption className="visually-hidden">Top workflows</caption>
              <thead>
                <tr>
                  <th scope="col">Workflow</th>
                  <th scope="col">Runs</th>
                  <th scope="col">Success</th>
                  <th scope="col">Average</th>
                </tr>
              </thead>
              <tbody>
                {data.top_workflows.map((t) => (
                  <tr key={t.workflow_id}>
                    <td>
                      <Link to={`/workflows/${encodeURIComponent(t.workflow_id)}`}>{t.workflow_id}</Link>
                    </td>
                    <td>{t.runs}</td>
                    <td>{percent(t.success_rate)}</td>
                    <td>{formatDuration(t.avg_duration_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ChartCard>
          <ChartCard id="steps" title="Slowest steps" caption="Average run time in seconds (skipped steps and approval gates left out).">
            {steps.length === 0 ? (
              <p className="muted">No step ran to an end in this range.</p>
            ) : (
              <ResponsiveContainer width="100%" height={Math.max(160, steps.length * 34 + 30)}>
                <BarChart data={steps} layout="vertical" margin={{ top: 4, right: 40, bottom: 4, left: 8 }}>
                  <XAxis type="number" tick={AXIS} unit=" s" />
                  <YAxis type="category" dataKey="name" tick={AXIS} width={170} />
                  <Tooltip />
                  <Bar dataKey="avgSeconds" name="Average (s)" fill={COLOURS.slow} isAnimationActive={false}>
                    <LabelList dataKey="avgSeconds" position="right" style={{ fontSize: 12, fill: "#1b1f24" }} />
                  </Bar>
                </BarChart>
              </ResponsiveContainer>
            )}
          </ChartCard>
          <ChartCard id="agents" title="Jobs per agent" caption="Attempts handed to each agent in the range; utilization is busy time over the range.">
            {agents.length === 0 ? (
              <p className="muted">No job was handed to an agent.</p>
            ) : (
              <>
                <ResponsiveContainer width="100%" height={Math.max(140, agents.length * 34 + 30)}>
                  <BarChart data={agents} layout="vertical" margin={{ top: 4, right: 60, bottom: 4, left: 8 }}>
                    <XAxis type="number" allowDecimals={false} tick={AXIS} />
                    <YAxis type="category" dataKey="agent" tick={AXIS} width={110} />
                    <Tooltip />
                    <Bar dataKey="jobs" name="Jobs" fill={COLOURS.runs} isAnimationActive={false}>
                      <LabelList dataKey="sharePct" position="right" formatter={(v: unknown) => `${String(v)}%`} style={{ fontSize: 12, fill: "#1b1f24" }} />
                    </Bar>
                  </BarChart>
                </ResponsiveContainer>
                <table className="table compact chart-table">
                  <caption className="visually-hidden">Jobs per agent</caption>
                  <thead>
                    <tr>
                      <th scope="col">Agent</th>
                      <th scope="col">Jobs</th>
                      <th scope="col">Share</th>
                      <th scope="col">Failed</th>
                      <th scope="col">Utilization</th>
                    </tr>
                  </thead>
                  <tbody>
                    {agents.map((a) => (
                      <tr key={a.agent}>
                        <td>{a.agent}</td>
                        <td>{a.jobs}</td>
                        <td>{a.sharePct}%</td>
                        <td>{a.failed}</td>
                        <td>{a.utilizationPct}%</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </>
            )}
          </ChartCard>
          <ChartCard id="waits" title="Approval waits" caption="Minutes from a gate opening (in the range) to its answer.">
            <p className="small">
              {data.approvals.total} gates · {data.approvals.decided} decided · {data.approvals.pending} waiting now
            </p>
            {data.approvals.decided === 0 ? (
              <p className="muted">No approval was answered in this range.</p>
            ) : (
              <ResponsiveContainer width="100%" height={150}>
                <BarChart data={waits} layout="vertical" margin={{ top: 4, right: 76, bottom: 4, left: 8 }}>
                  <XAxis type="number" tick={AXIS} unit=" min" />
                  <YAxis type="category" dataKey="name" tick={AXIS} width={120} />
                  <Tooltip />
                  <Bar dataKey="minutes" name="Minutes" fill={COLOURS.wait} isAnimationActive={false}>
                    <LabelList dataKey="minutes" position="right" formatter={(v: unknown) => `${String(v)} min`} style={{ fontSize: 12, fill: "#1b1f24" }} />
                  </Bar>
                </BarChart>
              </ResponsiveContainer>
            )}
          </ChartCard>
        </div>
      )}
    </>
  );
}

function Kpi({ name, value, note, id }: { name: string; value: string; note: string; id: string }) {
  return (
    <div className="kpi card" data-kpi={id}>
      <dt>{name}</dt>
      <dd className="kpi-value">{value}</dd>
      <dd className="kpi-note muted small">{note}</dd>
    </div>
  );
}

function ChartCard({ id, title, caption, wide = false, children }: { id: string; title: string; caption: string; wide?: boolean; children: ReactNode }) {
  return (
    <section className={wide ? "card chart-card wide" : "card chart-card"} aria-labelledby={`chart-${id}`} data-chart={id}>
      <h2 id={`chart-${id}`}>{title}</h2>
      <p className="muted small chart-caption">{caption}</p>
      {children}
    </section>
  );
}
