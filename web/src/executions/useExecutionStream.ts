// The one live feed of an execution: `GET /executions/{id}/events` over SSE. Log lines go to
// a LogStore (re-rendered at most once a frame); status events refetch the execution.
// The browser resumes a dropped stream with Last-Event-ID; after an error that closed it,
// we reconnect with `?after=` the last id we saw.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { API } from "../api/client";
import { LogStore } from "./logs";

export type StreamState = "connecting" | "live" | "reconnecting" | "ended";

export function executionKey(id: string) {
  return ["executions", "detail", id] as const;
}

export function useExecutionStream(id: string | undefined, { logs = true }: { logs?: boolean } = {}) {
  const client = useQueryClient();
  const storeRef = useRef<LogStore>(new LogStore());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");

  useEffect(() => {
    if (!id || typeof EventSource === "undefined") return;
    const store = new LogStore();
    storeRef.current = store;
    setVersion((v) => v + 1);
    let source: EventSource | null = null;
    let lastId = "";
    let frame = 0;
    let refetchTimer: number | undefined;
    let retryTimer: number | undefined;
    let closed = false;

    const bump = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setVersion((v) => v + 1);
      });
    };
    const refetch = (now = false) => {
      if (refetchTimer !== undefined) window.clearTimeout(refetchTimer);
      refetchTimer = window.setTimeout(
        () => {
          refetchTimer = undefined;
          void client.invalidateQueries({ queryKey: executionKey(id) });
          void client.invalidateQueries({ queryKey: ["approvals"] });
        },
        now ? 0 : 150,
      );
    };
    const connect = () => {
      const url = `${API}/executions/${encodeURIComponent(id)}/events${lastId ? `?after=${encodeURIComponent(lastId)}` : ""}`;
      source = new EventSource(url, { withCredentials: true });
      source.onopen = () => setState("live");
      const remember = (e: MessageEvent) => {
        if (e.lastEventId) lastId = e.lastEventId;
      };
      if (logs) {
        source.addEventListener("log", (e) => {
          remember(e);
          const data = JSON.parse(e.data) as { step: string; job_id: string; seq: number; at?: string; stream: string; text: string };
          if (store.add(data)) bump();
        });
      }
      for (const kind of ["execution", "step", "job", "approval", "engine"]) {
        source.addEventListener(kind, (e) => {
          remember(e as MessageEvent);
          refetch(kind === "execution");
        });
      }
      source.addEventListener("end", () => {
        closed = true;
        source?.close();
        setState("ended");
        refetch(true);
      });
      source.onerror = () => {
        if (closed) return;
        if (source?.readyState === EventSource.CLOSED) {
          // The browser gave up (an HTTP error); try again ourselves, from where we were.
          setState("reconnecting");
          retryTimer = window.setTimeout(connect, 2000);
        } else {
          setState("reconnecting");
        }
      };
    };
    connect();
    return () => {
      closed = true;
      source?.close();
      if (frame) cancelAnimationFrame(frame);
      if (refetchTimer !== undefined) window.clearTimeout(refetchTimer);
      if (retryTimer !== undefined) window.clearTimeout(retryTimer);
    };
  }, [id, logs, client]);

  return { store: storeRef.current, version, state };
}
