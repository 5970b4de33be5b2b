import { useEffect, useState, type RefObject } from "react";

/** Re-renders every `ms` while `active`: for ticking durations and relative times. */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(id);
  }, [active, ms]);
  return now;
}

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
}

/** `/` focuses the page's search box (unless the user is typing somewhere). */
export function useSlashFocus(ref: RefObject<HTMLInputElement | null>) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "/" && !typing(e.target) && !e.metaKey && !e.ctrlKey) {
        e.preventDefault();
        ref.current?.focus();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [ref]);
}

/** `j` / `k` move focus between the elements marked `data-row` inside `container`. */
export function useRowKeys(container: RefObject<HTMLElement | null>) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.key !== "j" && e.key !== "k") || typing(e.target) || e.metaKey || e.ctrlKey || e.altKey) return;
      const root = container.current;
      if (!root || document.querySelector('[role="dialog"]')) return;
      const rows = Array.from(root.querySelectorAll<HTMLElement>("[data-row]"));
      if (rows.length === 0) return;
      const at = rows.findIndex((r) => r === document.activeElement || r.contains(document.activeElement));
      const next = e.key === "j" ? Math.min(rows.length - 1, at + 1) : Math.max(0, at === -1 ? 0 : at - 1);
      e.preventDefault();
      rows[next]?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [container]);
}
