// The visual builder: the definition as a graph you edit. Add a step from the palette, connect
// needs by dragging from a step's right handle to another's left one (choosing the outcome the
// source can have), edit the selected step in a form generated from the JSON Schema, delete,
// lay out again. Every change is written to the YAML text through the model (comments and key
// order kept); an edge the validator refuses (a circle, an impossible outcome) is not written
// and its message is shown.
import { useMemo, useState } from "react";
import { stringify } from "yaml";
import { Dialog } from "../components/Dialog";
import { validateYaml } from "./api";
import FlowGraph, { TYPE_ICONS } from "./FlowGraph";
import {
  addNeed,
  addStep,
  edit,
  graphOf,
  needEntry,
  outcomesOf,
  parse,
  removeNeed,
  removeStep,
  setStepField,
  setTopField,
  splitNeed,
  STEP_TYPES,
  stepFields,
  wouldCycle,
  YAML_OPTIONS,
  type Graph,
  type GraphEdge,
} from "./model";
import type { FieldDoc, SchemaDocs } from "./schemaDocs";
import type { Finding } from "./YamlEditor";

const OUTCOME_WORDS: Record<string, string> = {
  success: "succeeds (succeeded, approved or true)",
  failed: "fails",
  approved: "is approved",
  rejected: "is rejected",
  true: "is true",
  false: "is false",
  always: "ends, whatever the outcome",
};

/** Whether connecting `entry` into `target` may be written: null, or why not (the validator's
 *  words when the server answers; the same check done here when it cannot be reached). */
export async function refusal(text: string, graph: Graph, source: string, target: string, outcome: string, current: Finding[]): Promise<{ reason: string | null; text: string }> {
  const entry = needEntry(source, outcome);
  const step = graph.steps.find((s) => s.id === target);
  if (step?.needs.includes(entry)) return { reason: `'${target}' already needs '${entry}'`, text };
  const candidate = edit(text, (doc) => addNeed(doc, target, entry));
  const k = step ? step.needs.length : 0;
  const at = `steps[${step?.index ?? 0}].needs[${k}]`;
  let found: Finding[] | null = null;
  try {
    found = await validateYaml(candidate);
  } catch {
    found = null;
  }
  if (found) {
    const known = new Set(current.map((f) => `${f.loc} ${f.msg}`));
    const fresh = found.filter((f) => f.severity === "error" && !known.has(`${f.loc} ${f.msg}`));
    const bad = fresh.find((f) => f.loc === at || f.msg.includes("cycle") || f.msg.includes(`'${entry}'`));
    if (bad) return { reason: bad.msg, text };
    return { reason: null, text: candidate };
  }
  const circle = wouldCycle(graph, source, target);
  if (circle) return { reason: `needs form a cycle: ${circle.join(" -> ")}; remove one of these needs`, text };
  if (!outcomesOf(graph.steps.find((s) => s.id === source)?.type ?? "").includes(outcome)) return { reason: `step '${source}' has no outcome '${outcome}'`, text };
  return { reason: null, text: candidate };
}

const LONG_TEXT = new Set(["run", "message", "if", "body", "description"]);

function FieldInput({ field, value, onCommit }: { field: FieldDoc; value: unknown; onCommit: (v: unknown) => void }) {
  const id = `field-${field.name}`;
  const hint = `${id}-hint`;
  const label = (
    <label htmlFor={id}>
      {field.name}
      {field.required ? " *" : ""} <span className="muted small">{field.type}</span>
    </label>
  );
  const describe = field.description ? (
    <span id={hint} className="muted small field-hint">
      {field.description}
    </span>
  ) : null;
  const shown = value === undefined || value === null ? "" : value;
  if (field.values.length) {
    return (
      <div className="field">
        {label}
        <select
          id={id}
          aria-describedby={describe ? hint : undefined}
          value={String(shown)}
          onChange={(e) => {
            const v = e.target.value;
            onCommit(v === "" ? undefined : v === "true" ? true : v === "false" ? false : v);
          }}
        >
          <option value="">{field.default !== undefined && field.default !== null ? `(default: ${String(field.default)})` : "(not set)"}</option>
          {field.values.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
        {describe}
      </div>
    );
  }
  const scalar = field.type === "text" || field.type === "integer" || field.type === "number" || field.type.includes(" or ");
  const structured = !scalar || typeof shown === "object";
  const textValue = structured ? (shown === "" ? "" : stringify(shown, YAML_OPTIONS).trimEnd()) : String(shown);
  const commit = (raw: string) => {
    if (raw === textValue) return;
    if (raw.trim() === "") return onCommit(undefined);
    if (structured) {
      const doc = parse(raw);
      if (doc.errors.length) return;
      return onCommit(doc.toJS());
    }
    if (field.type === "integer" || field.type === "number") {
      const n = Number(raw);
      return onCommit(Number.isFinite(n) ? n : raw);
    }
    onCommit(field.name === "run" && raw.includes("\n") && !raw.endsWith("\n") ? `${raw}\n` : raw);
  };
  const multi = structured || LONG_TEXT.has(field.name) || textValue.includes("\n");
  return (
    <div className="field">
      {label}
      {multi ? (
        <textarea
          id={id}
          key={textValue}
          aria-describedby={describe ? hint : undefined}
          defaultValue={field.name === "run" ? textValue.replace(/\n$/, "") : textValue}
          rows={field.name === "run" ? 5 : structured ? 3 : 2}
          spellCheck={false}
          placeholder={structured ? "YAML" : undefined}
          onBlur={(e) => commit(field.name === "run" && e.target.value.includes("\n") ? `${e.target.value}\n` : e.target.value)}
        />
      ) : (
        <input
          id={id}
          key={textValue}
          aria-describedby={describe ? hint : undefined}
          defaultValue={textValue}
          onBlur={(e) => commit(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter") commit((e.target as HTMLInputElement).value);
          }}
        />
      )}
      {describe}
    </div>
  );
}

function StepForm({
  text,
  graph,
  stepId,
  schema,
  onText,
  onSelect,
  onConnect,
}: {
  text: string;
  graph: Graph;
  stepId: string;
  schema: SchemaDocs | null;
  onText: (t: string) => void;
  onSelect: (id: string | null) => void;
  onConnect: (source: string, target: string, outcome: string) => void;
}) {
  const doc = useMemo(() => parse(text), [text]);
  const step = graph.steps.find((s) => s.id === stepId);
  const values = stepFields(doc, stepId);
  const [needFrom, setNeedFrom] = useState("");
  const [needOutcome, setNeedOutcome] = useState("success");
  if (!step) return null;
  const fields = (schema?.fields([{ key: "steps" }, { item: true, type: step.type }]) ?? []).filter((f) => f.name !== "needs" && f.name !== "type");
  const set = (key: string, value: unknown) => {
    try {
      onText(edit(text, (d) => setStepField(d, stepId, key, value)));
      if (key === "id" && typeof value === "string") onSelect(value);
    } catch {
      /* the text does not parse: nothing is written */
    }
  };
  const others = graph.steps.filter((s) => s.id !== stepId);
  const fromType = graph.steps.find((s) => s.id === needFrom)?.type ?? "";
  return (
    <form className="step-form" aria-label={`Step ${stepId}`} onSubmit={(e) => e.preventDefault()}>
      <div className="step-form-head">
        <h3>
          <span aria-hidden="true">{TYPE_ICONS[step.type] ?? "•"}</span> {stepId} <span className="muted small">{step.type} step</span>
        </h3>
        <button
          type="button"
          className="small danger-text"
          onClick={() => {
            onText(edit(text, (d) => removeStep(d, stepId)));
            onSelect(null);
          }}
        >
          Delete step
        </button>
      </div>
      <fieldset className="needs-box">
        <legend>Needs</legend>
        {step.needs.length === 0 && <p className="muted small">Starts first (needs nothing).</p>}
        <ul className="plain">
          {step.needs.map((n) => {
            const { source, outcome } = splitNeed(n);
            return (
              <li key={n}>
                <code>{source}</code> {OUTCOME_WORDS[outcome] ?? outcome}{" "}
                <button type="button" className="small" aria-label={`Remove need ${n}`} onClick={() => onText(edit(text, (d) => removeNeed(d, stepId, n)))}>
                  Remove
                </button>
              </li>
            );
          })}
        </ul>
        {others.length > 0 && (
          <div className="need-add">
            <label htmlFor="need-from" className="visually-hidden">
              Step to wait for
            </label>
            <select id="need-from" value={needFrom} onChange={(e) => setNeedFrom(e.target.value)}>
              <option value="">Wait for…</option>
              {others.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.id}
                </option>
              ))}
            </select>
            <label htmlFor="need-outcome" className="visually-hidden">
              Outcome
            </label>
            <select id="need-outcome" value={needOutcome} onChange={(e) => setNeedOutcome(e.target.value)} disabled={!needFrom}>
              {(needFrom ? outcomesOf(fromType) : ["success"]).map((o) => (
                <option key={o} value={o}>
                  {o}
                </option>
              ))}
            </select>
            <button type="button" className="small" disabled={!needFrom} onClick={() => onConnect(needFrom, stepId, outcomesOf(fromType).includes(needOutcome) ? needOutcome : "success")}>
              Add need
            </button>
          </div>
        )}
      </fieldset>
      {fields.map((f) => (
        <FieldInput key={f.name} field={f} value={values[f.name]} onCommit={(v) => set(f.name, v)} />
      ))}
    </form>
  );
}

function WorkflowForm({ text, onText }: { text: string; onText: (t: string) => void }) {
  const data = (parse(text).toJS() ?? {}) as Record<string, unknown>;
  const field = (key: string, label: string, long = false) => {
    const value = typeof data[key] === "string" ? (data[key] as string) : "";
    const props = {
      id: `wf-${key}`,
      key: value,
      defaultValue: value,
      onBlur: (e: { target: { value: string } }) => {
        if (e.target.value !== value) onText(edit(text, (d) => setTopField(d, key, e.target.value)));
      },
    };
    return (
      <div className="field">
        <label htmlFor={`wf-${key}`}>{label}</label>
        {long ? <textarea rows={3} {...props} /> : <input {...props} />}
      </div>
    );
  };
  return (
    <form className="step-form" aria-label="Workflow" onSubmit={(e) => e.preventDefault()}>
      <h3>Workflow</h3>
      {field("id", "Id")}
      {field("name", "Name")}
      {field("description", "Description", true)}
      <p className="muted small">Select a step to edit it. Drag from a step&apos;s right edge to another step to make it wait.</p>
    </form>
  );
}

export default function Builder({
  text,
  onText,
  schema,
  findings,
}: {
  text: string;
  onText: (t: string) => void;
  schema: SchemaDocs | null;
  findings: Finding[];
}) {
  const doc = useMemo(() => parse(text), [text]);
  const broken = doc.errors.length > 0;
  const graph = useMemo(() => graphOf(doc), [doc]);
  const [selected, setSelected] = useState<string | null>(null);
  const [pending, setPending] = useState<{ source: string; target: string } | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  const [layoutKey, setLayoutKey] = useState(0);
  const [busy, setBusy] = useState(false);

  const connect = async (source: string, target: string, outcome: string) => {
    setPending(null);
    setBusy(true);
    try {
      const result = await refusal(text, graph, source, target, outcome, findings);
      setRefused(result.reason ? `Not connected: ${result.reason}` : null);
      if (!result.reason) onText(result.text);
    } finally {
      setBusy(false);
    }
  };

  const sourceType = pending ? (graph.steps.find((s) => s.id === pending.source)?.type ?? "") : "";
  return (
    <div className="builder">
      <aside className="palette" aria-label="Step types">
        <h3>Add a step</h3>
        {STEP_TYPES.map((t) => (
          <button
            key={t}
            type="button"
            className="palette-item"
            disabled={broken}
            onClick={() => {
              let id = "";
              onText(edit(text, (d) => void (id = addStep(d, t))));
              setSelected(id);
              setRefused(null);
            }}
          >
            <span aria-hidden="true" className="flow-node-icon">
              {TYPE_ICONS[t]}
            </span>{" "}
            {t}
          </button>
        ))}
        <hr />
        <button type="button" onClick={() => setLayoutKey((k) => k + 1)}>
          Auto-layout
        </button>
      </aside>
      <div className="builder-canvas">
        {broken && (
          <p className="banner-warning" role="status">
            The YAML does not parse ({doc.errors[0]!.message.split("\n")[0]}): fix it in the YAML tab to edit the graph.
          </p>
        )}
        {refused && (
          <p className="banner-error" role="alert">
            {refused}{" "}
            <button type="button" className="link-button" onClick={() => setRefused(null)}>
              Dismiss
            </button>
          </p>
        )}
        {busy && <p className="muted small builder-busy">Checking the new need…</p>}
        <FlowGraph
          graph={graph}
          editable={!broken}
          selected={selected}
          onSelect={setSelected}
          layoutKey={layoutKey}
          label="Workflow graph (editable)"
          testId="builder-canvas"
          onConnect={(source, target) => {
            setRefused(null);
            setPending({ source, target });
          }}
          onDeleteSteps={(ids) => {
            onText(edit(text, (d) => ids.forEach((id) => removeStep(d, id))));
            setSelected(null);
          }}
          onDeleteEdges={(edges: GraphEdge[]) => onText(edit(text, (d) => edges.forEach((e) => removeNeed(d, e.target, e.entry))))}
        />
      </div>
      <aside className="inspector" aria-label="Properties">
        {selected && graph.steps.some((s) => s.id === selected) ? (
          <StepForm key={selected} text={text} graph={graph} stepId={selected} schema={schema} onText={onText} onSelect={setSelected} onConnect={(s, t, o) => void connect(s, t, o)} />
        ) : (
          <WorkflowForm text={text} onText={onText} />
        )}
      </aside>
      {pending && (
        <Dialog title={`${pending.target} waits for ${pending.source}`} onClose={() => setPending(null)}>
          <p>
            Run <strong>{pending.target}</strong> when <strong>{pending.source}</strong> ({sourceType || "no type"})…
          </p>
          <div className="outcome-choices" role="group" aria-label="Outcome">
            {outcomesOf(sourceType).map((o) => (
              <button key={o} type="button" className={o === "success" ? "primary" : undefined} onClick={() => void connect(pending.source, pending.target, o)}>
                {o}: {OUTCOME_WORDS[o]}
              </button>
            ))}
          </div>
        </Dialog>
      )}
    </div>
  );
}
