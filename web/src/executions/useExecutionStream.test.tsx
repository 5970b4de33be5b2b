import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { act, render, screen } from "@testing-library/react";
import { executionKey, useExecutionStream } from "./useExecutionStream";

/** An EventSource the test drives: it records each one opened and fires events on demand. */
class FakeSource {
  static opened: FakeSource[] = [];
  static readonly CLOSED = 2;
  readonly url: string;
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  private listeners = new Map<string, ((e: MessageEvent) => void)[]>();

  constructor(url: string) {
    this.url = url;
    FakeSource.opened.push(this);
    setTimeout(() => this.onopen?.(), 0);
  }
  addEventListener(kind: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), fn]);
  }
  close() {
    this.readyState = FakeSource.CLOSED;
  }
  emit(kind: string, id: string) {
    for (const fn of this.listeners.get(kind) ?? []) fn(new MessageEvent(kind, { data: "{}", lastEventId: id }));
  }
}

/** The `i`th EventSource opened. */
function opened(i: number): FakeSource {
  const source = FakeSource.opened[i];
  if (!source) throw new Error(`only ${FakeSource.opened.length} streams were opened`);
  return source;
}

/** Reads of the execution the test answers by hand, in any order. */
function reads() {
  const pending: ((status: string) => void)[] = [];
  const fn = () => new Promise<{ status: string }>((resolve) => pending.push((status) => resolve({ status })));
  /** Answers the `i`th read. */
  const answer = (i: number, status: string) => {
    const resolve = pending[i];
    if (!resolve) throw new Error(`only ${pending.length} reads were made`);
    resolve(status);
  };
  return { fn, pending, answer };
}

function Probe({ read }: { read: () => Promise<{ status: string }> }) {
  const q = useQuery({ queryKey: executionKey("ex1"), queryFn: read });
  const status = q.data?.status;
  const stream = useExecutionStream("ex1", { logs: false, active: status === "running" });
  return (
    <p>
      {status ?? "loading"} / {stream.state}
    </p>
  );
}

async function settle() {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 20));
  });
}

beforeEach(() => {
  FakeSource.opened = [];
  vi.stubGlobal("EventSource", FakeSource);
});
afterEach(() => vi.unstubAllGlobals());

function mount(read: () => Promise<{ status: string }>) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <Probe read={read} />
    </QueryClientProvider>,
  );
  return client;
}

describe("useExecutionStream", () => {
  it("shows the status read after the end, not the one in flight when it came", async () => {
    const r = reads();
    mount(r.fn);
    await settle();
    expect(r.pending).toHaveLength(1); // the first load, started while the run was going
    act(() => opened(0).emit("end", "3-0"));
    await settle();
    expect(r.pending).toHaveLength(2); // read again after the end
    await act(async () => r.answer(0, "running")); // the old read is answered late: ignored
    await act(async () => r.answer(1, "completed"));
    await settle();
    expect(screen.getByText("completed / ended")).toBeInTheDocument();
    expect(FakeSource.opened).toHaveLength(1);
  });

  it("does not reopen an ended stream on a status read before the end", async () => {
    const r = reads();
    mount(r.fn);
    await settle();
    await act(async () => r.answer(0, "running"));
    await settle();
    const source = opened(0);
    act(() => {
      source.emit("job", "1-0");
      source.emit("execution", "2-0");
      source.emit("end", "2-0");
    });
    await settle();
    expect(screen.getByText("running / live")).toBeInTheDocument(); // "ended" waits for the read
    expect(FakeSource.opened).toHaveLength(1);
    for (const answer of r.pending.slice(1)) await act(async () => answer("completed"));
    await settle();
    expect(screen.getByText("completed / ended")).toBeInTheDocument();
    expect(FakeSource.opened).toHaveLength(1);
  });

  it("reopens when a read after the end finds the run going again (a retry)", async () => {
    const r = reads();
    const client = mount(r.fn);
    await settle();
    await act(async () => r.answer(0, "running"));
    act(() => {
      opened(0).emit("execution", "4-0");
      opened(0).emit("end", "4-0");
    });
    await settle();
    for (const answer of r.pending.slice(1)) await act(async () => answer("completed"));
    await settle();
    expect(screen.getByText("completed / ended")).toBeInTheDocument();
    // The page's retry invalidates the execution; the read says running: resume where it stopped.
    const before = r.pending.length;
    act(() => void client.invalidateQueries({ queryKey: executionKey("ex1") }));
    await settle();
    await act(async () => r.answer(before, "running"));
    await settle();
    expect(FakeSource.opened).toHaveLength(2);
    expect(opened(1).url).toContain("?after=4-0");
  });
});
