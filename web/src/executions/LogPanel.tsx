// The log panel: virtualized lines (the DOM holds only what is on screen), ANSI colours,
// All / Output / Errors, search with next/previous, follow-tail that stops when the user
// scrolls up, download, and a marker where lines are missing.
import { useVirtualizer } from "@tanstack/react-virtual";
import { Fragment, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { parseAnsi } from "./ansi";
import { itemLabel, type Item } from "./fanOut";
import { lineSource, searchEntries, visibleEntries, type LogEntry, type LogFilter } from "./logs";

const ROW = 20;

const FILTER_HELP: Record<LogFilter, string> = {
  all: "Every line",
  output: "What the step's program wrote to stdout",
  errors: "What the program wrote to stderr, and opsflow's own warnings and errors",
};
const PIN_THRESHOLD = 40;

function highlight(text: string, query: string): ReactNode {
  if (!query) return text;
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  const parts: ReactNode[] = [];
  let at = 0;
  for (let i = lower.indexOf(needle); i !== -1; i = lower.indexOf(needle, at)) {
    if (i > at) parts.push(text.slice(at, i));
    parts.push(<mark key={i}>{text.slice(i, i + needle.length)}</mark>);
    at = i + needle.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

function LineText({ entry, query }: { entry: Extract<LogEntry, { kind: "line" }>; query: string }) {
  if (query || !entry.text.includes("\u001b")) return <>{highlight(entry.plain, query)}</>;
  return (
    <>
      {parseAnsi(entry.text).map((s, i) => (
        <span
          key={i}
          style={{ color: s.fg, background: s.bg, fontWeight: s.bold ? 700 : undefined, fontStyle: s.italic ? "italic" : undefined, textDecoration: s.underline ? "underline" : undefined }}
        >
          {s.text}
        </span>
      ))}
    </>
  );
}

export function LogPanel({
  entries,
  version,
  step,
  items,
  item = null,
  onItem,
  downloadHref,
  live,
  height = 420,
}: {
  entries: readonly LogEntry[];
  version: number;
  step: string | null;
  /** The items of the selected step when it fans out: the panel offers to show one's lines. */
  items?: readonly Pick<Item, "index" | "item">[];
  /** The item whose lines show (with `step`); null: every item. */
  item?: number | null;
  onItem?: (item: number | null) => void;
  downloadHref?: string;
  live?: boolean;
  height?: number;
}) {
  const [filter, setFilter] = useState<LogFilter>("all");
  const [query, setQuery] = useState("");
  const [current, setCurrent] = useState(0);
  const [follow, setFollow] = useState(true);
  const scroller = useRef<HTMLDivElement>(null);
  const searchBox = useRef<HTMLInputElement>(null);

  // eslint-disable-next-line react-hooks/exhaustive-deps
  const shown = useMemo(() => visibleEntries(entries, filter, step, step ? item : null), [entries, version, filter, step, item]);
  const hits = useMemo(() => searchEntries(shown, query), [shown, query]);
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 20,
    initialRect: { width: 800, height },
  });

  useEffect(() => {
    if (follow && shown.length > 0) virtualizer.scrollToIndex(shown.length - 1, { align: "end" });
  }, [follow, shown.length, virtualizer]);

  const go = (delta: number) => {
    if (hits.length === 0) return;
    const next = (current + delta + hits.length) % hits.length;
    setCurrent(next);
    setFollow(false);
    virtualizer.scrollToIndex(hits[next]!, { align: "center" });
  };

  useEffect(() => {
    setCurrent(0);
    if (query && hits.length > 0) {
      setFollow(false);
      virtualizer.scrollToIndex(hits[0]!, { align: "center" });
    }
    // jump to the first hit when the query changes, not when lines arrive
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query, filter, step, item]);

  // Following stops when the user scrolls up, never because lines arrived: while many items log
  // at once, the log grows between a scroll to the end and its scroll event, which then sees the
  // view short of the bottom though nobody moved it. Only a move up counts.
  const lastTop = useRef(0);
  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const movedUp = el.scrollTop < lastTop.current - 1;
    lastTop.current = el.scrollTop;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < PIN_THRESHOLD;
    if (movedUp && !atBottom && follow) setFollow(false);
  };

  const currentLine = hits.length > 0 ? hits[Math.min(current, hits.length - 1)] : undefined;
  const lineCount = shown.length;

  return (
    <div className="log-panel">
      <div className="log-toolbar" role="toolbar" aria-label="Log controls">
        <div className="segmented" role="radiogroup" aria-label="Show">
          {(["all", "output", "errors"] as const).map((f) => (
            <button
              key={f}
              type="button"
              role="radio"
              aria-checked={filter === f}
              className={filter === f ? "on" : ""}
              onClick={() => setFilter(f)}
              title={FILTER_HELP[f]}
            >
              {f === "all" ? "All" : f === "output" ? "Output" : "Errors"}
            </button>
          ))}
        </div>
        {step && items && items.length > 0 && onItem && (
          <label className="log-item-filter small">
            <span>Item</span>
            <select
              value={item === null ? "" : String(item)}
              onChange={(e) => onItem(e.target.value === "" ? null : Number(e.target.value))}
              aria-label={`Item of ${step} whose log shows`}
            >
              <option value="">All items</option>
              {items.map((i) => (
                <option key={i.index} value={String(i.index)}>
                  #{i.index} {itemLabel(i.item, 40)}
                </option>
              ))}
            </select>
          </label>
        )}
        <form
          className="log-search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            go(1);
          }}
        >
          <label className="visually-hidden" htmlFor="log-search-input">
            Search the log
          </label>
          <input
            id="log-search-input"
            ref={searchBox}
            type="search"
            placeholder="Search log"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && e.shiftKey) {
                e.preventDefault();
                go(-1);
              }
            }}
          />
          <span className="muted small search-count" aria-live="polite" data-testid="search-count">
            {query ? (hits.length ? `${Math.min(current, hits.length - 1) + 1} of ${hits.length}` : "no match") : ""}
          </span>
          <button type="button" className="small" onClick={() => go(-1)} disabled={hits.length === 0} aria-label="Previous match">
            ↑
          </button>
          <button type="button" className="small" onClick={() => go(1)} disabled={hits.length === 0} aria-label="Next match">
            ↓
          </button>
        </form>
        <button type="button" className="small" onClick={() => setFollow((f) => !f)} aria-pressed={!follow}>
          {follow ? "Pause" : "Resume"}
        </button>
        {downloadHref && (
          <a className="button small" href={downloadHref} download>
            Download
          </a>
        )}
        <span className="muted small log-meta">
          {lineCount.toLocaleString()} line{lineCount === 1 ? "" : "s"}
          {step ? ` · ${step}` : ""}
          {step && item !== null ? ` #${item}` : ""}
          {live ? " · live" : ""}
        </span>
      </div>
      <div ref={scroller} className="log-lines" style={{ height }} onScroll={onScroll} tabIndex={0} role="log" aria-label="Log output" aria-live="off" data-testid="log-lines">
        {lineCount === 0 ? (
          <div className="log-empty muted">{entries.length === 0 ? (live ? "Waiting for output…" : "No output.") : "No line matches this filter."}</div>
        ) : (
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((row) => {
              const entry = shown[row.index]!;
              const style = { position: "absolute" as const, top: 0, left: 0, right: 0, transform: `translateY(${row.start}px)`, height: ROW };
              if (entry.kind === "gap") {
                return (
                  <div key={entry.id} className="log-gap" style={style} role="note">
                    ⋯ {entry.text}
                  </div>
                );
              }
              return (
                <div key={entry.id} className={`log-line stream-${entry.stream}${entry.level ? ` level-${entry.level}` : ""}${row.index === currentLine ? " current-hit" : ""}`} style={style} data-index={row.index}>
                  <span className="ln" aria-hidden="true">
                    {row.index + 1}
                  </span>
                  {!step && <span className="log-step">{lineSource(entry)}</span>}
                  {step && item === null && entry.item !== null && <span className="log-item">#{entry.item}</span>}
                  <span className="log-text">
                    <Fragment>
                      <LineText entry={entry} query={query} />
                    </Fragment>
                  </span>
                </div>
              );
            })}
          </div>
        )}
      </div>
    </div>
  );
}
