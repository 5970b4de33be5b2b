import { attemptLabels } from "./Tabs";

describe("attemptLabels", () => {
  it("numbers a plain step's attempts as they are and each item's attempts on their own", () => {
    expect(Object.fromEntries(attemptLabels([{ id: "a", attempt: 1 }, { id: "b", attempt: 2, item: null }]))).toEqual({ a: "#1", b: "#2" });
    const jobs = [
      { id: "j1", attempt: 1, item: 0 },
      { id: "j3", attempt: 3, item: 1 },
      { id: "j2", attempt: 2, item: 1 },
      { id: "j4", attempt: 4, item: 1 },
    ];
    expect(Object.fromEntries(attemptLabels(jobs))).toEqual({ j1: "item 0 #1", j2: "item 1 #1", j3: "item 1 #2", j4: "item 1 #3" });
  });
});
