import { describe, expect, it } from "vitest";
import { progressWords } from "./progress";

const base = { total: 8, done: 0, running: 0, waiting: 0, failed: 0, skipped: 0, cancelled: 0 };

describe("progressWords", () => {
  it("does not count steps cancelled before they ran as done", () => {
    expect(progressWords({ ...base, done: 8, cancelled: 8 })).toEqual({ done: "0/8", others: "8 cancelled" });
  });
  it("names skipped and cancelled steps beside the ones that ran", () => {
    expect(progressWords({ ...base, done: 6, skipped: 1, cancelled: 2 })).toEqual({ done: "3/8", others: "1 skipped, 2 cancelled" });
  });
  it("says nothing more when every ended step ran", () => {
    expect(progressWords({ ...base, done: 5, running: 1 })).toEqual({ done: "5/8", others: "" });
  });
});
