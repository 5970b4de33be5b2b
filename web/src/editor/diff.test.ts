import { EditorState } from "@codemirror/state";
import type { VersionDetail } from "./api";
import { graphDiff } from "./Versions";
import { toDiagnostics } from "./YamlEditor";

function version(number: number, yaml: string, steps: Record<string, unknown>[]): VersionDetail {
  return {
    workflow_id: "w",
    number,
    content_digest: String(number),
    bundle_digest: null,
    created_at: "2026-11-30T12:00:00Z",
    created_by: "admin",
    definition: { id: "w", steps },
    yaml,
    files: [],
  };
}

describe("version diff", () => {
  it("marks added, removed and changed steps and edges", () => {
    const a = version(1, "id: w\nsteps:\n  - {id: a, type: script, run: x}\n  - {id: b, type: script, needs: [a], run: y}\n  - {id: c, type: script, needs: [b], run: z}\n", [
      { id: "a", type: "script", run: "x" },
      { id: "b", type: "script", needs: ["a"], run: "y" },
      { id: "c", type: "script", needs: ["b"], run: "z" },
    ]);
    const b = version(2, "id: w\nsteps:\n  - {id: a, type: script, run: x}\n  - {id: b, type: script, needs: [a.failed], run: y2}\n  - {id: d, type: script, needs: [b], run: w}\n", [
      { id: "a", type: "script", run: "x" },
      { id: "b", type: "script", needs: ["a.failed"], run: "y2" },
      { id: "d", type: "script", needs: ["b"], run: "w" },
    ]);
    const d = graphDiff(a, b);
    expect(d.graph.steps.map((s) => s.id)).toEqual(["a", "b", "d", "c"]);
    expect(Object.fromEntries(d.marks)).toEqual({ b: "changed", d: "added", c: "removed" });
    expect(Object.fromEntries(d.edgeMarks)).toEqual({ "a->b:failed": "added", "b->d:success": "added", "a->b:success": "removed", "b->c:success": "removed" });
  });
});

describe("findings in the editor", () => {
  it("are drawn from their column to the end of their line; no line means the first", () => {
    const state = EditorState.create({ doc: "id: x\nsteps:\n  - id: a\n" });
    const [at, whole, past] = toDiagnostics(state, [
      { loc: "steps[0].id", msg: "bad", line: 3, column: 5, severity: "error" },
      { loc: "", msg: "empty", line: null, column: null, severity: "warning" },
      { loc: "x", msg: "far", line: 99, column: 1, severity: "error" },
    ]);
    expect([at!.from, at!.to, at!.message]).toEqual([17, 22, "steps[0].id: bad"]);
    expect([whole!.from, whole!.to, whole!.severity]).toEqual([0, 5, "warning"]);
    expect(past!.from).toBe(state.doc.line(state.doc.lines).from);
  });
});
