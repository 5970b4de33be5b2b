// Execution history: filters live in the query string, rows are virtualized and pages come
// from the API as the user scrolls; the list refreshes itself while runs are active.
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { api, call } from "../api/client";
import type { ExecutionSummary } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { elapsed, exactTime, formatDuration, relativeTime } from "../components/format";
import { useNow } from "../components/hooks";
import { ACTIVE_EXECUTION, StatusBadge, statusStyle } from "../components/status";
import { TriggerSource } from "./TriggerSource";
import { progressWords, type StepProgress } from "./progress";

const PAGE = 100;
const ROW = 44;
const STATUSES = ["pending", "running", "paused", "completed", "failed", "cancelled", "rejected", "error"] as const;
type ExecutionStatusName = (typeof STATUSES)[number];
const TRIGGERS = ["manual", "schedule", "webhook", "git", "incident", "workflow"] as const;
type TriggerName = (typeof TRIGGERS)[number];
const RANGES: Record<string, number> = { "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000 };

type Row = ExecutionSummary;

/** The `since`/`until` the API takes for the URL's range (`24h`, `7d`, `30d`, `custom`). */
export function rangeOf(search: URLSearchParams, now = Date.now()): { since?: string; until?: string } {
  const since = search.get("since");
  if (since && RANGES[since]) return { since: new Date(now - RANGES[since]!).toISOString() };
  if (since === "custom") {
    const from = search.get("from");
    const to = search.get("to");
    return {
      since: from ? new Date(from).toISOString() : undefined,
      until: to ? new Date(to).toISOString() : undefined,
    };
  }
  return {};
}

export default function ExecutionsPage() {
  const [search, setSearch] = useSearchParams();
  const navigate = useNavigate();
  const statuses = search.getAll("status").filter((s): s is ExecutionStatusName => (STATUSES as readonly string[]).includes(s));
  // An unknown trigger in the URL is ignored, not sent (the API answers it with 422).
  const urlTrigger = search.get("trigger") ?? "";
  const trigger: TriggerName | "" = (TRIGGERS as readonly string[]).includes(urlTrigger) ? (urlTrigger as TriggerName) : "";
  const workflow = search.get("workflow") ?? "";
  const since = search.get("since") ?? "";
  // The range is fixed when the filters change, so pages of one listing agree.
  const range = useMemo(() => rangeOf(search), [search]);

  const workflows = useQuery({
    queryKey: ["workflows", "names"],
    queryFn: () => call(api.GET("/api/v1/workflows", { params: { query: { limit: 500 } } })),
    staleTime: 60_000,
  });

  const pages = useInfiniteQuery({
    queryKey: ["executions", "list", statuses, trigger, workflow, range],
    initialPageParam: 0,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/v1/executions", {
          params: {
            query: {
              status: statuses.length ? statuses : undefined,
              trigger: trigger || undefined,
              workflow: workflow || undefined,
              since: range.since,
              until: range.until,
              limit: PAGE,
              offset: pageParam,
            },
          },
        }),
      ),
    getNextPageParam: (last) => (last.offset + last.items.length < last.total ? last.offset + last.items.length : undefined),
    refetchInterval: (q) => (q.state.data?.pages.some((p) => p.items.some((e) => ACTIVE_EXECUTION.has(e.status))) ? 5000 : false),
  });

  const rows = useMemo(() => (pages.data?.pages.flatMap((p) => p.items) ?? []) as Row[], [pages.data]);
  const total = pages.data?.pages[0]?.total ?? 0;
  const anyActive = rows.some((r) => ACTIVE_EXECUTION.has(r.status));
  const now = useNow(anyActive);

  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({ count: rows.length, getScrollElement: () => scroller.current, estimateSize: () => ROW, overscan: 10, initialRect: { width: 1000, height: 600 } });
  const items = virtualizer.getVirtualItems();
  const lastIndex = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (lastIndex >= rows.length - 10 && pages.hasNextPage && !pages.isFetchingNextPage) void pages.fetchNextPage();
  }, [lastIndex, rows.length, pages]);

  const set = (key: string, value: string | string[] | null) => {
    const next = new URLSearchParams(search);
    next.delete(key);
    if (Array.isArray(value)) value.forEach((v) => next.append(key, v));
    else if (value) next.set(key, value);
    if (key === "since" && value !== "custom") {
      next.delete("from");
      next.delete("to");
    }
    setSearch(next);
  };
  const toggleStatus = (s: string) => set("status", statuses.includes(s as ExecutionStatusName) ? statuses.filter((x) => x !== s) : [...statuses, s]);

  return (
    <section aria-labelledby="ex-list-title" className="executions">
      <div className="page-head">
        <h1 id="ex-list-title">Executions</h1>
        <span className="muted" aria-live="polite">
          {pages.data ? `${total.toLocaleString()} execution${total === 1 ? "" : "s"}` : ""}
          {anyActive ? " · live" : ""}
        </span>
      </div>
      <div className="filters" role="group" aria-label="Filters">
        <fieldset className="status-filter">
          <legend>Status</legend>
          {STATUSES.map((s) => (
            <label key={s} className={`chip${statuses.includes(s) ? " on" : ""}`}>
              <input type="checkbox" checked={statuses.includes(s)} onChange={() => toggleStatus(s)} />
              {statusStyle(s).label}
            </label>
          ))}
        </fieldset>
        <label className="field inline">
          <span>Trigger</span>
          <select value={trigger} onChange={(e) => set("trigger", e.target.value || null)}>
            <option value="">Any</option>
            {TRIGGERS.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>Workflow</span>
          <select value={workflow} onChange={(e) => set("workflow", e.target.value || null)}>
            <option value="">Any</option>
            {(workflows.data?.items ?? []).map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
            {workflow && !(workflows.data?.items ?? []).some((w) => w.id === workflow) && <option value={workflow}>{workflow}</option>}
          </select>
        </label>
        <label className="field inline">
          <span>Since</span>
          <select value={since} onChange={(e) => set("since", e.target.value || null)}>
            <option value="">Any time</option>
            <option value="24h">Last 24 hours</option>
            <option value="7d">Last 7 days</option>
            <option value="30d">Last 30 days</option>
            <option value="custom">Custom…</option>
          </select>
        </label>
        {since === "custom" && (
          <>
            <label className="field inline">
              <span>From</span>
              <input type="datetime-local" value={search.get("from") ?? ""} onChange={(e) => set("from", e.target.value || null)} />
            </label>
            <label className="field inline">
              <span>To</span>
              <input type="datetime-local" value={search.get("to") ?? ""} onChange={(e) => set("to", e.target.value || null)} />
            </label>
          </>
        )}
        {(statuses.length > 0 || trigger || workflow || since) && (
          <button type="button" className="link-button" onClick={() => setSearch(new URLSearchParams())}>
            Clear filters
          </button>
        )}
      </div>
      {pages.isError && <ErrorMessage error={pages.error} onRetry={() => void pages.refetch()} />}
      <div className="grid-table" role="table" aria-label="Executions" aria-rowcount={total + 1}>
        <div className="grid-row grid-head" role="row">
          {["Workflow", "Status", "Trigger", "Started", "Duration", "Steps done", "By"].map((h) => (
            <span key={h} role="columnheader">
              {h}
            </span>
          ))}
        </div>
        <div ref={scroller} className="grid-body" role="rowgroup">
          {pages.isPending && <p className="muted pad">Loading…</p>}
          {pages.data && rows.length === 0 && <p className="muted pad">No execution matches these filters.</p>}
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {items.map((item) => {
              const r = rows[item.index]!;
              const duration = r.duration_ms ?? elapsed(r.started_at, r.ended_at, now);
              return (
                <div
                  key={r.id}
                  role="row"
                  aria-rowindex={item.index + 2}
                  className="grid-row"
                  style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${item.start}px)` }}
                  onClick={(e) => {
                    if (!(e.target as HTMLElement).closest("a")) navigate(`/executions/${r.id}`);
                  }}
                >
                  <span role="cell">
                    <Link to={`/executions/${r.id}`} data-row>
                      {r.workflow_id}
                    </Link>{" "}
                    <span className="muted small">{r.test_run ? "test" : `v${r.version}`}</span>
                  </span>
                  <span role="cell">
                    <StatusBadge status={r.status} />
                  </span>
                  <span role="cell">
                    <TriggerSource trigger={r.trigger} short />
                  </span>
                  <span role="cell" title={exactTime(r.started_at ?? r.created_at)}>
                    {relativeTime(r.started_at ?? r.created_at, now)}
                  </span>
                  <span role="cell">{r.started_at ? formatDuration(duration) : "—"}</span>
                  <span role="cell">
                    <StepsDone progress={r.progress} />
                  </span>
                  <span role="cell">{r.trigger.actor ?? r.started_by ?? "—"}</span>
                </div>
              );
            })}
          </div>
          {pages.isFetchingNextPage && <p className="muted pad small">Loading more…</p>}
        </div>
      </div>
    </section>
  );
}

function StepsDone({ progress }: { progress: StepProgress }) {
  const words = progressWords(progress);
  return (
    <>
      {words.done}
      {words.others && <span className="muted small"> · {words.others}</span>}
    </>
  );
}
