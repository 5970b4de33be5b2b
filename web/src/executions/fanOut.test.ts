import { describe, expect, it } from "vitest";
import { fanOutBar, fanOutWords, filterItems, hasOpenItems, itemActions, itemLabel, queuedItems, shownItemStatus, type FanOut, type Item } from "./fanOut";

const zero = { pending: 0, waiting: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };

function fan(counts: Partial<typeof zero>, extra: Partial<FanOut> = {}): FanOut {
  const all = { ...zero, ...counts };
  const total = Object.values(all).reduce((a, b) => a + b, 0);
  return { kind: "for_each", max_parallel: null, fail_fast: false, min_success: null, total, counts: all, ...extra };
}

function item(index: number, status: Item["status"], extra: Partial<Item> = {}): Item {
  return { index, item: `host-${index}`, status, attempts: 1, job_id: null, started_at: null, ended_at: null, retry_at: null, outputs: {}, error: null, ...extra };
}

describe("fanOutWords", () => {
  it("says items ended of all, then what runs and what failed, and the parallel limit apart", () => {
    const words = fanOutWords(fan({ succeeded: 35, failed: 2, running: 10, pending: 153 }, { max_parallel: 10 }));
    expect(words.line).toBe("37 of 200 ended · 10 running · 2 failed");
    expect(words.limit).toBe("at most 10 at once");
  });
  it("names items waiting for a retry, cancelled and skipped ones, and counts them as ended where they are", () => {
    const words = fanOutWords(fan({ succeeded: 1, waiting: 1, cancelled: 2, skipped: 1 }));
    expect(words.line).toBe("4 of 5 ended · 1 waiting to retry · 2 cancelled · 1 skipped");
    expect(words.limit).toBe("");
  });
  it("says the list is being worked out while total is unknown", () => {
    const words = fanOutWords({ ...fan({}), total: null });
    expect(words.line).toBe("working out the items…");
    expect(words.done).toBe("…");
  });
  it("reads every item ended as n of n ended and nothing more", () => {
    expect(fanOutWords(fan({ succeeded: 3 })).line).toBe("3 of 3 ended");
  });
});

describe("items waiting for an agent", () => {
  const jobs = new Map([
    ["j1", { status: "running" }],
    ["j2", { status: "pending" }],
    ["j3", { status: "pending" }],
  ]);
  it("shows a running item whose job waits for an agent as queued, like a step", () => {
    expect(shownItemStatus(item(0, "running", { job_id: "j1" }), jobs)).toBe("running");
    expect(shownItemStatus(item(1, "running", { job_id: "j2" }), jobs)).toBe("queued");
    expect(shownItemStatus(item(2, "failed", { job_id: "j3" }), jobs)).toBe("failed");
    expect(queuedItems([item(0, "running", { job_id: "j1" }), item(1, "running", { job_id: "j2" }), item(2, "running", { job_id: "j3" })], jobs)).toBe(2);
  });
  it("names them apart from the running ones", () => {
    expect(fanOutWords(fan({ succeeded: 18, running: 10, failed: 1, pending: 171 }), 6).line).toBe("19 of 200 ended · 4 running · 1 failed · 6 waiting for an agent");
    expect(fanOutWords(fan({ running: 2, pending: 1 }), 2).line).toBe("0 of 3 ended · 2 waiting for an agent");
  });
});

describe("fanOutBar", () => {
  it("gives each status its share of all items and leaves pending as the background", () => {
    expect(fanOutBar(fan({ succeeded: 2, failed: 1, running: 1, pending: 4 }))).toEqual([
      { status: "succeeded", percent: 25 },
      { status: "failed", percent: 12.5 },
      { status: "running", percent: 12.5 },
    ]);
  });
  it("draws nothing before the list is known", () => {
    expect(fanOutBar({ ...fan({}), total: null })).toEqual([]);
  });
});

describe("itemLabel", () => {
  it("shows a string as it is and a matrix combination as key=value pairs", () => {
    expect(itemLabel("eu-west-1")).toBe("eu-west-1");
    expect(itemLabel({ region: "eu", tier: "api" })).toBe("region=eu · tier=api");
    expect(itemLabel({ region: "eu", replicas: 3 })).toBe("region=eu · replicas=3");
  });
  it("shows other values as JSON and cuts long ones", () => {
    expect(itemLabel(42)).toBe("42");
    expect(itemLabel(["a", "b"])).toBe('["a","b"]');
    expect(itemLabel(null)).toBe("null");
    expect(itemLabel("x".repeat(100), 10)).toBe(`${"x".repeat(9)}…`);
  });
});

describe("itemActions", () => {
  it("offers retry on a failed or cancelled item, and skip only where the step allows it", () => {
    expect(itemActions(item(0, "failed"), { stepStatus: "failed", allowSkip: false })).toEqual(["retry"]);
    expect(itemActions(item(0, "cancelled"), { stepStatus: "running", allowSkip: true })).toEqual(["retry", "skip"]);
  });
  it("offers cancel on an item not ended while its step runs, and nothing on a succeeded one", () => {
    expect(itemActions(item(0, "running"), { stepStatus: "running", allowSkip: true })).toEqual(["cancel"]);
    expect(itemActions(item(0, "pending"), { stepStatus: "running", allowSkip: false })).toEqual(["cancel"]);
    expect(itemActions(item(0, "pending"), { stepStatus: "cancelled", allowSkip: false })).toEqual([]);
    expect(itemActions(item(0, "succeeded"), { stepStatus: "running", allowSkip: true })).toEqual([]);
  });
  it("offers no retry or skip where the server refuses: the run ended completed or the step succeeded", () => {
    expect(itemActions(item(0, "failed"), { stepStatus: "failed", allowSkip: true, resumable: false })).toEqual([]);
    expect(itemActions(item(0, "cancelled"), { stepStatus: "succeeded", allowSkip: true })).toEqual([]);
    expect(itemActions(item(0, "failed"), { stepStatus: "skipped", allowSkip: false })).toEqual([]);
  });
});

describe("filterItems and hasOpenItems", () => {
  const items = [item(0, "succeeded"), item(1, "failed"), item(2, "running"), item(3, "pending"), item(4, "cancelled"), item(5, "waiting")];
  it("keeps failed and cancelled items under Failed, running ones under Running, unended under Not ended", () => {
    expect(filterItems(items, "all")).toHaveLength(6);
    expect(filterItems(items, "failed").map((i) => i.index)).toEqual([1, 4]);
    expect(filterItems(items, "running").map((i) => i.index)).toEqual([2]);
    expect(filterItems(items, "open").map((i) => i.index)).toEqual([2, 3, 5]);
  });
  it("says whether any item is still to end", () => {
    expect(hasOpenItems(fan({ succeeded: 2, failed: 1 }))).toBe(false);
    expect(hasOpenItems(fan({ succeeded: 2, waiting: 1 }))).toBe(true);
  });
});
