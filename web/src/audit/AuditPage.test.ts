import { describe, expect, it } from "vitest";
import { agentOrder, isLocalAgent } from "../agents/AgentsPage";
import type { Schemas } from "../api/client";
import { tokenState } from "../settings/TokensPage";
import { ACTION_GROUPS, actionWords, localToIso, targetLink } from "./AuditPage";

describe("audit entries", () => {
  it("say actions in words and keep unknown ones as they are", () => {
    expect(actionWords("approval.reject")).toBe("rejected");
    expect(actionWords("something.new")).toBe("something.new");
  });

  it("offers connection changes in the action filter, in words", () => {
    const group = ACTION_GROUPS.find((g) => g.label === "Connection changes");
    expect(group?.value).toBe("connection.");
    for (const action of ["connection.create", "connection.update", "connection.delete", "connection.test"]) {
      expect(action.startsWith(group?.value ?? "?")).toBe(true);
      expect(actionWords(action)).not.toBe(action);
    }
    expect(actionWords("connection.test")).toBe("tested a connection");
  });

  it("link targets that have a page", () => {
    expect(targetLink({ action: "execution.cancel", target: "ex1" })).toBe("/executions/ex1");
    expect(targetLink({ action: "step.retry", target: "ex1/apply" })).toBe("/executions/ex1?step=apply");
    expect(targetLink({ action: "workflow.publish", target: "deploy" })).toBe("/workflows/deploy");
    expect(targetLink({ action: "trigger.disable", target: "deploy/nightly" })).toBe("/workflows/deploy");
    expect(targetLink({ action: "workflow.delete", target: "gone" })).toBeNull();
    expect(targetLink({ action: "secret.create", target: "KEY" })).toBeNull();
  });

  it("turns a local date-time into UTC", () => {
    expect(localToIso("")).toBeUndefined();
    const iso = localToIso("2026-11-30T10:15");
    expect(iso).toBe(new Date(2026, 10, 30, 10, 15).toISOString());
  });
});

describe("agents and tokens", () => {
  const agent = (id: string, online: boolean, last: string, token: string | null): Schemas["AgentOut"] => ({
    id, online, last_seen: last, token_id: token, pools: [], labels: {}, version: "", hostname: "", draining: false,
    first_seen: last, running: [], jobs_done: 0, jobs_failed: 0, revoked: false, concurrency: null,
  });

  it("lists the built-in agent first, then online ones, newest seen first", () => {
    const list = agentOrder([
      agent("edge-old", false, "2026-11-30T09:00:00Z", "atk_1"),
      agent("edge-new", true, "2026-11-30T10:00:00Z", "atk_1"),
      agent("local-abc", true, "2026-11-30T08:00:00Z", null),
      agent("edge-mid", true, "2026-11-30T09:30:00Z", "atk_2"),
    ]);
    expect(list.map((a) => a.id)).toEqual(["local-abc", "edge-new", "edge-mid", "edge-old"]);
    expect(isLocalAgent(list[0]!)).toBe(true);
  });

  it("names a token's state", () => {
    expect(tokenState({ revoked_at: "2026-11-30T10:00:00Z", expired: true })).toBe("revoked");
    expect(tokenState({ revoked_at: null, expired: true })).toBe("expired");
    expect(tokenState({ revoked_at: null, expired: false })).toBe("active");
  });
});
