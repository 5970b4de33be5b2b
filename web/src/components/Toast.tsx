// Says what an action did, or why it failed, for a few seconds.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { ApiError } from "../api/client";

interface Toast {
  id: number;
  kind: "ok" | "error";
  text: string;
}

interface ToastApi {
  ok: (text: string) => void;
  error: (err: unknown, doing?: string) => void;
}

const Ctx = createContext<ToastApi>({ ok: () => undefined, error: () => undefined });

export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.detail ? `${err.title}: ${err.detail}` : err.title;
  if (err instanceof Error) return err.message;
  return "Something went wrong";
}

let nextId = 1;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((kind: Toast["kind"], text: string) => {
    const id = nextId++;
    setToasts((t) => [...t, { id, kind, text }]);
    window.setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), kind === "error" ? 8000 : 4000);
  }, []);
  const value = useMemo<ToastApi>(
    () => ({
      ok: (text) => push("ok", text),
      error: (err, doing) => push("error", doing ? `${doing} failed. ${describeError(err)}` : describeError(err)),
    }),
    [push],
  );
  return (
    <Ctx.Provider value={value}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`}>
            {t.text}
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}

export function useToast(): ToastApi {
  return useContext(Ctx);
}
