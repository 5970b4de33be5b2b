import { describe, expect, it } from "vitest";
import {
  agentSlices,
  apiQuery,
  dayLabel,
  filtersOf,
  nextDay,
  percent,
  stepBars,
  trendSeries,
  waitBars,
  workflowBars,
  type Analytics,
} from "./chartData";

describe("filters", () => {
  it("reads the query string and falls back to the last 30 days", () => {
    expect(filtersOf(new URLSearchParams(""))).toEqual({ range: "30d", from: "", to: "", workflow: "" });
    expect(filtersOf(new URLSearchParams("range=bogus&workflow=deploy")).range).toBe("30d");
    expect(filtersOf(new URLSearchParams("range=custom&from=2026-11-01&to=2026-11-07")).to).toBe("2026-11-07");
  });

  it("asks for a relative range as since=Nd and a custom one with an exclusive until", () => {
    expect(apiQuery({ range: "7d", from: "", to: "", workflow: "" })).toEqual({ since: "7d" });
    expect(apiQuery({ range: "custom", from: "2026-11-01", to: "2026-11-30", workflow: "deploy" })).toEqual({
      since: "2026-11-01",
      until: "2026-12-01",
      workflow: "deploy",
    });
    expect(nextDay("2026-12-31")).toBe("2027-01-01");
  });
});

describe("chart data", () => {
  it("stacks each day's completed, failed and other runs", () => {
    const trend = trendSeries([
      { day: "2026-11-03", completed: 5, failed: 2, other: 1 },
      { day: "2026-11-04", completed: 0, failed: 0, other: 0 },
    ]);
    expect(trend).toEqual([
      { day: "2026-11-03", label: "Nov 3", completed: 5, failed: 2, other: 1, total: 8 },
      { day: "2026-11-04", label: "Nov 4", completed: 0, failed: 0, other: 0, total: 0 },
    ]);
    expect(dayLabel("2026-01-31")).toBe("Jan 31");
  });

  it("labels top workflows with runs and success rate", () => {
    const bars = workflowBars([
      { workflow_id: "deploy", runs: 40, completed: 29, ended: 39, success_rate: 29 / 39, avg_duration_ms: 1000 },
      { workflow_id: "backup", runs: 3, completed: 0, ended: 0, success_rate: null, avg_duration_ms: null },
    ]);
    expect(bars).toEqual([
      { workflow: "deploy", runs: 40, successPct: 74.4, label: "40 · 74.4%" },
      { workflow: "backup", runs: 3, successPct: null, label: "3" },
    ]);
  });

  it("turns step times into seconds named workflow › step", () => {
    expect(
      stepBars([{ workflow_id: "deploy", step_id: "apply", type: "terraform", runs: 4, avg_duration_ms: 61_234, max_duration_ms: 90_050 }]),
    ).toEqual([{ name: "deploy › apply", avgSeconds: 61.2, maxSeconds: 90.1, runs: 4 }]);
  });

  it("gives each agent its share of all jobs and its utilization", () => {
    const slices = agentSlices([
      { agent_id: "local", jobs: 3, completed: 3, failed: 0, busy_ms: 1, utilization: 0.25 },
      { agent_id: "edge-1", jobs: 1, completed: 0, failed: 1, busy_ms: 1, utilization: 0.0126 },
    ]);
    expect(slices).toEqual([
      { agent: "local", jobs: 3, sharePct: 75, utilizationPct: 25, failed: 0 },
      { agent: "edge-1", jobs: 1, sharePct: 25, utilizationPct: 1.3, failed: 1 },
    ]);
    expect(agentSlices([])).toEqual([]);
  });

  it("shows approval waits in minutes and missing ones as gaps", () => {
    const approvals: Analytics["approvals"] = {
      total: 3, pending: 1, decided: 2, avg_wait_ms: 90_000, p95_wait_ms: 150_000, max_wait_ms: null,
    };
    expect(waitBars(approvals)).toEqual([
      { name: "Average", minutes: 1.5 },
      { name: "95th percentile", minutes: 2.5 },
      { name: "Longest", minutes: null },
    ]);
    expect(percent(0.7234)).toBe("72.3%");
    expect(percent(null)).toBe("—");
  });
});
