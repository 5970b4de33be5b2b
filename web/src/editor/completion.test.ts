import { CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { EditorState } from "@codemirror/state";
import schema from "./workflow.schema.json";
import { SchemaDocs, type JsonSchema } from "./schemaDocs";
import { completionSource } from "./YamlEditor";

const docs = new SchemaDocs(schema as unknown as JsonSchema);
const source = completionSource(() => docs);

/** The labels offered with the cursor at `|` in `text`. */
function offered(text: string): string[] {
  const pos = text.indexOf("|");
  const state = EditorState.create({ doc: text.replace("|", "") });
  const result = source(new CompletionContext(state, pos, true)) as CompletionResult | null;
  return result ? result.options.map((o) => o.label) : [];
}

const HEAD = "id: x\nsteps:\n  - id: plan\n    type: script\n    run: echo\n  - id: gate\n    type: approval\n";

describe("completion from the JSON Schema", () => {
  it("offers the keys of the place, by the step's type", () => {
    expect(offered(HEAD + "  - id: c\n    type: http\n    ur|")).toContain("url");
    expect(offered(HEAD + "  - id: c\n    type: http\n    ur|")).not.toContain("run");
    expect(offered("id: x\nst|")).toContain("steps");
  });

  it("offers the values a key allows", () => {
    expect(offered(HEAD + "  - id: c\n    type: script\n    shell: |")).toEqual(["bash", "sh", "python", "node"]);
    expect(offered(HEAD + "  - id: c\n    type: |")).toEqual(expect.arrayContaining(["script", "http", "ssh", "approval"]));
  });

  it("offers step ids with the outcomes each can have in needs", () => {
    const flow = offered(HEAD + "  - id: c\n    type: script\n    needs: [plan, g|");
    expect(flow).toEqual(expect.arrayContaining(["plan", "plan.failed", "gate", "gate.approved", "gate.rejected", "gate.always"]));
    expect(flow).not.toContain("gate.failed");
    const block = offered(HEAD + "  - id: c\n    type: script\n    needs:\n      - |");
    expect(block).toContain("plan.always");
  });
});
