import { parseAnsi, stripAnsi } from "./ansi";
import { lineSource, LogStore, searchEntries, visibleEntries } from "./logs";

type Level = "info" | "warn" | "error" | null;
type Stream = "stdout" | "stderr" | "system";

function store() {
  const s = new LogStore();
  let seq = 0;
  const add = (stream: Stream, text: string, level: Level = null) => s.add({ step: "build", job_id: "j1", seq: ++seq, stream, text, level });
  add("system", "running inline sh script", "info");
  add("stdout", "compiling module a");
  add("stderr", "warning: deprecated flag");
  add("stdout", "Error: disk full");
  add("stdout", "\u001b[32mok\u001b[0m done");
  s.add({ step: "test", job_id: "j2", seq: 1, stream: "stdout", text: "tests pass" });
  return s;
}

describe("log filters", () => {
  it("All shows everything; Output shows stdout; Errors shows stderr, never a stdout line for its words", () => {
    const s = store();
    expect(visibleEntries(s.entries, "all", null)).toHaveLength(6);
    expect(visibleEntries(s.entries, "output", null).map((e) => e.kind === "line" && e.plain)).toEqual(["compiling module a", "Error: disk full", "ok done", "tests pass"]);
    expect(visibleEntries(s.entries, "errors", null).map((e) => e.kind === "line" && e.plain)).toEqual(["warning: deprecated flag"]);
  });

  it("narrows a fanned-out step to one item's lines, each line knowing its item", () => {
    const s = new LogStore();
    s.add({ step: "deploy", job_id: "a", item: 0, seq: 1, stream: "stdout", text: "eu up" });
    s.add({ step: "deploy", job_id: "b", item: 1, seq: 1, stream: "stdout", text: "us up" });
    s.add({ step: "deploy", job_id: "c", item: 1, seq: 1, stream: "stderr", text: "us retry" });
    s.add({ step: "notify", job_id: "d", seq: 1, stream: "stdout", text: "sent" });
    const texts = (item: number | null, step: string | null = "deploy") => visibleEntries(s.entries, "all", step, item).map((e) => e.kind === "line" && e.plain);
    expect(texts(1)).toEqual(["us up", "us retry"]);
    expect(texts(0)).toEqual(["eu up"]);
    expect(texts(null)).toEqual(["eu up", "us up", "us retry"]);
    expect(visibleEntries(s.entries, "errors", "deploy", 1).map((e) => e.kind === "line" && e.plain)).toEqual(["us retry"]);
    expect(s.entries.map(lineSource)).toEqual(["deploy #0", "deploy #1", "deploy #1", "notify"]);
  });

  it("narrows to the selected step", () => {
    const s = store();
    expect(visibleEntries(s.entries, "all", "test").map((e) => e.kind === "line" && e.plain)).toEqual(["tests pass"]);
  });

  it("searches case-insensitively on the text without colour codes", () => {
    const s = store();
    const all = visibleEntries(s.entries, "all", null);
    expect(searchEntries(all, "ERROR")).toEqual([3]);
    expect(searchEntries(all, "ok d")).toEqual([4]);
    expect(searchEntries(all, "")).toEqual([]);
  });
});

describe("LogStore", () => {
  it("marks a gap where a job's sequence skips, and ignores a line it already has", () => {
    const s = new LogStore();
    s.add({ step: "a", job_id: "j", seq: 1, stream: "stdout", text: "one" });
    expect(s.add({ step: "a", job_id: "j", seq: 1, stream: "stdout", text: "one" })).toBe(false);
    s.add({ step: "a", job_id: "j", seq: 5, stream: "stdout", text: "five" });
    expect(s.entries.map((e) => e.kind)).toEqual(["line", "gap", "line"]);
    const gap = s.entries[1]!;
    expect(gap.kind === "gap" && gap.missing).toBe(3);
  });

  it("turns the server's lost-lines notice into one gap marker", () => {
    const s = new LogStore();
    s.add({ step: "a", job_id: "j", seq: 1, stream: "stdout", text: "one" });
    s.add({ step: "a", job_id: "j", seq: 2, stream: "system", text: "[opsflow] log lines 2..9 were lost in transit" });
    s.add({ step: "a", job_id: "j", seq: 10, stream: "stdout", text: "ten" });
    expect(s.entries.map((e) => e.kind)).toEqual(["line", "gap", "line"]);
    const gap = s.entries[1]!;
    expect(gap.kind === "gap" && gap.missing).toBe(8);
  });
});

describe("ANSI", () => {
  it("turns SGR colours into styled segments and drops other escapes", () => {
    const segs = parseAnsi("\u001b[1;31mred\u001b[0m plain \u001b[38;5;46mgreen\u001b[2K");
    expect(segs.map((s) => s.text)).toEqual(["red", " plain ", "green"]);
    expect(segs[0]!.bold).toBe(true);
    expect(segs[0]!.fg).toBeDefined();
    expect(segs[1]!.fg).toBeUndefined();
    expect(segs[2]!.fg).toMatch(/^rgb/);
    expect(stripAnsi("\u001b[32mok\u001b[0m")).toBe("ok");
  });
});

describe("errors filter on executor lines", () => {
  it("shows opsflow's own lines by the level the server gave them, not by their words", () => {
    const s = new LogStore();
    let seq = 0;
    const add = (stream: Stream, text: string, level: Level) => s.add({ step: "call", job_id: "j1", seq: ++seq, stream, text, level });
    add("system", "GET https://api.example.invalid/health", "info");
    add("system", "name not resolved (api.example.invalid)", "error");
    add("system", "response 503 Service Unavailable in 12 ms", "info");
    add("system", "expected 200, got 503", "error");
    add("system", "exit code 0", "info");
    add("system", "the process did not exit after SIGTERM; sending SIGKILL", "warn");
    add("system", "a line stored before levels existed: exit code 2", null);
    add("stderr", "curl: (6) could not resolve host", null);
    add("stdout", "FATAL error: words alone do not make an error line", null);
    expect(visibleEntries(s.entries, "errors", null).map((e) => e.kind === "line" && e.plain)).toEqual([
      "name not resolved (api.example.invalid)",
      "expected 200, got 503",
      "the process did not exit after SIGTERM; sending SIGKILL",
      "curl: (6) could not resolve host",
    ]);
  });

  it("keeps the level of each line for the panel to colour", () => {
    const s = new LogStore();
    s.add({ step: "a", job_id: "j", seq: 1, stream: "system", text: "exit code 3", level: "error" });
    s.add({ step: "a", job_id: "j", seq: 2, stream: "stdout", text: "out" });
    expect(s.entries.map((e) => e.kind === "line" && e.level)).toEqual(["error", null]);
  });
});
