// The YAML text editor: CodeMirror 6 with YAML highlighting, completion and hover docs from our
// JSON Schema (key names, allowed values, step ids in needs), and the server's validation
// findings drawn at their lines.
import { autocompletion, type Completion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { Compartment, EditorState } from "@codemirror/state";
import { hoverTooltip, type Tooltip } from "@codemirror/view";
import { basicSetup, EditorView } from "codemirror";
import { useEffect, useRef } from "react";
import { graphOf, outcomesOf, parse } from "./model";
import { itemType, pathAt, type PathPart, type SchemaDocs } from "./schemaDocs";

/** A validation finding of the server, located (1-based line and column). */
export interface Finding {
  loc: string;
  msg: string;
  line: number | null;
  column: number | null;
  severity: "error" | "warning";
}

/** The path and key of a `key:` (or `- key:`, or a partial key) on line `n` (0-based). */
function placeOf(lines: string[], n: number, before: string): { path: PathPart[]; indent: number } {
  const m = /^( *)((?:- +)?)/.exec(before)!;
  const indent = m[1]!.length;
  if (m[2]) {
    const content = indent + m[2].length;
    return { path: [...pathAt(lines, n, indent), { item: true, type: itemType(lines, n, content) }], indent: content };
  }
  return { path: pathAt(lines, n, indent), indent };
}

export function completionSource(docs: () => SchemaDocs | null) {
  return (ctx: CompletionContext): CompletionResult | null => {
    const schema = docs();
    if (!schema) return null;
    const line = ctx.state.doc.lineAt(ctx.pos);
    const before = line.text.slice(0, ctx.pos - line.from);
    const lines = ctx.state.doc.toString().split("\n");
    const n = line.number - 1;

    // A needs entry, in a flow list (`needs: [a, b.failed]`) or a block list (`- a`).
    const inFlow = /needs:\s*\[(?:[^\]]*,)?\s*([A-Za-z0-9_.-]*)$/.exec(before);
    const item = /^( *)- +([A-Za-z0-9_.-]*)$/.exec(before);
    const inBlock = item && ((p) => p && "key" in p && p.key === "needs")(pathAt(lines, n, item[1]!.length).at(-1)) ? item : null;
    const needs = inFlow ? inFlow[1]! : inBlock ? inBlock[2]! : null;
    if (needs !== null) {
      const graph = graphOf(parse(ctx.state.doc.toString()));
      const options: Completion[] = graph.steps.flatMap((s) =>
        outcomesOf(s.type).map((o) => ({ label: o === "success" ? s.id : `${s.id}.${o}`, type: "variable", detail: o === "success" ? `${s.type} succeeded` : `${s.type} ${o}` })),
      );
      return { from: ctx.pos - needs.length, options, validFor: /^[A-Za-z0-9_.-]*$/ };
    }

    const value = /^( *)((?:- +)?)([A-Za-z0-9_-]+):[ \t]+["']?([A-Za-z0-9_.-]*)$/.exec(before);
    if (value) {
      const { path } = placeOf(lines, n, before);
      const key = value[3]!;
      const last = path[path.length - 1];
      const values = key === "type" && last && "item" in last ? schema.itemTypes(path.slice(0, -1)) : (schema.fieldAt(path, key)?.values ?? []);
      if (!values.length) return null;
      return { from: ctx.pos - value[4]!.length, options: values.map((v) => ({ label: v, type: "enum" })), validFor: /^[A-Za-z0-9_.-]*$/ };
    }

    const key = /^( *)((?:- +)?)([A-Za-z0-9_-]*)$/.exec(before);
    if (key && (key[3] || ctx.explicit || key[2])) {
      const { path } = placeOf(lines, n, before);
      const fields = schema.fields(path);
      if (!fields.length) return null;
      return {
        from: ctx.pos - key[3]!.length,
        options: fields.map((f) => ({
          label: f.name,
          apply: `${f.name}: `,
          type: "property",
          detail: f.required ? `${f.type}, required` : f.type,
          info: f.description || undefined,
          boost: f.required ? 1 : 0,
        })),
        validFor: /^[A-Za-z0-9_-]*$/,
      };
    }
    return null;
  };
}

function hoverSource(docs: () => SchemaDocs | null) {
  return hoverTooltip((view, pos): Tooltip | null => {
    const schema = docs();
    if (!schema) return null;
    const line = view.state.doc.lineAt(pos);
    const m = /^( *)((?:- +)?)([A-Za-z0-9_-]+):/.exec(line.text);
    if (!m) return null;
    const start = line.from + m[1]!.length + m[2]!.length;
    const end = start + m[3]!.length;
    if (pos < start || pos > end) return null;
    const lines = view.state.doc.toString().split("\n");
    const { path } = placeOf(lines, line.number - 1, m[1]! + m[2]!);
    const field = schema.fieldAt(path, m[3]!);
    if (!field) return null;
    return {
      pos: start,
      end,
      above: true,
      create() {
        const dom = document.createElement("div");
        dom.className = "cm-schema-doc";
        const head = document.createElement("div");
        const name = document.createElement("strong");
        name.textContent = field.name;
        head.append(name, ` — ${field.type}${field.required ? ", required" : ""}`);
        dom.append(head);
        if (field.description) {
          const p = document.createElement("p");
          p.textContent = field.description;
          dom.append(p);
        }
        if (field.default !== undefined && field.default !== null) {
          const d = document.createElement("p");
          d.className = "muted";
          d.textContent = `Default: ${JSON.stringify(field.default)}`;
          dom.append(d);
        }
        return { dom };
      },
    };
  });
}

/** Where a finding goes in `state`: its line (clamped), from its column to the line's end. */
export function toDiagnostics(state: EditorState, findings: Finding[]): Diagnostic[] {
  const doc = state.doc;
  return findings.map((f) => {
    const lineNo = Math.min(Math.max(f.line ?? 1, 1), doc.lines);
    const line = doc.line(lineNo);
    const from = Math.min(line.from + Math.max((f.column ?? 1) - 1, 0), line.to);
    return { from, to: Math.max(line.to, from), severity: f.severity, message: f.loc ? `${f.loc}: ${f.msg}` : f.msg, source: "opsflow" };
  });
}

export default function YamlEditor({
  value,
  onChange,
  findings = [],
  schema = null,
  readOnly = false,
  label,
  onReady,
}: {
  value: string;
  onChange?: (text: string) => void;
  /** Findings for exactly this `value` (shown at their lines). */
  findings?: Finding[];
  schema?: SchemaDocs | null;
  readOnly?: boolean;
  label: string;
  onReady?: (view: EditorView) => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  change.current = onChange;
  const docs = useRef(schema);
  docs.current = schema;
  const editable = useRef(new Compartment());

  useEffect(() => {
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          basicSetup,
          yaml(),
          lintGutter(),
          autocompletion({ override: [completionSource(() => docs.current)], activateOnTyping: true }),
          hoverSource(() => docs.current),
          editable.current.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
          EditorView.contentAttributes.of({ "aria-label": label }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) change.current?.(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    onReady?.(v);
    return () => {
      v.destroy();
      view.current = null;
    };
    // The view lives as long as the component; later props arrive through the effects below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const current = v.state.doc.toString();
    if (current !== value) v.dispatch({ changes: { from: 0, to: current.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v || v.state.doc.toString() !== value) return;
    v.dispatch(setDiagnostics(v.state, toDiagnostics(v.state, findings)));
  }, [findings, value]);

  useEffect(() => {
    view.current?.dispatch({ effects: editable.current.reconfigure([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]) });
  }, [readOnly]);

  return <div className="yaml-editor" ref={host} data-testid="yaml-editor" />;
}
