// Status words, colours and icons, defined once (../shared UI.md's palette). Every badge
// carries its word and its icon, so colour is never the only signal.
import type { ReactElement } from "react";

export type Tone =
  | "gray"
  | "yellow"
  | "blue"
  | "lightblue"
  | "indigo"
  | "green"
  | "red"
  | "redoutline"
  | "orange"
  | "graydashed"
  | "darkgray";

type IconName =
  | "circle"
  | "hourglass"
  | "spinner"
  | "arrow"
  | "pause"
  | "check"
  | "thumbsup"
  | "cross"
  | "clockcross"
  | "thumbsdown"
  | "skip"
  | "slashed"
  | "play"
  | "draft";

interface StatusStyle {
  label: string;
  tone: Tone;
  icon: IconName;
}

const STATUS: Record<string, StatusStyle> = {
  pending: { label: "Pending", tone: "gray", icon: "circle" },
  // A running step whose only active job waits for an agent: the pending colour, no spinner.
  queued: { label: "Waiting for an agent", tone: "gray", icon: "circle" },
  waiting: { label: "Waiting", tone: "yellow", icon: "hourglass" },
  running: { label: "Running", tone: "blue", icon: "spinner" },
  dispatched: { label: "Dispatched", tone: "lightblue", icon: "arrow" },
  paused: { label: "Paused", tone: "indigo", icon: "pause" },
  succeeded: { label: "Succeeded", tone: "green", icon: "check" },
  completed: { label: "Completed", tone: "green", icon: "check" },
  approved: { label: "Approved", tone: "green", icon: "thumbsup" },
  failed: { label: "Failed", tone: "red", icon: "cross" },
  error: { label: "Error", tone: "red", icon: "cross" },
  timeout: { label: "Timed out", tone: "redoutline", icon: "clockcross" },
  rejected: { label: "Rejected", tone: "orange", icon: "thumbsdown" },
  skipped: { label: "Skipped", tone: "graydashed", icon: "skip" },
  cancelled: { label: "Cancelled", tone: "darkgray", icon: "slashed" },
};

/** Workflow statuses have their own meaning: paused is yellow there, not indigo. */
const WORKFLOW_STATUS: Record<string, StatusStyle> = {
  active: { label: "Active", tone: "green", icon: "play" },
  paused: { label: "Paused", tone: "yellow", icon: "pause" },
  draft: { label: "Draft", tone: "gray", icon: "draft" },
};

export const ACTIVE_EXECUTION = new Set(["pending", "running", "paused"]);
export const TERMINAL_STEP = new Set([
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
  "approved",
  "rejected",
]);

/** The status a step shows: "queued" while it runs but its only active job is still pending
 * with a pending reason (no online agent in its pool, or no free slot), so it is not shown as
 * running with a spinner; its own status otherwise. */
export function shownStepStatus(step: {
  status: string;
  pending_reason?: string | null;
  jobs: { status: string }[];
}): string {
  if (step.status !== "running" || !step.pending_reason) return step.status;
  const active = step.jobs.filter((j) => !TERMINAL_JOB.has(j.status));
  return active.length > 0 && active.every((j) => j.status === "pending") ? "queued" : step.status;
}

/** What a waiting-for-an-agent step says: "Waiting for an agent: <pending_reason>". */
export function agentWaitText(reason: string | null | undefined): string {
  return `Waiting for an agent: ${reason ?? ""}`;
}

const TERMINAL_JOB = new Set(["completed", "failed", "timeout", "cancelled"]);

export function statusStyle(status: string, kind: "run" | "workflow" = "run"): StatusStyle {
  const table = kind === "workflow" ? WORKFLOW_STATUS : STATUS;
  return table[status] ?? { label: status, tone: "gray", icon: "circle" };
}

const PATHS: Record<IconName, ReactElement> = {
  circle: <circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" strokeWidth="1.8" />,
  hourglass: (
    <path d="M4 2h8M4 14h8M5 2c0 4 6 4 6 6s-6 2-6 6M11 2c0 4-6 4-6 6s6 2 6 6" fill="none" stroke="currentColor" strokeWidth="1.5" />
  ),
  spinner: (
    <path d="M8 2.5a5.5 5.5 0 1 1-5.5 5.5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
  ),
  arrow: <path d="M2 8h9M8 4.5 11.5 8 8 11.5M13.5 3v10" fill="none" stroke="currentColor" strokeWidth="1.8" />,
  pause: <path d="M5.5 3v10M10.5 3v10" stroke="currentColor" strokeWidth="2.2" />,
  check: <path d="m3 8.5 3.2 3L13 4.5" fill="none" stroke="currentColor" strokeWidth="2" />,
  thumbsup: (
    <path d="M2.5 7h2.5v6.5H2.5zM5 7l3-5c1.2 0 1.8.8 1.5 2L9 6.5h3.5c.8 0 1.3.7 1.1 1.5l-1.2 4.5c-.2.6-.7 1-1.3 1H5" fill="none" stroke="currentColor" strokeWidth="1.4" />
  ),
  cross: <path d="m4 4 8 8M12 4l-8 8" stroke="currentColor" strokeWidth="2" />,
  clockcross: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <circle cx="7" cy="7" r="5" />
      <path d="M7 4v3h2.5M11 11l4 4M15 11l-4 4" />
    </g>
  ),
  thumbsdown: (
    <path d="M2.5 9h2.5V2.5H2.5zM5 9l3 5c1.2 0 1.8-.8 1.5-2L9 9.5h3.5c.8 0 1.3-.7 1.1-1.5l-1.2-4.5c-.2-.6-.7-1-1.3-1H5" fill="none" stroke="currentColor" strokeWidth="1.4" />
  ),
  skip: <path d="M3 3.5 9 8l-6 4.5zM12 3v10" fill="none" stroke="currentColor" strokeWidth="1.6" />,
  slashed: (
    <g fill="none" stroke="currentColor" strokeWidth="1.8">
      <circle cx="8" cy="8" r="5.5" />
      <path d="m4.2 11.8 7.6-7.6" />
    </g>
  ),
  play: <path d="M4.5 3v10L13 8z" fill="currentColor" />,
  draft: <path d="M3 13h3l7-7-3-3-7 7zM9 4l3 3" fill="none" stroke="currentColor" strokeWidth="1.5" />,
};

export function StatusIcon({ status, kind = "run" }: { status: string; kind?: "run" | "workflow" }) {
  const style = statusStyle(status, kind);
  return (
    <svg
      className={`status-icon icon-${style.icon}`}
      viewBox="0 0 16 16"
      width="14"
      height="14"
      aria-hidden="true"
      focusable="false"
    >
      {PATHS[style.icon]}
    </svg>
  );
}

/** A status as a badge: colour, icon and word. */
export function StatusBadge({ status, kind = "run" }: { status: string; kind?: "run" | "workflow" }) {
  const style = statusStyle(status, kind);
  return (
    <span className={`badge tone-${style.tone}`} data-status={status}>
      <StatusIcon status={status} kind={kind} />
      <span>{style.label}</span>
    </span>
  );
}

const TRIGGER_LABEL: Record<string, string> = {
  manual: "Manual",
  schedule: "Schedule",
  webhook: "Webhook",
  git: "Git push",
  incident: "Incident",
  workflow: "Workflow",
  api: "API",
  cli: "CLI",
  test: "Test run",
};

const TRIGGER_PATH: Record<string, ReactElement> = {
  manual: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <circle cx="8" cy="5" r="2.8" />
      <path d="M2.5 14.5c.6-3 2.8-4.5 5.5-4.5s4.9 1.5 5.5 4.5" />
    </g>
  ),
  schedule: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <circle cx="8" cy="8" r="6" />
      <path d="M8 4.5V8l2.5 1.5" />
    </g>
  ),
  webhook: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <circle cx="4" cy="12" r="2" />
      <circle cx="12" cy="12" r="2" />
      <circle cx="8" cy="4" r="2" />
      <path d="M7 6 4.5 10M9 6l2.5 4M6 12h4" />
    </g>
  ),
  git: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <circle cx="4.5" cy="3.5" r="1.7" />
      <circle cx="4.5" cy="12.5" r="1.7" />
      <circle cx="11.5" cy="6" r="1.7" />
      <path d="M4.5 5.2v5.6M11.5 7.7c0 2.5-7 1.5-7 3" />
    </g>
  ),
  incident: <path d="M8 2 14.5 13.5h-13zM8 6.5v3.5M8 11.5v1" fill="none" stroke="currentColor" strokeWidth="1.5" />,
  workflow: (
    <g fill="none" stroke="currentColor" strokeWidth="1.5">
      <rect x="1.5" y="2" width="5" height="4" rx="1" />
      <rect x="9.5" y="10" width="5" height="4" rx="1" />
      <path d="M4 6v6h5.5" />
    </g>
  ),
};

export function triggerLabel(type: string): string {
  return TRIGGER_LABEL[type] ?? type;
}

/** A trigger type as an icon with its name as the accessible label and tooltip. */
export function TriggerIcon({ type, withLabel = false }: { type: string; withLabel?: boolean }) {
  const label = triggerLabel(type);
  return (
    <span className="trigger" title={label}>
      <svg viewBox="0 0 16 16" width="15" height="15" role="img" aria-label={withLabel ? undefined : label} aria-hidden={withLabel ? true : undefined}>
        {TRIGGER_PATH[type] ?? TRIGGER_PATH.manual}
      </svg>
      {withLabel && <span>{label}</span>}
    </span>
  );
}
