import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/client";
import { AgentState, agentRevokeState, agentState, runningText, runningTitle } from "./AgentsPage";

const agent = (over: Partial<Schemas["AgentOut"]>): Schemas["AgentOut"] => ({
  id: "edge-1",
  pools: ["default"],
  labels: {},
  version: "",
  hostname: "",
  online: true,
  revoked: false,
  draining: false,
  last_seen: "2026-12-01T05:00:00Z",
  first_seen: "2026-12-01T04:00:00Z",
  running: [],
  jobs_done: 0,
  jobs_failed: 0,
  concurrency: 4,
  token_id: "atk_live",
  ...over,
});

describe("an agent's Revoke action", () => {
  it("is offered only while the agent's token is active; a revoked one shows as revoked", () => {
    const tokens = [
      { id: "atk_live", active: true },
      { id: "atk_gone", active: false },
    ];
    expect(agentRevokeState({ token_id: "atk_live", revoked: false }, tokens)).toBe("revoke");
    expect(agentRevokeState({ token_id: "atk_gone", revoked: false }, tokens)).toBe("revoked");
    expect(agentRevokeState({ token_id: null, revoked: false }, tokens)).toBe("local");
    expect(agentRevokeState({ token_id: "atk_gone", revoked: false }, undefined)).toBe("unknown");
    // The agent says so itself: no Revoke while the token list loads.
    expect(agentRevokeState({ token_id: "atk_gone", revoked: true }, undefined)).toBe("revoked");
  });
});

describe("an agent's state", () => {
  it("says revoked, not offline, for an agent whose token was revoked, as the CLI does", () => {
    expect(agentState({ online: false, revoked: true })).toBe("revoked");
    expect(agentState({ online: false, revoked: false })).toBe("offline");
    expect(agentState({ online: true, revoked: false })).toBe("online");

    const { container } = render(<AgentState agent={agent({ online: false, revoked: true, token_id: "atk_gone" })} />);
    const badge = container.querySelector(".badge")!;
    expect(badge).toHaveTextContent("revoked");
    expect(badge).not.toHaveTextContent("offline");
    expect(badge).toHaveAttribute("title", expect.stringContaining("atk_gone"));
    // The cancelled palette of UI.md: dark gray, a slashed circle beside the word.
    expect(badge.className).toContain("tone-darkgray");
    expect(badge.querySelector('[aria-hidden="true"]')).toHaveTextContent("⊘");
  });

  it("names the drain beside the revocation, and keeps online, offline and draining", () => {
    render(<AgentState agent={agent({ online: false, revoked: true, draining: true })} />);
    expect(screen.getByText(/revoked, draining/)).toBeInTheDocument();
    const { container } = render(
      <>
        <AgentState agent={agent({ id: "a" })} />
        <AgentState agent={agent({ id: "b", online: false })} />
        <AgentState agent={agent({ id: "c", online: false, draining: true })} />
      </>,
    );
    expect([...container.querySelectorAll(".badge")].map((b) => b.textContent)).toEqual(["● online", "○ offline", "⏸ draining, offline"]);
  });
});

describe("an agent's running jobs", () => {
  it("counts them against its job slots (its --concurrency) when it registered them", () => {
    expect(runningText(agent({ running: ["j1"], concurrency: 4 }))).toBe("1 of 4");
    expect(runningText(agent({ running: [], concurrency: 1 }))).toBe("0 of 1");
    // An agent not registered since the server began to store its slots: the count alone.
    expect(runningText(agent({ running: ["j1", "j2"], concurrency: null }))).toBe("2");
    expect(runningTitle(agent({ running: ["j1"], concurrency: 4 }))).toBe(
      "jobs in flight of its 4 job slots (--concurrency): j1",
    );
    expect(runningTitle(agent({ running: [], concurrency: null }))).toBe("jobs in flight (its job slots are not known)");
  });
});
