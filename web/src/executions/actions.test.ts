import { describe, expect, it } from "vitest";
import { acceptsStepActions, stepActions } from "./actions";

const specs = [
  { id: "build", type: "script", needs: [] },
  { id: "gate", type: "approval", needs: ["build"] },
  { id: "deploy", type: "script", needs: ["gate.approved"], allow_skip: true },
  { id: "notify", type: "script", needs: ["deploy"] },
];
const spec = (id: string) => specs.find((s) => s.id === id)!;
const run = (status: string, steps: Record<string, string>, cancel: unknown = null) => ({
  status,
  cancel,
  steps: Object.entries(steps).map(([id, s]) => ({ id, status: s })),
});

describe("acceptsStepActions", () => {
  it("takes retries and skips while the run is resumable and no cancel is under way", () => {
    for (const status of ["running", "paused", "failed", "rejected"]) expect(acceptsStepActions({ status, cancel: null })).toBe(true);
    for (const status of ["completed", "cancelled", "pending"]) expect(acceptsStepActions({ status, cancel: null })).toBe(false);
    expect(acceptsStepActions({ status: "running", cancel: { mode: "graceful" } })).toBe(false);
  });
});

describe("stepActions", () => {
  it("offers nothing on an ended completed run, even on its failed step (the server answers 409)", () => {
    const ex = run("completed", { build: "failed", deploy: "succeeded" });
    expect(stepActions(ex, spec("build"), "failed", specs)).toEqual([]);
    expect(stepActions(ex, spec("deploy"), "succeeded", specs)).toEqual([]);
  });
  it("offers retry, from here and (where allowed) skip on a failed step of a failed run", () => {
    const ex = run("failed", { build: "succeeded", gate: "approved", deploy: "failed", notify: "skipped" });
    expect(stepActions(ex, spec("deploy"), "failed", specs)).toEqual(["retry", "from_here", "skip"]);
    expect(stepActions(ex, spec("build"), "succeeded", specs)).toEqual(["from_here"]);
    expect(stepActions(ex, spec("gate"), "approved", specs)).toEqual(["from_here"]);
  });
  it("offers no retry on a cancelled or skipped step, nor from here while a step after it runs", () => {
    const ex = run("running", { build: "succeeded", gate: "approved", deploy: "running", notify: "pending" });
    expect(stepActions(ex, spec("build"), "succeeded", specs)).toEqual([]);
    expect(stepActions(ex, spec("notify"), "cancelled", specs)).toEqual([]);
    expect(stepActions(run("failed", {}), spec("notify"), "skipped", specs)).toEqual([]);
  });
  it("offers nothing while the run is being cancelled", () => {
    const ex = run("running", { build: "failed" }, { mode: "graceful" });
    expect(stepActions(ex, spec("build"), "failed", specs)).toEqual([]);
  });
});
