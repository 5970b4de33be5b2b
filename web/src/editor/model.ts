// The workflow definition as YAML text and as a graph, kept one: every graph edit changes the
// YAML through the `yaml` package's Document API, which keeps the author's comments, key order
// and formatting of everything the edit does not touch. Parsing follows the server's rules:
// YAML 1.2, core schema (`yes` is text, `0x1F` is a number), duplicate keys refused.
import { applyPatch, structuredPatch } from "diff";
import { isDeepStrictEqual } from "./equal";
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, YAMLMap, YAMLSeq, type ParseOptions, type DocumentOptions, type SchemaOptions } from "yaml";

export const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = { version: "1.2", schema: "core", uniqueKeys: true, prettyErrors: true };

/** The step types, as the palette offers them (the order of `opsflow.status.StepType`). */
export const STEP_TYPES = ["script", "http", "terraform", "ansible", "ssh", "approval", "condition", "notify", "workflow"] as const;
export type StepType = (typeof STEP_TYPES)[number];

/** What a `needs` entry may wait for after the dot (`opsflow.status.OUTCOMES_BY_TYPE`, with
 *  `success` meaning the bare id: succeeded, approved or true, whichever the type has). */
export const OUTCOMES_BY_TYPE: Record<StepType, readonly string[]> = {
  script: ["success", "failed", "always"],
  http: ["success", "failed", "always"],
  terraform: ["success", "failed", "always"],
  ansible: ["success", "failed", "always"],
  ssh: ["success", "failed", "always"],
  notify: ["success", "failed", "always"],
  workflow: ["success", "failed", "always"],
  approval: ["success", "approved", "rejected", "always"],
  condition: ["success", "true", "false", "failed", "always"],
};

export function outcomesOf(type: string): readonly string[] {
  return (OUTCOMES_BY_TYPE as Record<string, readonly string[]>)[type] ?? ["success", "always"];
}

/** The fields a new step of each type starts with beyond id and type (what the schema or the
 *  loader requires, with a value that runs). */
export const STEP_TEMPLATES: Record<StepType, Record<string, unknown>> = {
  script: { shell: "sh", run: 'echo "hello"' },
  http: { url: "https://example.com/health" },
  terraform: { action: "plan" },
  ansible: { playbook: "site.yml" },
  ssh: { connection: "servers", hosts: ["web-1"], command: "uptime" },
  approval: { message: "Go ahead?" },
  condition: { if: "{{ true }}" },
  notify: { channel: "general", message: "Done" },
  workflow: { workflow: "other-workflow" },
};

export interface GraphStep {
  id: string;
  type: string;
  name: string | null;
  needs: string[];
  index: number;
}

export interface GraphEdge {
  source: string;
  target: string;
  /** `success` for a bare id, else the word after the dot. */
  outcome: string;
  /** The needs entry as written. */
  entry: string;
}

export interface Graph {
  steps: GraphStep[];
  edges: GraphEdge[];
}

/** Parses YAML text into a Document (errors in `doc.errors`, never thrown). */
export function parse(text: string): Document.Parsed {
  return parseDocument(text, YAML_OPTIONS);
}

function stepsSeq(doc: Document): YAMLSeq | null {
  const steps = doc.get("steps", true);
  return isSeq(steps) ? steps : null;
}

function str(node: unknown): string | null {
  if (isScalar(node) && node.value !== null && node.value !== undefined) return String(node.value);
  return null;
}

/** Splits a needs entry the way the server does (`opsflow.spec.checks.parse_need`): `plan`
 *  waits for plan's success, `plan.failed` for its failure. */
export function splitNeed(entry: string): { source: string; outcome: string } {
  const dot = entry.indexOf(".");
  if (dot < 0) return { source: entry, outcome: "success" };
  return { source: entry.slice(0, dot), outcome: entry.slice(dot + 1) };
}

export function needEntry(source: string, outcome: string): string {
  return outcome === "success" ? source : `${source}.${outcome}`;
}

/** The steps and their needs, as far as the text has them (steps without an id are left out). */
export function graphOf(doc: Document): Graph {
  const steps: GraphStep[] = [];
  const edges: GraphEdge[] = [];
  stepsSeq(doc)?.items.forEach((item, index) => {
    if (!isMap(item)) return;
    const id = str(item.get("id", true));
    if (!id) return;
    const needsNode = item.get("needs", true);
    const needs = isSeq(needsNode) ? needsNode.items.map(str).filter((n): n is string => n !== null) : [];
    steps.push({ id, type: str(item.get("type", true)) ?? "", name: str(item.get("name", true)), needs, index });
  });
  const known = new Set(steps.map((s) => s.id));
  for (const s of steps) {
    for (const entry of s.needs) {
      const { source, outcome } = splitNeed(entry);
      if (known.has(source)) edges.push({ source, target: s.id, outcome, entry });
    }
  }
  return { steps, edges };
}

function stepMap(doc: Document, id: string): YAMLMap | null {
  const seq = stepsSeq(doc);
  if (!seq) return null;
  for (const item of seq.items) if (isMap(item) && str(item.get("id", true)) === id) return item;
  return null;
}

/** A step id not taken yet: `script`, `script-2`, `script-3`… */
export function freeId(doc: Document, base: string): string {
  const taken = new Set(graphOf(doc).steps.map((s) => s.id));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/** A scalar node for `value`: multi-line text as a literal block (`|`), as people write scripts. */
function valueNode(doc: Document, value: unknown): unknown {
  if (typeof value === "string" && value.includes("\n")) {
    const s = new Scalar(value);
    s.type = Scalar.BLOCK_LITERAL;
    return s;
  }
  return doc.createNode(value);
}

/** Appends a step of `type` (its template's fields) and returns its id. */
export function addStep(doc: Document, type: StepType, id?: string): string {
  const stepId = id ?? freeId(doc, type);
  const node = doc.createNode({ id: stepId, type, ...STEP_TEMPLATES[type] }) as YAMLMap;
  node.flow = false;
  let seq = stepsSeq(doc);
  if (!seq) {
    seq = new YAMLSeq();
    doc.set("steps", seq);
  }
  // `steps: []` in the text: from now on a block list, one step per item.
  seq.flow = false;
  seq.items.push(node);
  return stepId;
}

/** Removes the step and every needs entry that names it (an empty needs list goes too). */
export function removeStep(doc: Document, id: string): void {
  const seq = stepsSeq(doc);
  if (!seq) return;
  seq.items = seq.items.filter((item) => !(isMap(item) && str(item.get("id", true)) === id));
  for (const item of seq.items) {
    if (!isMap(item)) continue;
    const needs = item.get("needs", true);
    if (!isSeq(needs)) continue;
    needs.items = needs.items.filter((n) => {
      const v = str(n);
      return v === null || splitNeed(v).source !== id;
    });
    if (needs.items.length === 0) item.delete("needs");
  }
}

/** Adds `entry` (e.g. `plan` or `approve.rejected`) to the needs of step `target`. */
export function addNeed(doc: Document, target: string, entry: string): void {
  const step = stepMap(doc, target);
  if (!step) throw new Error(`no step '${target}'`);
  const needs = step.get("needs", true);
  if (isSeq(needs)) {
    if (!needs.items.some((n) => str(n) === entry)) needs.items.push(doc.createNode(entry));
    return;
  }
  const seq = doc.createNode([entry]) as YAMLSeq;
  seq.flow = true;
  step.set("needs", seq);
}

/** Removes `entry` from the needs of `target` (and the needs key when it is left empty). */
export function removeNeed(doc: Document, target: string, entry: string): void {
  const step = stepMap(doc, target);
  const needs = step?.get("needs", true);
  if (!step || !isSeq(needs)) return;
  needs.items = needs.items.filter((n) => str(n) !== entry);
  if (needs.items.length === 0) step.delete("needs");
}

/** Sets (or with `undefined`/"" removes) one field of a step, keeping its place among the keys.
 *  Renaming the id renames it in every needs entry too. */
export function setStepField(doc: Document, id: string, key: string, value: unknown): void {
  const step = stepMap(doc, id);
  if (!step) throw new Error(`no step '${id}'`);
  if (value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) {
    if (key !== "id" && key !== "type") step.delete(key);
    return;
  }
  const current = step.get(key, true);
  if (isScalar(current) && (typeof value !== "string" || !value.includes("\n") || current.type === Scalar.BLOCK_LITERAL)) {
    current.value = value; // keeps the node's comments and quoting style
  } else {
    step.set(key, valueNode(doc, value));
  }
  if (key === "id" && typeof value === "string" && value !== id) {
    for (const item of stepsSeq(doc)?.items ?? []) {
      const needs = isMap(item) ? item.get("needs", true) : null;
      if (!isSeq(needs)) continue;
      for (const n of needs.items) {
        const v = str(n);
        if (v === null || !isScalar(n)) continue;
        const { source, outcome } = splitNeed(v);
        if (source === id) n.value = needEntry(value, outcome);
      }
    }
  }
}

/** A top-level field (id, name, description…), set in place or appended; "" removes it. */
export function setTopField(doc: Document, key: string, value: string): void {
  if (value === "") {
    if (key !== "id") doc.delete(key);
    return;
  }
  const current = doc.get(key, true);
  if (isScalar(current)) current.value = value;
  else doc.set(key, value);
}

/** A step's field values as plain data (for the form). */
export function stepFields(doc: Document, id: string): Record<string, unknown> {
  const step = stepMap(doc, id);
  return step ? (step.toJSON() as Record<string, unknown>) : {};
}

/** Would needing `source` from `target` close a circle? (Is target already upstream of source?) */
export function wouldCycle(graph: Graph, source: string, target: string): string[] | null {
  if (source === target) return [source, target];
  // Walk upstream from source along needs; reaching target means target -> ... -> source.
  const parents = new Map<string, string[]>();
  for (const e of graph.edges) (parents.get(e.target) ?? parents.set(e.target, []).get(e.target)!).push(e.source);
  const prev = new Map<string, string>();
  const queue = [source];
  const seen = new Set([source]);
  while (queue.length) {
    const node = queue.shift()!;
    for (const p of parents.get(node) ?? []) {
      if (seen.has(p)) continue;
      prev.set(p, node);
      if (p === target) {
        const path = [target];
        let cur = target;
        while (cur !== source) {
          cur = prev.get(cur)!;
          path.push(cur);
        }
        return [...path, target];
      }
      seen.add(p);
      queue.push(p);
    }
  }
  return null;
}

const STRINGIFY = { lineWidth: 80, flowCollectionPadding: false } as const;

/** The text of a Document (the `yaml` package's stringifier, comments included). */
export function textOf(doc: Document): string {
  return doc.toString(STRINGIFY);
}

/** Applies `change` to a parse of `text` and returns the new text; throws if the text does not
 *  parse. The stringifier refolds long folded scalars (`>-`), so the new text is the author's
 *  text with only the lines the change touched replaced: the change is taken as a line patch
 *  from the unchanged document's stringified text to the changed one's, applied to `text`, and
 *  kept only when it reads back as the same data (else the changed document's text is used). */
export function edit(text: string, change: (doc: Document) => void): string {
  const doc = parse(text);
  if (doc.errors.length) throw new Error(`the YAML has errors: ${doc.errors[0]!.message}`);
  const before = textOf(doc);
  change(doc);
  const after = textOf(doc);
  if (before === text || before === after) return before === after ? text : after;
  // Less context where the stringifier's refolding sits next to the change; every result is
  // checked, so a patch that lands in the wrong place is never taken.
  const want = doc.toJS();
  for (const context of [2, 1, 0]) {
    const patched = applyPatch(text, structuredPatch("a", "b", before, after, undefined, undefined, { context }));
    if (patched === false) continue;
    const back = parse(patched);
    if (!back.errors.length && isDeepStrictEqual(back.toJS(), want) && sameComments(patched, after)) return patched;
  }
  return after;
}

/** The comments of two texts are the same, in the same order (a patch placed wrongly could move
 *  one to another step without changing the data). */
function sameComments(a: string, b: string): boolean {
  const comments = (t: string) => {
    const out: string[] = [];
    visit(parse(t), (c) => out.push(c));
    return out.join("\n");
  };
  return comments(a) === comments(b);
}

function visit(doc: Document, push: (comment: string) => void): void {
  if (doc.commentBefore) push(doc.commentBefore);
  const walk = (node: unknown): void => {
    if (!node || typeof node !== "object") return;
    const n = node as { commentBefore?: string | null; comment?: string | null; items?: unknown[]; key?: unknown; value?: unknown };
    if (n.commentBefore) push(n.commentBefore);
    if (n.key !== undefined) walk(n.key);
    if (n.value !== undefined && typeof n.value === "object") walk(n.value);
    n.items?.forEach(walk);
    if (n.comment) push(n.comment);
  };
  walk(doc.contents);
  if (doc.comment) push(doc.comment);
}
