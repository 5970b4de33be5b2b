// The children of a fanned-out step in the step list: its progress (words and a bar), and its
// items, one row each (index, value, status, attempts, duration, error) with per-item retry,
// skip and cancel. The list is virtualized: a step may have 1,000 items.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useContext, useRef, useState } from "react";
import { api, call } from "../api/client";
import { useCan } from "../auth/session";
import { ConfirmDialog } from "../components/Dialog";
import { elapsed, formatDuration, relativeTime } from "../components/format";
import { StatusBadge, statusStyle } from "../components/status";
import { useConfirmedAction } from "../components/useConfirmedAction";
import { fanOutBar, fanOutWords, filterItems, itemActions, itemLabel, shownItemStatus, type FanOut, type Item, type ItemAction, type ItemFilter } from "./fanOut";
import { ReopenStream } from "./useExecutionStream";

const ROW = 52;
const LIST_HEIGHT = 260;

/** The items' share of each status as a thin bar; the words beside it say the same. */
export function FanOutBar({ fan }: { fan: FanOut }) {
  return (
    <div className="fanout-bar" aria-hidden="true">
      {fanOutBar(fan).map((s) => (
        <span key={s.status} className={`fanout-seg seg-${statusStyle(s.status).tone}`} style={{ width: `${s.percent}%` }} />
      ))}
    </div>
  );
}

/** "37/200 · 10 running · 2 failed", with the parallel limit in smaller words; `queued`: how
 *  many running items wait for an agent. */
export function FanOutProgress({ step, fan, queued = 0 }: { step: string; fan: FanOut; queued?: number }) {
  const words = fanOutWords(fan, queued);
  return (
    <div className="fanout-progress small" data-fanout-progress={step}>
      <FanOutBar fan={fan} />
      <span>
        <span className="visually-hidden">Items: </span>
        {words.line}
        {words.limit && <span className="muted"> · {words.limit}</span>}
      </span>
    </div>
  );
}

const ACTION_WORDS: Record<ItemAction, { label: string; verb: string; explain: string; danger: boolean }> = {
  retry: { label: "Retry", verb: "Retrying", explain: "The item runs again as a new attempt, with its retries counted afresh.", danger: false },
  skip: { label: "Skip", verb: "Skipped", explain: "The item counts as succeeded for its step; its failure stays in its attempts.", danger: false },
  cancel: { label: "Cancel", verb: "Cancelled", explain: "Its job is stopped and the item ends cancelled (not a success).", danger: true },
};

const FILTERS: [ItemFilter, string][] = [
  ["all", "All"],
  ["failed", "Failed"],
  ["running", "Running"],
  ["open", "Not ended"],
];

export function FanOutItems({
  executionId,
  step,
  stepStatus,
  allowSkip,
  resumable = true,
  items,
  jobs = new Map(),
  selectedItem,
  onSelectItem,
  now,
}: {
  executionId: string;
  step: string;
  stepStatus: string;
  allowSkip: boolean;
  /** Whether the execution takes retries and skips (not ended completed, not cancelling). */
  resumable?: boolean;
  items: readonly Item[];
  /** The step's jobs by id: an item whose job waits for an agent says so. */
  jobs?: ReadonlyMap<string, { status: string }>;
  selectedItem: number | null;
  onSelectItem: (index: number | null) => void;
  now: number;
}) {
  const [filter, setFilter] = useState<ItemFilter>("all");
  const [pending, setPending] = useState<{ action: ItemAction; item: Item } | null>(null);
  const canRetry = useCan("executions:retry");
  const canCancel = useCan("executions:cancel");
  const reopen = useContext(ReopenStream);
  const scroller = useRef<HTMLDivElement>(null);
  const shown = filterItems(items, filter);
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 8,
    initialRect: { width: 340, height: LIST_HEIGHT },
  });

  const act = useConfirmedAction({
    run: async () => {
      const { action, item } = pending!;
      const path = { params: { path: { execution_id: executionId, step_id: step } } };
      const body = { item: item.index };
      if (action === "retry") await call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/retry", { ...path, body: { ...body, from_here: false } }));
      else if (action === "skip") await call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/skip", { ...path, body }));
      else await call(api.POST("/api/v1/executions/{execution_id}/steps/{step_id}/cancel", { ...path, body }));
      reopen();
      return pending!;
    },
    done: ({ action, item }) => `${ACTION_WORDS[action].verb} item #${item.index} (${itemLabel(item.item, 40)}) of ${step}`,
    doing: pending ? `${ACTION_WORDS[pending.action].label} item` : "Item",
    invalidate: "executions",
    onClose: () => setPending(null),
  });

  const allowed = (a: ItemAction) => (a === "cancel" ? canCancel : canRetry);

  if (items.length === 0) return <p className="muted small fanout-empty">The items are not worked out yet.</p>;
  return (
    <div className="fanout-items">
      <div className="fanout-filter segmented" role="radiogroup" aria-label={`Items of ${step} to show`}>
        {FILTERS.map(([key, label]) => (
          <button key={key} type="button" role="radio" aria-checked={filter === key} className={filter === key ? "on" : ""} onClick={() => setFilter(key)}>
            {label}
          </button>
        ))}
      </div>
      {shown.length === 0 ? (
        <p className="muted small fanout-empty">No item matches.</p>
      ) : (
        <div ref={scroller} className="fanout-list" style={{ maxHeight: LIST_HEIGHT }} role="list" aria-label={`Items of ${step}`} data-testid={`items-${step}`}>
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((row) => {
              const item = shown[row.index]!;
              return (
                <div key={item.index} role="listitem" style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${row.start}px)` }}>
                  <ItemRow
                    item={item}
                    shown={shownItemStatus(item, jobs)}
                    now={now}
                    selected={selectedItem === item.index}
                    onSelect={() => onSelectItem(selectedItem === item.index ? null : item.index)}
                    actions={itemActions(item, { stepStatus, allowSkip, resumable }).filter(allowed)}
                    onAction={(action) => setPending({ action, item })}
                  />
                </div>
              );
            })}
          </div>
        </div>
      )}
      {pending && (
        <ConfirmDialog
          title={`${ACTION_WORDS[pending.action].label} item #${pending.item.index} (${itemLabel(pending.item.item, 40)}) of ${step}?`}
          confirmLabel={`${ACTION_WORDS[pending.action].label} item`}
          danger={ACTION_WORDS[pending.action].danger}
          busy={act.isPending}
          onConfirm={() => act.mutate()}
          onClose={() => setPending(null)}
        >
          <p>{ACTION_WORDS[pending.action].explain}</p>
        </ConfirmDialog>
      )}
    </div>
  );
}

/** One item: `#3 eu [Failed]` over `×2 · 4s · exit code 1` and its actions. */
export function ItemRow({
  item,
  shown = item.status,
  now,
  selected,
  onSelect,
  actions,
  onAction,
}: {
  item: Item;
  /** The status the badge shows (`shownItemStatus`). */
  shown?: string;
  now: number;
  selected: boolean;
  onSelect: () => void;
  actions: ItemAction[];
  onAction: (action: ItemAction) => void;
}) {
  const duration = elapsed(item.started_at, item.ended_at, now);
  const label = itemLabel(item.item);
  const facts = [
    item.attempts > 1 ? `×${item.attempts}` : "",
    duration !== null ? formatDuration(duration) : "",
    item.status === "waiting" && item.retry_at ? `retry ${relativeTime(item.retry_at, now)}` : "",
  ].filter(Boolean);
  return (
    <div className={`item-row${selected ? " selected" : ""}`} data-item={item.index} data-item-status={item.status}>
      <div className="item-line">
        <button type="button" className="item-select" onClick={onSelect} aria-pressed={selected} title={itemLabel(item.item, 500)} aria-label={`#${item.index} ${label}: show its log`} data-row>
          <span className="item-index">#{item.index}</span> <span className="item-value">{label}</span>
        </button>
        <StatusBadge status={shown} />
      </div>
      <div className="item-line small">
        <span className="muted item-facts">{facts.join(" · ")}</span>
        {item.error && (
          <span className={`item-error${item.status === "failed" || item.status === "waiting" ? "" : " quiet"}`} title={item.error}>
            {item.error}
          </span>
        )}
        <span className="item-actions">
          {actions.map((a) => (
            <button key={a} type="button" className={`small${a === "cancel" ? " danger-text" : ""}`} onClick={() => onAction(a)} aria-label={`${ACTION_WORDS[a].label} item #${item.index}`}>
              {ACTION_WORDS[a].label}
            </button>
          ))}
        </span>
      </div>
    </div>
  );
}
