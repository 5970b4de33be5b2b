// One stream for the lists: `GET /api/v1/events` names what changed (an execution, an
// approval, a workflow) and the queries showing it refetch, at most a few times a second.
// The browser resumes a dropped stream with Last-Event-ID. Lists also poll while a run is
// active, so they stay live where the stream is unavailable.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { API } from "../api/client";
import { ME_KEY } from "../auth/session";

const AFFECTS: Record<string, string[]> = {
  execution: ["executions", "workflows"], // a run's status is also a workflow's last run
  approval: ["approvals", "executions"],
  workflow: ["workflows"],
  reset: ["executions", "workflows", "approvals"],
};

export function useGlobalEvents(enabled: boolean) {
  const client = useQueryClient();
  useEffect(() => {
    if (!enabled || typeof EventSource === "undefined") return;
    const pending = new Set<string>();
    let timer: number | undefined;
    const source = new EventSource(`${API}/events`, { withCredentials: true });
    const flush = () => {
      timer = undefined;
      for (const key of pending) void client.invalidateQueries({ queryKey: [key] });
      pending.clear();
    };
    for (const [kind, keys] of Object.entries(AFFECTS)) {
      source.addEventListener(kind, () => {
        keys.forEach((k) => pending.add(k));
        if (timer === undefined) timer = window.setTimeout(flush, 300);
      });
    }
    // The server ends the stream when the session or token is over: find out who we are now.
    source.addEventListener("end", () => {
      source.close();
      void client.invalidateQueries({ queryKey: ME_KEY });
    });
    return () => {
      source.close();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [enabled, client]);
}
