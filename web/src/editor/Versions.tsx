// A workflow's published versions: who published each and when, any one read-only, a diff of
// any two (the YAML line by line, and the graph with added, removed and changed steps marked),
// and restoring one as the draft. The choice lives in the address (?tab=versions&v=2 or
// &a=1&b=2), so a diff can be linked.
import { diffLines } from "diff";
import { useMemo, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { useCan } from "../auth/session";
import { ConfirmDialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { exactTime, relativeTime } from "../components/format";
import { useVersion, useVersions, type VersionDetail } from "./api";
import { isDeepStrictEqual } from "./equal";
import FlowGraph, { edgeId, type Mark } from "./FlowGraph";
import { graphOf, parse, type Graph } from "./model";
import YamlEditor from "./YamlEditor";

export interface GraphDiff {
  graph: Graph;
  marks: Map<string, Mark>;
  edgeMarks: Map<string, Mark>;
}

type StepData = Record<string, unknown> & { id?: unknown };

/** The union of two versions' graphs: B's steps in B's order, then the steps only A had; a step
 *  is `changed` when its definition differs, an edge `added`/`removed` when only one side has it. */
export function graphDiff(a: VersionDetail, b: VersionDetail): GraphDiff {
  const ga = graphOf(parse(a.yaml));
  const gb = graphOf(parse(b.yaml));
  const stepsOf = (v: VersionDetail) => new Map(((v.definition.steps as StepData[] | undefined) ?? []).map((s) => [String(s.id), s]));
  const da = stepsOf(a);
  const db = stepsOf(b);
  const marks = new Map<string, Mark>();
  const inA = new Set(ga.steps.map((s) => s.id));
  const inB = new Set(gb.steps.map((s) => s.id));
  for (const s of gb.steps) {
    if (!inA.has(s.id)) marks.set(s.id, "added");
    else if (!isDeepStrictEqual(da.get(s.id), db.get(s.id))) marks.set(s.id, "changed");
  }
  const removed = ga.steps.filter((s) => !inB.has(s.id));
  for (const s of removed) marks.set(s.id, "removed");
  const edgeMarks = new Map<string, Mark>();
  const ea = new Set(ga.edges.map(edgeId));
  const eb = new Set(gb.edges.map(edgeId));
  for (const e of gb.edges) if (!ea.has(edgeId(e))) edgeMarks.set(edgeId(e), "added");
  const gone = ga.edges.filter((e) => !eb.has(edgeId(e)));
  for (const e of gone) edgeMarks.set(edgeId(e), "removed");
  return { graph: { steps: [...gb.steps, ...removed], edges: [...gb.edges, ...gone] }, marks, edgeMarks };
}

function TextDiff({ a, b }: { a: string; b: string }) {
  const parts = useMemo(() => diffLines(a, b), [a, b]);
  let left = 0;
  let right = 0;
  const rows: { kind: "same" | "add" | "del"; text: string; l: number | null; r: number | null }[] = [];
  for (const p of parts) {
    const lines = p.value.replace(/\n$/, "").split("\n");
    for (const text of lines) {
      if (p.added) rows.push({ kind: "add", text, l: null, r: ++right });
      else if (p.removed) rows.push({ kind: "del", text, l: ++left, r: null });
      else rows.push({ kind: "same", text, l: ++left, r: ++right });
    }
  }
  const added = rows.filter((r) => r.kind === "add").length;
  const deleted = rows.filter((r) => r.kind === "del").length;
  return (
    <div className="text-diff" data-testid="text-diff">
      <p className="small">
        <span className="diff-count add">+{added} added</span> <span className="diff-count del">−{deleted} removed</span> lines
      </p>
      <pre aria-label="Line diff of the YAML">
        {rows.map((r, i) => (
          <div key={i} className={`diff-line diff-${r.kind}`}>
            <span className="diff-no">{r.l ?? ""}</span>
            <span className="diff-no">{r.r ?? ""}</span>
            <span className="diff-sign" aria-label={r.kind === "add" ? "added" : r.kind === "del" ? "removed" : undefined}>
              {r.kind === "add" ? "+" : r.kind === "del" ? "−" : " "}
            </span>
            <span className="diff-text">{r.text}</span>
          </div>
        ))}
      </pre>
    </div>
  );
}

const steps = (n: number) => `${n} step${n === 1 ? "" : "s"}`;

function DiffView({ workflowId, a, b }: { workflowId: string; a: number; b: number }) {
  const va = useVersion(workflowId, a);
  const vb = useVersion(workflowId, b);
  if (va.isError || vb.isError) return <ErrorMessage error={va.error ?? vb.error} />;
  if (!va.data || !vb.data) return <p className="muted">Loading…</p>;
  const d = graphDiff(va.data, vb.data);
  const count = (m: Mark) => [...d.marks.values()].filter((x) => x === m).length;
  return (
    <section aria-labelledby="diff-title" className="version-diff">
      <h3 id="diff-title">
        Changes from v{a} to v{b}
      </h3>
      <p className="small diff-legend">
        <span className="legend mark-added">+ {steps(count("added"))} added</span> <span className="legend mark-removed">− {steps(count("removed"))} removed</span>{" "}
        <span className="legend mark-changed">△ {steps(count("changed"))} changed</span>
      </p>
      <div className="diff-grid">
        <FlowGraph graph={d.graph} marks={d.marks} edgeMarks={d.edgeMarks} label={`Graph changes from v${a} to v${b}`} testId="diff-graph" />
        <TextDiff a={va.data.yaml} b={vb.data.yaml} />
      </div>
    </section>
  );
}

function VersionView({ workflowId, number }: { workflowId: string; number: number }) {
  const v = useVersion(workflowId, number);
  const graph = useMemo(() => (v.data ? graphOf(parse(v.data.yaml)) : null), [v.data]);
  if (v.isError) return <ErrorMessage error={v.error} />;
  if (!v.data || !graph) return <p className="muted">Loading…</p>;
  return (
    <section aria-labelledby="version-title" className="version-view">
      <h3 id="version-title">
        Version {number} <span className="muted small">(read-only)</span>
      </h3>
      <div className="editor-grid">
        <YamlEditor value={v.data.yaml} readOnly label={`YAML of version ${number} (read-only)`} />
        <FlowGraph graph={graph} label={`Graph of version ${number}`} testId="version-graph" />
      </div>
    </section>
  );
}

export default function Versions({ workflowId, onRestore }: { workflowId: string; onRestore: (number: number) => Promise<void> }) {
  const versions = useVersions(workflowId);
  const [search, setSearch] = useSearchParams();
  const canEdit = useCan("workflows:update");
  const [restoring, setRestoring] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const list = versions.data ?? [];
  const view = Number(search.get("v")) || null;
  const newest = list[0]?.number ?? null;
  const a = Number(search.get("a")) || (list[1]?.number ?? null);
  const b = Number(search.get("b")) || newest;
  const update = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) next.delete(k);
      else next.set(k, v);
    }
    setSearch(next);
  };
  if (versions.isError) return <ErrorMessage error={versions.error} />;
  if (!versions.data) return <p className="muted">Loading…</p>;
  if (list.length === 0) return <p className="muted">Nothing is published yet: Publish makes the draft version 1.</p>;
  return (
    <div className="versions">
      <div className="table-wrap">
        <table className="table compact">
          <caption className="visually-hidden">Published versions, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Published by</th>
              <th scope="col">When</th>
              <th scope="col">Compare from</th>
              <th scope="col">Compare to</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((v) => (
              <tr key={v.number} className={view === v.number ? "is-current" : undefined}>
                <td>
                  <strong>v{v.number}</strong>
                  {v.number === newest && <span className="muted small"> (latest)</span>}
                </td>
                <td>{v.created_by ?? "—"}</td>
                <td title={exactTime(v.created_at)}>{relativeTime(v.created_at)}</td>
                <td>
                  <input type="radio" name="diff-a" aria-label={`Compare from v${v.number}`} checked={a === v.number} onChange={() => update({ a: String(v.number), v: null })} />
                </td>
                <td>
                  <input type="radio" name="diff-b" aria-label={`Compare to v${v.number}`} checked={b === v.number} onChange={() => update({ b: String(v.number), v: null })} />
                </td>
                <td className="actions">
                  <button type="button" className="small" onClick={() => update({ v: String(v.number) })}>
                    View v{v.number}
                  </button>
                  {canEdit && (
                    <button type="button" className="small" onClick={() => setRestoring(v.number)}>
                      Restore v{v.number} as draft
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="version-actions">
        <button type="button" className="primary" disabled={!a || !b || a === b} onClick={() => update({ v: null, a: String(a), b: String(b) })}>
          Compare v{a ?? "?"} → v{b ?? "?"}
        </button>
        {view && (
          <button type="button" onClick={() => update({ v: null })}>
            Back to the comparison
          </button>
        )}
      </div>
      {view ? <VersionView workflowId={workflowId} number={view} /> : a && b && a !== b ? <DiffView workflowId={workflowId} a={a} b={b} /> : <p className="muted">Pick two versions to compare.</p>}
      {restoring !== null && (
        <ConfirmDialog
          title={`Restore version ${restoring}?`}
          confirmLabel={`Restore v${restoring} as draft`}
          danger={false}
          busy={busy}
          onClose={() => setRestoring(null)}
          onConfirm={async () => {
            setBusy(true);
            try {
              await onRestore(restoring);
              setRestoring(null);
            } finally {
              setBusy(false);
            }
          }}
        >
          <p>
            The draft of <strong>{workflowId}</strong> becomes the YAML of version {restoring}, comments included. Unsaved edits in the editor are replaced. Nothing is published until you publish.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
