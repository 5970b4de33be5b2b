import schema from "./workflow.schema.json";
import { OUTCOMES_BY_TYPE, STEP_TEMPLATES, STEP_TYPES } from "./model";
import { pathAt, SchemaDocs, type JsonSchema } from "./schemaDocs";

const docs = new SchemaDocs(schema as unknown as JsonSchema);
const TEXT = `id: x
params:
  who:
    type: string
steps:
  - id: a
    type: http
    url: https://example.com
    agent:
      pool: default
- id: b
  type: script
  run: echo
`.split("\n");

describe("schema docs", () => {
  it("finds the path of a line from indentation, with the list item's type", () => {
    expect(pathAt(TEXT, 1, 0)).toEqual([]);
    expect(pathAt(TEXT, 3, 4)).toEqual([{ key: "params" }, { key: "who" }]);
    expect(pathAt(TEXT, 7, 4)).toEqual([{ key: "steps" }, { item: true, type: "http" }]);
    expect(pathAt(TEXT, 9, 6)).toEqual([{ key: "steps" }, { item: true, type: "http" }, { key: "agent" }]);
    expect(pathAt(TEXT, 12, 2)).toEqual([{ key: "steps" }, { item: true, type: "script" }]);
  });

  it("lists the keys of a place with their docs and allowed values", () => {
    const top = docs.fields([]).map((f) => f.name);
    expect(top).toContain("steps");
    expect(top).toContain("params");
    const http = docs.fields([{ key: "steps" }, { item: true, type: "http" }]);
    expect(http.map((f) => f.name)).toContain("url");
    expect(http.find((f) => f.name === "url")!.required).toBe(true);
    expect(docs.fieldAt([{ key: "steps" }, { item: true, type: "http" }], "method")!.values).toContain("POST");
    const shell = docs.fieldAt([{ key: "steps" }, { item: true, type: "script" }], "shell")!;
    expect(shell.values).toEqual(["bash", "sh", "python", "node"]);
    expect(shell.description).toMatch(/Interpreter/);
    // Before the item says its type: the keys every step type has.
    const any = docs.fields([{ key: "steps" }, { item: true, type: null }]).map((f) => f.name);
    expect(any).toEqual(expect.arrayContaining(["id", "type", "needs", "name"]));
    expect(any).not.toContain("url");
    expect(docs.fieldAt([{ key: "params" }, { key: "who" }], "type")!.values).toContain("choice");
  });
});

describe("the palette", () => {
  it("offers every step type the schema has, each with outcomes and a template", () => {
    expect([...STEP_TYPES].sort()).toEqual(docs.itemTypes([{ key: "steps" }]).sort());
    for (const t of STEP_TYPES) {
      expect(OUTCOMES_BY_TYPE[t]).toContain("always");
      const required = docs.fields([{ key: "steps" }, { item: true, type: t }]).filter((f) => f.required).map((f) => f.name);
      for (const name of required) if (name !== "id" && name !== "type") expect(Object.keys(STEP_TEMPLATES[t])).toContain(name);
    }
  });
});
