import { render, screen } from "@testing-library/react";
import { StatusBadge, statusStyle } from "./status";

const RUN_STATUSES = ["pending", "waiting", "running", "dispatched", "paused", "succeeded", "completed", "approved", "failed", "error", "timeout", "rejected", "skipped", "cancelled"];

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
