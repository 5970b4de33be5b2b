// The log of one execution as the panel holds it: lines in arrival order, gap markers where a
// job's sequence numbers skip, and the pure filters and search the panel applies.
import type { LogLine } from "../api/types";
import { stripAnsi } from "./ansi";

/** A line as the API sends it (a page of `GET .../logs`, or a `log` event's data); the id is
 *  the server's and not needed here (the store numbers its entries itself). */
export type LogLineInput = Pick<LogLine, "step" | "job_id" | "seq" | "stream" | "text"> & Partial<Pick<LogLine, "at" | "level" | "item">>;

export interface LogLineEntry {
  kind: "line";
  id: number;
  step: string;
  job_id: string;
  /** The item of a fanned-out step the line belongs to; null for a plain step. */
  item: number | null;
  seq: number;
  at: string | null;
  stream: LogLine["stream"];
  level: LogLine["level"];
  text: string;
  plain: string;
}

export interface GapEntry {
  kind: "gap";
  id: string;
  step: string;
  job_id: string;
  item: number | null;
  missing: number;
  text: string;
}

export type LogEntry = LogLineEntry | GapEntry;

const LOST = /^\[opsflow\] log lines (\d+)\.\.(\d+) were lost/;
const DROPPED = /^\[opsflow\] (\d+) more log lines were not stored/;

export type LogFilter = "all" | "output" | "errors";

/** Whether a log line reports a problem, as the server says, never guessed from its words: what
 *  the program wrote to stderr, and opsflow's own lines (stream system) whose executor gave them
 *  the level error (why the step failed) or warn (a forced kill, a truncated log). */
export function isErrorLine(entry: LogLineEntry): boolean {
  return entry.stream === "stderr" || entry.level === "error" || entry.level === "warn";
}

/** Whether an entry shows under a filter: Output is stdout, Errors is what `isErrorLine` says;
 *  gap markers always show. */
export function passesFilter(entry: LogEntry, filter: LogFilter): boolean {
  if (entry.kind === "gap" || filter === "all") return true;
  if (filter === "output") return entry.stream === "stdout";
  return isErrorLine(entry);
}

/** The entries a panel shows: of `step` (every step when null), of its `item` (every item when
 *  null), under `filter`. */
export function visibleEntries(entries: readonly LogEntry[], filter: LogFilter, step: string | null, item: number | null = null): LogEntry[] {
  if (filter === "all" && !step && item === null) return entries as LogEntry[];
  return entries.filter((e) => (!step || e.step === step) && (item === null || e.item === item) && passesFilter(e, filter));
}

/** Where a line comes from, as the panel's left column says it: `deploy`, or `deploy #3` for
 *  item 3 of a fanned-out step. */
export function lineSource(entry: Pick<LogEntry, "step" | "item">): string {
  return entry.item === null ? entry.step : `${entry.step} #${entry.item}`;
}

/** Indexes (into `entries`) of the lines containing `query`, case-insensitively. */
export function searchEntries(entries: readonly LogEntry[], query: string): number[] {
  const needle = query.toLowerCase();
  if (!needle) return [];
  const hits: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.kind === "line" && e.plain.toLowerCase().includes(needle)) hits.push(i);
  }
  return hits;
}

/** An append-only log with gap markers by (job, seq); ignores lines it already holds. */
export class LogStore {
  entries: LogEntry[] = [];
  private seen = new Set<string>();
  private counter = 0;

  private lastSeq = new Map<string, number>();

  add(input: LogLineInput): boolean {
    const key = `${input.job_id}:${input.seq}`;
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    const line = { ...input, id: ++this.counter };
    if (line.stream === "system") {
      // The server's own markers: lines lost between agent and server, or a truncated log.
      const lost = LOST.exec(line.text);
      const dropped = DROPPED.exec(line.text);
      if (lost || dropped) {
        const missing = lost ? Number(lost[2]) - Number(lost[1]) + 1 : Number(dropped![1]);
        this.entries.push({ kind: "gap", id: `gap-${line.id}`, step: line.step, job_id: line.job_id, item: line.item ?? null, missing, text: line.text.replace(/^\[opsflow\]\s*/, "") });
        this.lastSeq.set(line.job_id, lost ? Number(lost[2]) : line.seq);
        return true;
      }
    }
    const prev = this.lastSeq.get(line.job_id);
    const expected = prev === undefined ? 1 : prev + 1;
    if (line.seq > expected && (prev !== undefined || line.seq > 1)) {
      const missing = line.seq - expected;
      this.entries.push({ kind: "gap", id: `gap-${line.id}`, step: line.step, job_id: line.job_id, item: line.item ?? null, missing, text: `${missing} log line${missing === 1 ? "" : "s"} missing here` });
    }
    if (prev === undefined || line.seq > prev) this.lastSeq.set(line.job_id, line.seq);
    this.entries.push({
      kind: "line",
      id: line.id,
      step: line.step,
      job_id: line.job_id,
      item: line.item ?? null,
      seq: line.seq,
      at: line.at ?? null,
      stream: line.stream,
      level: line.level ?? null,
      text: line.text,
      plain: stripAnsi(line.text),
    });
    return true;
  }
}
