// The YAML <-> graph round trip: random graph edits keep the author's comments and key order,
// and the text they write is a definition our JSON Schema accepts (ajv, draft 2020-12, with the
// schema the server serves: workflow.schema.json, kept equal to it by a Python test).
import Ajv2020 from "ajv/dist/2020";
import fc from "fast-check";
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
  STEP_TYPES,
  wouldCycle,
  type StepType,
} from "./model";

import schema from "./workflow.schema.json";

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

const BASE = `# Deploy the API: plan, approve, apply.
# Owner: platform team
id: deploy-api
name: Deploy the API # shown in lists
description: >-
  A long description that the stringifier would fold at another width than the author
  did, so edits must leave these lines alone.
labels:
  team: platform
steps:
  # First the plan.
  - id: plan
    type: script
    shell: sh
    run: |
      echo "planning"  # not a YAML comment: part of the script
  # Then people look at it.
  - id: approve
    type: approval
    needs: [plan] # after the plan
    message: Apply it?

  - id: apply
    type: script # runs the apply
    needs: [approve.approved]
    run: echo apply
# trailing words
`;

const COMMENTS = ["# Deploy the API: plan, approve, apply.", "# Owner: platform team", "# shown in lists", "# First the plan.", "# Then people look at it.", "# trailing words"];

type Op =
  | { kind: "add"; type: StepType }
  | { kind: "connect"; from: number; to: number; outcome: number }
  | { kind: "disconnect"; step: number; entry: number }
  | { kind: "remove"; step: number }
  | { kind: "name"; step: number; name: string }
  | { kind: "run"; step: number; lines: string[] }
  | { kind: "title"; name: string };

const text = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 ,.'-]{0,30}$/);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), type: fc.constantFrom(...STEP_TYPES) }),
  fc.record({ kind: fc.constant("connect" as const), from: fc.nat(20), to: fc.nat(20), outcome: fc.nat(5) }),
  fc.record({ kind: fc.constant("disconnect" as const), step: fc.nat(20), entry: fc.nat(3) }),
  fc.record({ kind: fc.constant("remove" as const), step: fc.nat(20) }),
  fc.record({ kind: fc.constant("name" as const), step: fc.nat(20), name: text }),
  fc.record({ kind: fc.constant("run" as const), step: fc.nat(20), lines: fc.array(text, { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant("title" as const), name: text }),
);

/** Applies one op through the model, as the builder does; returns the new text. */
function apply(yaml: string, o: Op, removable: Set<string>): string {
  const graph = graphOf(parse(yaml));
  const pick = (i: number) => graph.steps[i % Math.max(graph.steps.length, 1)];
  switch (o.kind) {
    case "add":
      return edit(yaml, (doc) => void removable.add(addStep(doc, o.type)));
    case "connect": {
      const from = pick(o.from);
      const to = pick(o.to);
      if (!from || !to) return yaml;
      const outcomes = outcomesOf(from.type);
      const outcome = outcomes[o.outcome % outcomes.length]!;
      // The builder refuses a circle before writing; so does this.
      if (wouldCycle(graph, from.id, to.id)) return yaml;
      return edit(yaml, (doc) => addNeed(doc, to.id, needEntry(from.id, outcome)));
    }
    case "disconnect": {
      const step = pick(o.step);
      const entry = step?.needs[o.entry % Math.max(step.needs.length, 1)];
      return step && entry ? edit(yaml, (doc) => removeNeed(doc, step.id, entry)) : yaml;
    }
    case "remove": {
      const step = pick(o.step);
      // Comments on a removed step go with it: only steps the test added are removed.
      if (!step || !removable.has(step.id)) return yaml;
      return edit(yaml, (doc) => removeStep(doc, step.id));
    }
    case "name": {
      const step = pick(o.step);
      return step ? edit(yaml, (doc) => setStepField(doc, step.id, "name", o.name)) : yaml;
    }
    case "run": {
      const step = pick(o.step);
      if (!step || step.type !== "script") return yaml;
      return edit(yaml, (doc) => setStepField(doc, step.id, "run", o.lines.join("\n") + "\n"));
    }
    case "title":
      return edit(yaml, (doc) => setTopField(doc, "name", o.name));
  }
}

describe("graph edits write back to the YAML", () => {
  it("keep comments and key order, and validate against the JSON Schema", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
        let yaml = BASE;
        const removable = new Set<string>();
        let needsEmptied = false;
        for (const o of ops) {
          yaml = apply(yaml, o, removable);
          needsEmptied ||= graphOf(parse(yaml)).steps.find((s) => s.id === "approve")!.needs.length === 0;
        }
        const doc = parse(yaml);
        expect(doc.errors).toEqual([]);
        for (const c of COMMENTS) expect(yaml).toContain(c);
        const graph = graphOf(doc);
        // Comments on steps the test never removes stay; the needs list's own comment goes
        // only with the list (when its last entry was disconnected).
        expect(yaml).toContain("type: script # runs the apply");
        if (!needsEmptied) expect(yaml).toContain("# after the plan");
        // Key order: the author's top-level keys stay first, in their order.
        const data = doc.toJS() as Record<string, unknown>;
        expect(Object.keys(data).slice(0, 5)).toEqual(["id", "name", "description", "labels", "steps"]);
        // The description's folded lines are the author's, untouched.
        expect(yaml).toContain("  A long description that the stringifier would fold at another width than the author\n  did, so edits");
        const ok = validate(data);
        expect(ok ? "valid" : ajv.errorsText(validate.errors)).toBe("valid");
        // No circle ever: the text's needs form a DAG.
        for (const e of graph.edges) expect(wouldCycle({ ...graph, edges: graph.edges.filter((x) => x !== e) }, e.source, e.target)).toBeNull();
      }),
      { numRuns: 100 },
    );
  });

  it("reads the graph as the server reads needs", () => {
    const g = graphOf(parse(BASE));
    expect(g.steps.map((s) => [s.id, s.type])).toEqual([
      ["plan", "script"],
      ["approve", "approval"],
      ["apply", "script"],
    ]);
    expect(g.edges).toEqual([
      { source: "plan", target: "approve", outcome: "success", entry: "plan" },
      { source: "approve", target: "apply", outcome: "approved", entry: "approve.approved" },
    ]);
  });

  it("an edit touches only its lines", () => {
    const out = edit(BASE, (doc) => addNeed(doc, "apply", "plan"));
    expect(out).toBe(BASE.replace("needs: [approve.approved]", "needs: [approve.approved, plan]"));
    const renamed = edit(BASE, (doc) => setStepField(doc, "plan", "id", "make-plan"));
    expect(renamed).toBe(BASE.replace("- id: plan", "- id: make-plan").replace("needs: [plan]", "needs: [make-plan]"));
    const removed = edit(BASE, (doc) => removeStep(doc, "apply"));
    expect(removed).not.toContain("id: apply");
    expect(removed).toContain("# after the plan");
  });

  it("refuses a circle and names it", () => {
    const g = graphOf(parse(BASE));
    expect(wouldCycle(g, "apply", "plan")).toEqual(["plan", "approve", "apply", "plan"]);
    expect(wouldCycle(g, "plan", "apply")).toBeNull();
  });

  it("parses with the YAML 1.2 core schema, as the server does", () => {
    const data = parse("a: yes\nb: 0x1F\nc: ~\nd: 1e3\n").toJS() as Record<string, unknown>;
    expect(data).toEqual({ a: "yes", b: 31, c: null, d: 1000 });
    expect(parse("a: 1\na: 2\n").errors.length).toBe(1);
  });
});
