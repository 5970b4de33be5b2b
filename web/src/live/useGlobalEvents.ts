// One stream for the lists: `GET /api/v1/events` says that something changed, and the
// queries that show it refetch. Lists also poll while a run is active, so they stay live
// even where the stream is unavailable.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { API } from "../api/client";

export function useGlobalEvents(enabled: boolean) {
  const client = useQueryClient();
  useEffect(() => {
    if (!enabled || typeof EventSource === "undefined") return;
    let timer: number | undefined;
    const source = new EventSource(`${API}/events`, { withCredentials: true });
    const refresh = () => {
      if (timer !== undefined) return;
      timer = window.setTimeout(() => {
        timer = undefined;
        void client.invalidateQueries({ queryKey: ["workflows"] });
        void client.invalidateQueries({ queryKey: ["executions"] });
        void client.invalidateQueries({ queryKey: ["approvals"] });
      }, 400);
    };
    source.onmessage = refresh;
    for (const kind of ["execution", "step", "approval", "workflow"]) source.addEventListener(kind, refresh);
    return () => {
      source.close();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [enabled, client]);
}
