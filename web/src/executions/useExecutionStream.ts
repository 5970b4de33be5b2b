// The one live feed of an execution. The log so far comes in pages from `GET .../logs`
// (10,000 lines a request: a long log loads in seconds), then `GET .../events` over SSE
// carries everything after it: log lines go to a LogStore (re-rendered at most once a frame)
// and status events refetch the execution. The browser resumes a dropped stream with
// Last-Event-ID; after an error that closed it, we reconnect with `?after=` the last id seen.
// The `end` event is the one sure sign the run is over, so the status shown after it must be
// read after it: a read in flight at that moment (the first load of a run dialog opened as the
// run ended, a debounced refetch) started before the end and may say "running"; it is cancelled,
// the execution read again, and only then is the stream "ended". Judging `active` on the older
// read instead reopened the ended stream, whose teardown dropped the pending refetch, and so on:
// dozens of streams per run and a dialog left on "Running" until the 10 s poll.
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useEffect, useRef, useState } from "react";
import { API, api, call } from "../api/client";
import type { LogLine } from "../api/types";
import { LogStore } from "./logs";

const HISTORY_PAGE = 10_000;

/** Lets actions on the page (retry, skip, approve) reopen the page's stream. */
export const ReopenStream = createContext<() => void>(() => undefined);

export type StreamState = "connecting" | "live" | "reconnecting" | "ended";

export function executionKey(id: string) {
  return ["executions", "detail", id] as const;
}

/**
 * `active`: whether the execution is running; when an ended run becomes active again (a retry),
 * the stream reopens from where it stopped.
 */
export function useExecutionStream(id: string | undefined, { logs = true, active = false }: { logs?: boolean; active?: boolean } = {}) {
  const client = useQueryClient();
  const storeRef = useRef<LogStore>(new LogStore());
  const cursor = useRef({ id: "", lastId: "" });
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");
  const [epoch, setEpoch] = useState(0);
  /** When the last stream ended (ms since the epoch); 0 while none has. */
  const endedAt = useRef(0);

  useEffect(() => {
    // Reopen only on a status read after the end (a retry revived the run), never on one the
    // end overtook.
    if (!active || state !== "ended" || !id) return;
    if ((client.getQueryState(executionKey(id))?.dataUpdatedAt ?? 0) > endedAt.current) setEpoch((e) => e + 1);
  }, [active, state, id, client]);

  useEffect(() => {
    if (!id || typeof EventSource === "undefined") return;
    const resuming = cursor.current.id === id && cursor.current.lastId !== "";
    if (!resuming) {
      storeRef.current = new LogStore();
      cursor.current = { id, lastId: "" };
      setVersion((v) => v + 1);
    }
    setState("connecting");
    const store = storeRef.current;
    let source: EventSource | null = null;
    let lastId = cursor.current.lastId;
    let frame = 0;
    let refetchTimer: number | undefined;
    let retryTimer: number | undefined;
    let closed = false;
    let disposed = false;

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
    const loadHistory = async () => {
      let after = 0;
      for (;;) {
        const page = await call(
          api.GET("/api/v1/executions/{execution_id}/logs", { params: { path: { execution_id: id }, query: { after, limit: HISTORY_PAGE } } }),
        );
        if (closed) return;
        for (const line of page.items) store.add(line);
        bump();
        const done = page.items.length < HISTORY_PAGE || page.next_after <= after;
        after = Math.max(after, page.next_after);
        if (done) break;
      }
      // Every event from the start (they are few), log lines only after those we have.
      if (!lastId) {
        lastId = `0-${after}`;
        cursor.current.lastId = lastId;
      }
    };
    const connect = () => {
      const url = `${API}/executions/${encodeURIComponent(id)}/events${lastId ? `?after=${encodeURIComponent(lastId)}` : ""}`;
      source = new EventSource(url, { withCredentials: true });
      source.onopen = () => setState("live");
      const remember = (e: MessageEvent) => {
        if (e.lastEventId) {
          lastId = e.lastEventId;
          cursor.current.lastId = lastId;
        }
      };
      if (logs) {
        source.addEventListener("log", (e) => {
          remember(e);
          const data = JSON.parse(e.data) as LogLine;
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
        if (refetchTimer !== undefined) window.clearTimeout(refetchTimer);
        refetchTimer = undefined;
        endedAt.current = Date.now();
        const key = executionKey(id);
        void client.invalidateQueries({ queryKey: ["approvals"] });
        // Not through `refetch`: this read must not be dropped when the effect is torn down.
        void client
          .cancelQueries({ queryKey: key })
          .then(() => client.invalidateQueries({ queryKey: key }))
          .finally(() => {
            if (!disposed) setState("ended");
          });
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
    if (logs && !resuming) {
      loadHistory()
        .catch(() => undefined) // the stream below still carries the whole log
        .finally(() => {
          if (!closed) connect();
        });
    } else connect();
    return () => {
      closed = true;
      disposed = true;
      source?.close();
      if (frame) cancelAnimationFrame(frame);
      if (refetchTimer !== undefined) window.clearTimeout(refetchTimer);
      if (retryTimer !== undefined) window.clearTimeout(retryTimer);
    };
  }, [id, logs, client, epoch]);

  /** Opens the stream again after it ended (a retry revived the run); a no-op while open. */
  const stateRef = useRef(state);
  stateRef.current = state;
  const reopen = useCallback(() => {
    if (stateRef.current === "ended") setEpoch((e) => e + 1);
  }, []);

  return { store: storeRef.current, version, state, reopen };
}
