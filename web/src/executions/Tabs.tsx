import { useState } from "react";
import { elapsed, exactTime, formatDuration } from "../components/format";
import { JsonView } from "../components/JsonView";
import { StatusBadge, statusStyle } from "../components/status";
import type { ExecutionView } from "./api";
import { attemptNumbers, itemLabel, type Item } from "./fanOut";

const ITEMS_PAGE = 100;

/** The gathered outputs of a fanned-out step's items, in item order, a page at a time (a step
 *  may have 1,000 items); live while the step runs, since each row is the item's latest
 *  attempt. */
export function ItemOutputs({ step, items }: { step: string; items: readonly Item[] }) {
  const [shown, setShown] = useState(ITEMS_PAGE);
  return (
    <div className="item-outputs">
      <table className="table compact" aria-label={`Outputs of the items of ${step}`}>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Item</th>
            <th scope="col">Status</th>
            <th scope="col">Outputs</th>
          </tr>
        </thead>
        <tbody>
          {items.slice(0, shown).map((i) => (
            <tr key={i.index} data-item-outputs={i.index}>
              <td className="nowrap muted">{i.index}</td>
              <td>
                <code>{itemLabel(i.item)}</code>
              </td>
              <td>
                <StatusBadge status={i.status} />
              </td>
              <td>
                {Object.keys(i.outputs).length > 0 ? <code className="item-outputs-json">{JSON.stringify(i.outputs)}</code> : <span className="muted">{i.error ?? "—"}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {items.length > shown && (
        <button type="button" className="small" onClick={() => setShown((n) => n + ITEMS_PAGE)}>
          Show {Math.min(ITEMS_PAGE, items.length - shown)} more of {items.length - shown}
        </button>
      )}
    </div>
  );
}

/** A fanned-out step's outputs without the gathered items, which the table shows. */
function withoutItems(outputs: Record<string, unknown>): Record<string, unknown> {
  const { items: _shown, ...rest } = outputs;
  return rest;
}

interface Changes {
  add?: number;
  change?: number;
  destroy?: number;
}

/** Terraform's change counts as +add ~change −destroy, when a step's outputs carry them. */
export function PlanSummary({ outputs }: { outputs: Record<string, unknown> }) {
  const changes = outputs.changes as Changes | undefined;
  const text = (outputs.plan_text ?? outputs.plan) as unknown;
  if (!changes && typeof text !== "string") return null;
  return (
    <div className="plan">
      {changes && (
        <p className="plan-counts">
          <span className="plan-add">+{changes.add ?? 0} to add</span> <span className="plan-change">~{changes.change ?? 0} to change</span>{" "}
          <span className="plan-destroy">−{changes.destroy ?? 0} to destroy</span>
        </p>
      )}
      {typeof text === "string" && (
        <details>
          <summary>Plan</summary>
          <pre className="json" tabIndex={0} aria-label="Plan text">
            {text}
          </pre>
        </details>
      )}
    </div>
  );
}

/** The outputs without the plan text, which the plan block above shows as it reads (in JSON it
 *  is one very long line of escaped newlines). */
function withoutPlanText(outputs: Record<string, unknown>): Record<string, unknown> {
  if (typeof outputs.plan_text !== "string") return outputs;
  const { plan_text: _shown, ...rest } = outputs;
  return rest;
}

/** The tabs that show one item of a fanned-out step when one is chosen (the header names the
 *  item only on these; the others show the whole step). */
export const ITEM_TABS: ReadonlySet<string> = new Set(["logs", "outputs"]);

/** The outputs of the steps (only `selected`'s, if one is chosen) and of the workflow; with
 *  `selectedItem` chosen, only that item's outputs of the selected fanned-out step. */
export function OutputsTab({ ex, selected, selectedItem = null }: { ex: ExecutionView; selected: string | null; selectedItem?: number | null }) {
  const steps = ex.steps.filter((s) => (!selected || s.id === selected) && (Object.keys(s.outputs).length > 0 || (s.items ?? []).length > 0));
  const workflowOutputs = !selected && Object.keys(ex.outputs).length > 0;
  if (steps.length === 0 && !workflowOutputs) return <p className="muted">{selected ? `${selected} has no outputs.` : "No step has outputs yet."}</p>;
  return (
    <div className="outputs">
      {workflowOutputs && (
        <section>
          <h3>Workflow outputs</h3>
          <JsonView value={ex.outputs} label="Workflow outputs" />
        </section>
      )}
      {steps.map((s) =>
        s.fan_out && s.id === selected && selectedItem !== null ? (
          <section key={s.id}>
            <h3>
              {s.id} item #{selectedItem}
            </h3>
            <ItemOutputs step={s.id} items={(s.items ?? []).filter((i) => i.index === selectedItem)} />
          </section>
        ) : s.fan_out ? (
          <section key={s.id}>
            <h3>{s.id}</h3>
            {Object.keys(s.outputs).length > 0 && <JsonView value={withoutItems(s.outputs)} label={`Outputs of ${s.id}`} />}
            <h4>Items</h4>
            <ItemOutputs step={s.id} items={s.items ?? []} />
          </section>
        ) : (
          <section key={s.id}>
            <h3>{s.id}</h3>
            <PlanSummary outputs={s.outputs} />
            <JsonView value={withoutPlanText(s.outputs)} label={`Outputs of ${s.id}`} />
          </section>
        ),
      )}
    </div>
  );
}

export function VariablesTab({ ex }: { ex: ExecutionView }) {
  return (
    <div className="variables">
      <section>
        <h3>Params</h3>
        <JsonView value={ex.params} label="Params" />
      </section>
      <section>
        <h3>Trigger</h3>
        <JsonView value={{ ...ex.trigger, data: ex.trigger_data }} label="Trigger data" />
      </section>
    </div>
  );
}

export function EngineLogTab({ ex, selected }: { ex: ExecutionView; selected: string | null }) {
  const rows = ex.engine_log.filter((e) => !selected || e.step === selected);
  if (rows.length === 0) return <p className="muted">No engine decisions recorded{selected ? ` for ${selected}` : ""}.</p>;
  return (
    <table className="table compact">
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Step</th>
          <th scope="col">Decision</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((e, i) => (
          <tr key={i}>
            <td className="nowrap small">{e.at ? new Date(e.at).toLocaleTimeString() : ""}</td>
            <td>{e.step ?? "—"}</td>
            <td>{e.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A bar's label: `deploy #2` for a step's second attempt, `deploy item 3 #2` for the second
 *  attempt of item 3 of a fanned-out step (its jobs' `attempt` counts every attempt of the step,
 *  so an item's attempts are numbered here, in order). */
export function attemptLabels(jobs: readonly { id: string; attempt: number; item?: number | null }[]): Map<string, string> {
  const numbers = attemptNumbers(jobs);
  return new Map(jobs.map((j) => [j.id, `${j.item === null || j.item === undefined ? "" : `item ${j.item} `}#${numbers.get(j.id)}`]));
}

/** A Gantt chart of every attempt: one bar per job, placed by start and end. */
export function TimelineTab({ ex, onSelect }: { ex: ExecutionView; onSelect: (step: string) => void }) {
  const bars = ex.steps.flatMap((s) => {
    const labels = attemptLabels(s.jobs);
    return s.jobs
      .filter((j) => j.started_at)
      .map((j) => ({ step: s.id, label: labels.get(j.id)!, purpose: j.purpose, status: j.status, start: Date.parse(j.started_at!), end: j.ended_at ? Date.parse(j.ended_at) : Date.now() }));
  });
  if (bars.length === 0) return <p className="muted">No attempt has started yet.</p>;
  const t0 = Math.min(...bars.map((b) => b.start));
  const t1 = Math.max(...bars.map((b) => b.end), t0 + 1);
  const span = t1 - t0;
  return (
    <div className="timeline" role="list" aria-label="Attempts over time">
      <div className="timeline-axis muted small">
        <span>{exactTime(new Date(t0).toISOString())}</span>
        <span>{formatDuration(elapsed(new Date(t0).toISOString(), new Date(t1).toISOString()))} total</span>
      </div>
      {bars.map((b, i) => {
        const style = statusStyle(b.status);
        return (
          <div key={i} className="timeline-row" role="listitem">
            <button type="button" className="link-button timeline-label" onClick={() => onSelect(b.step)}>
              {b.step} {b.label}
              {b.purpose === "cleanup" ? " cleanup" : ""}
            </button>
            <div className="timeline-track">
              <div
                className={`timeline-bar tone-${style.tone}`}
                style={{ left: `${((b.start - t0) / span) * 100}%`, width: `${Math.max(0.5, ((b.end - b.start) / span) * 100)}%` }}
                title={`${style.label}, ${formatDuration(b.end - b.start)}`}
              />
            </div>
            <span className="small muted nowrap">
              {style.label} · {formatDuration(b.end - b.start)}
            </span>
          </div>
        );
      })}
    </div>
  );
}
