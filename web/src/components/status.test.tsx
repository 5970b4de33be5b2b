import { render, screen } from "@testing-library/react";
import { agentWaitText, shownStepStatus, StatusBadge, statusStyle } from "./status";

const RUN_STATUSES = ["pending", "queued", "waiting", "running", "dispatched", "paused", "succeeded", "completed", "approved", "failed", "error", "timeout", "rejected", "skipped", "cancelled"];

describe("StatusBadge", () => {
  it.each(RUN_STATUSES)("shows %s with a word and an icon, not colour alone", (status) => {
    const { container } = render(<StatusBadge status={status} />);
    const badge = container.querySelector(".badge")!;
    expect(badge).toHaveAttribute("data-status", status);
    expect(badge.textContent!.trim().length).toBeGreaterThan(2);
    expect(badge.querySelector("svg.status-icon")).not.toBeNull();
    expect(badge.className).toMatch(/tone-/);
  });

  it("uses the palette of UI.md", () => {
    expect(statusStyle("running").tone).toBe("blue");
    expect(statusStyle("paused").tone).toBe("indigo");
    expect(statusStyle("waiting").tone).toBe("yellow");
    expect(statusStyle("rejected").tone).toBe("orange");
    expect(statusStyle("timeout").tone).toBe("redoutline");
    expect(statusStyle("skipped").tone).toBe("graydashed");
    expect(statusStyle("cancelled").tone).toBe("darkgray");
  });

  it("gives workflows their own meaning of paused", () => {
    render(<StatusBadge status="paused" kind="workflow" />);
    expect(screen.getByText("Paused").closest(".badge")!.className).toContain("tone-yellow");
    expect(statusStyle("active", "workflow").tone).toBe("green");
    expect(statusStyle("draft", "workflow").tone).toBe("gray");
  });

  it("shows an unknown status by its name instead of failing", () => {
    render(<StatusBadge status="mystery" />);
    expect(screen.getByText("mystery")).toBeInTheDocument();
  });
});

describe("a step waiting for an agent", () => {
  const reason = "no agent serves pool us-east";

  it("shows as queued (the pending colour, no spinner) while its only active job is pending", () => {
    const step = { status: "running", pending_reason: reason, jobs: [{ status: "failed" }, { status: "pending" }] };
    expect(shownStepStatus(step)).toBe("queued");
    expect(statusStyle("queued").tone).toBe(statusStyle("pending").tone);
    expect(statusStyle("queued").icon).not.toBe("spinner");
    expect(agentWaitText(reason)).toBe("Waiting for an agent: no agent serves pool us-east");
    render(<StatusBadge status={shownStepStatus(step)} />);
    expect(screen.getByText("Waiting for an agent")).toBeInTheDocument();
  });

  it("shows as running once an agent has its job, or when nothing holds it up", () => {
    expect(shownStepStatus({ status: "running", pending_reason: reason, jobs: [{ status: "running" }] })).toBe("running");
    expect(shownStepStatus({ status: "running", pending_reason: null, jobs: [{ status: "pending" }] })).toBe("running");
    expect(shownStepStatus({ status: "waiting", pending_reason: "waiting for approval", jobs: [] })).toBe("waiting");
  });
});
