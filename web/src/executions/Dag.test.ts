import type { StepSpec } from "../api/types";
import { layout, miniMapColor, parseNeed, showMiniMap, type DagStep } from "./Dag";

describe("DAG layout", () => {
  it("labels edges by the outcome they wait for and lays the graph out left to right", () => {
    const specs: StepSpec[] = [
      { id: "plan", type: "terraform" },
      { id: "approve", type: "approval", needs: ["plan"] },
      { id: "apply", type: "terraform", needs: ["approve"] },
      { id: "announce-rejection", type: "notify", needs: ["approve.rejected"] },
      { id: "roll-back", type: "script", needs: ["apply.failed"] },
    ];
    const steps = new Map<string, DagStep>([["plan", { id: "plan", name: "plan", type: "terraform", status: "succeeded", durationMs: 1200 }]]);
    const { nodes, edges } = layout(specs, steps, "apply");
    expect(edges.map((e) => [e.source, e.target, e.label ?? null])).toEqual([
      ["plan", "approve", null],
      ["approve", "apply", null],
      ["approve", "announce-rejection", "rejected"],
      ["apply", "roll-back", "failed"],
    ]);
    expect(edges.find((e) => e.label === "failed")!.className).toBe("edge-failing");
    const x = Object.fromEntries(nodes.map((n) => [n.id, n.position.x]));
    expect(x.plan!).toBeLessThan(x.approve!);
    expect(x.approve!).toBeLessThan(x.apply!);
    expect(x.apply!).toBeLessThan(x["roll-back"]!);
    expect(nodes.find((n) => n.id === "plan")!.data.status).toBe("succeeded");
    expect(nodes.find((n) => n.id === "apply")!.data).toMatchObject({ status: "pending", selected: true });
  });

  it("gives a fanned-out step a taller node that does not overlap its neighbours, in both layouts", () => {
    const fanOut = { kind: "for_each", max_parallel: 2, fail_fast: false, min_success: null, total: 4, counts: { running: 2, pending: 2 } };
    for (const extra of [0, 300]) {
      const specs: StepSpec[] = [
        { id: "a", type: "script" },
        { id: "b", type: "script" },
        { id: "c", type: "script" },
        // past 300 steps the plain layered layout takes over from dagre
        ...Array.from({ length: extra }, (_, i) => ({ id: `x${i}`, type: "script", needs: ["c"] })),
      ];
      const steps = new Map<string, DagStep>([["b", { id: "b", name: "b", type: "script", status: "running", durationMs: 10, fanOut }]]);
      const { nodes } = layout(specs, steps, null);
      const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
      expect(byId.b!.height).toBeGreaterThan(byId.a!.height!);
      expect(byId.b!.data.fanOut).toEqual(fanOut);
      const column = [byId.a!, byId.b!, byId.c!].sort((p, q) => p.position.y - q.position.y);
      for (let i = 1; i < column.length; i++) {
        expect(column[i]!.position.y).toBeGreaterThanOrEqual(column[i - 1]!.position.y + column[i - 1]!.height!);
      }
    }
  });

  it("tells a step id with a dot from an outcome", () => {
    const known = new Set(["is-long", "v1.2"]);
    expect(parseNeed("is-long.true", known)).toEqual({ from: "is-long", outcome: "true" });
    expect(parseNeed("v1.2", known)).toEqual({ from: "v1.2", outcome: null });
  });

  it("places every node of a 2,000-step graph with parallel branches", () => {
    const specs: StepSpec[] = [{ id: "s0", type: "script" }];
    for (let i = 1; i < 2000; i++) specs.push({ id: `s${i}`, type: "script", needs: [`s${Math.floor((i - 1) / 4) * 4}`] });
    const { nodes, edges } = layout(specs, new Map(), null);
    expect(nodes).toHaveLength(2000);
    expect(edges).toHaveLength(1999);
    expect(new Set(nodes.map((n) => `${n.position.x},${n.position.y}`)).size).toBe(2000);
  });
});

describe("DAG overview map", () => {
  it("shows only for large graphs in a wide pane, never over a narrow one", () => {
    expect(showMiniMap(7, 1200)).toBe(false);
    expect(showMiniMap(30, 1200)).toBe(false);
    expect(showMiniMap(31, 1200)).toBe(true);
    expect(showMiniMap(500, 420)).toBe(false);
    expect(showMiniMap(500, 699)).toBe(false);
  });

  it("colours each node by its status and gives it a size before it is measured", () => {
    expect(miniMapColor("failed")).toBe("var(--red)");
    expect(miniMapColor("succeeded")).toBe("var(--green)");
    expect(miniMapColor("skipped")).toBe("var(--gray)");
    expect(miniMapColor("timeout")).toBe("var(--red)");
    const { nodes } = layout([{ id: "a", type: "script" }], new Map(), null);
    expect([nodes[0]!.width, nodes[0]!.height]).toEqual([190, 52]);
  });
});
