import { describe, expect, it } from "vitest";
import { agentRevokeState } from "./AgentsPage";

describe("an agent's Revoke action", () => {
  it("is offered only while the agent's token is active; a revoked one shows as revoked", () => {
    const tokens = [
      { id: "atk_live", active: true },
      { id: "atk_gone", active: false },
    ];
    expect(agentRevokeState({ token_id: "atk_live" }, tokens)).toBe("revoke");
    expect(agentRevokeState({ token_id: "atk_gone" }, tokens)).toBe("revoked");
    expect(agentRevokeState({ token_id: null }, tokens)).toBe("local");
    expect(agentRevokeState({ token_id: "atk_gone" }, undefined)).toBe("unknown");
  });
});
