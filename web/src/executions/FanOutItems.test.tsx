import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { api } from "../api/client";
import { ME_KEY } from "../auth/session";
import { ToastProvider } from "../components/Toast";
import { FanOutItems, FanOutProgress } from "./FanOutItems";
import type { Item } from "./fanOut";

// jsdom lays nothing out: give the scrolling box a size, as a browser would.
beforeAll(() => {
  vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockImplementation(
    () => ({ x: 0, y: 0, top: 0, left: 0, right: 340, bottom: 260, width: 340, height: 260, toJSON: () => ({}) }) as DOMRect,
  );
  Object.defineProperty(HTMLElement.prototype, "clientHeight", { configurable: true, get: () => 260 });
  Object.defineProperty(HTMLElement.prototype, "clientWidth", { configurable: true, get: () => 340 });
});
afterEach(() => vi.restoreAllMocks());

const NOW = Date.parse("2026-11-30T12:00:10Z");

function item(index: number, status: Item["status"], extra: Partial<Item> = {}): Item {
  return { index, item: `host-${index}`, status, attempts: 1, job_id: `j${index}`, started_at: null, ended_at: null, retry_at: null, outputs: {}, error: null, ...extra };
}

function wrap(children: ReactNode, permissions = ["executions:retry", "executions:cancel"]) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  client.setQueryData(ME_KEY, { permissions });
  return (
    <QueryClientProvider client={client}>
      <ToastProvider>{children}</ToastProvider>
    </QueryClientProvider>
  );
}

function list(items: Item[], { stepStatus = "running", allowSkip = false, permissions }: { stepStatus?: string; allowSkip?: boolean; permissions?: string[] } = {}) {
  const onSelectItem = vi.fn();
  render(
    wrap(
      <FanOutItems executionId="ex1" step="deploy" stepStatus={stepStatus} allowSkip={allowSkip} items={items} selectedItem={null} onSelectItem={onSelectItem} now={NOW} />,
      permissions,
    ),
  );
  return { onSelectItem };
}

describe("FanOutItems", () => {
  it("shows each item's index, value, status, attempts, duration and error", () => {
    list([
      item(0, "succeeded", { item: "eu", started_at: "2026-11-30T12:00:00Z", ended_at: "2026-11-30T12:00:04Z" }),
      item(1, "failed", { item: { region: "us", tier: "api" }, attempts: 3, started_at: "2026-11-30T12:00:00Z", ended_at: "2026-11-30T12:01:05Z", error: "exit code 1" }),
      item(2, "running", { started_at: "2026-11-30T12:00:08Z" }),
    ]);
    const rows = screen.getAllByRole("listitem");
    expect(rows).toHaveLength(3);
    expect(rows[0]).toHaveTextContent("#0 eu");
    expect(within(rows[0]!).getByText("Succeeded")).toBeInTheDocument();
    expect(rows[0]).toHaveTextContent("4s");
    expect(rows[1]).toHaveTextContent("#1 region=us · tier=api");
    expect(within(rows[1]!).getByText("Failed")).toBeInTheDocument();
    expect(rows[1]).toHaveTextContent("×3 · 1m 05s");
    expect(rows[1]).toHaveTextContent("exit code 1");
    // a running item's duration ticks from its start
    expect(rows[2]).toHaveTextContent("2s");
    expect(within(rows[2]!).getByText("Running")).toBeInTheDocument();
  });

  it("offers retry on a failed item, skip only with allow_skip, cancel on a running one", () => {
    list([item(0, "failed"), item(1, "running"), item(2, "succeeded")], { allowSkip: true });
    expect(screen.getByRole("button", { name: "Retry item #0" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Skip item #0" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel item #1" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /item #2/ })).not.toBeInTheDocument();
  });

  it("hides the actions a user's role does not allow", () => {
    list([item(0, "failed"), item(1, "running")], { permissions: ["executions:read"] });
    expect(screen.queryByRole("button", { name: /Retry item|Cancel item/ })).not.toBeInTheDocument();
  });

  it("asks before retrying an item, naming it, then posts the item's index", async () => {
    const user = userEvent.setup();
    const post = vi.spyOn(api, "POST").mockResolvedValue({ data: {}, error: undefined, response: new Response("{}", { status: 200 }) } as never);
    list([item(0, "succeeded"), item(1, "failed", { item: "us" })]);
    await user.click(screen.getByRole("button", { name: "Retry item #1" }));
    const dialog = screen.getByRole("dialog", { name: "Retry item #1 (us) of deploy?" });
    expect(post).not.toHaveBeenCalled();
    await user.click(within(dialog).getByRole("button", { name: "Retry item" }));
    expect(post).toHaveBeenCalledWith("/api/v1/executions/{execution_id}/steps/{step_id}/retry", {
      params: { path: { execution_id: "ex1", step_id: "deploy" } },
      body: { item: 1, from_here: false },
    });
    expect(await screen.findByText("Retrying item #1 (us) of deploy")).toBeInTheDocument();
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("says why the server refused a cancel and keeps the list", async () => {
    const user = userEvent.setup();
    vi.spyOn(api, "POST").mockResolvedValue({
      data: undefined,
      error: { title: "Conflict", detail: "item 1 of deploy already ended" },
      response: new Response("{}", { status: 409 }),
    } as never);
    list([item(1, "running")]);
    await user.click(screen.getByRole("button", { name: "Cancel item #1" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Cancel item" }));
    expect(await screen.findByText(/item 1 of deploy already ended/)).toBeInTheDocument();
    expect(screen.getAllByRole("listitem")).toHaveLength(1);
  });

  it("filters to failed items and selects an item for its log", async () => {
    const user = userEvent.setup();
    const { onSelectItem } = list([item(0, "succeeded"), item(1, "failed"), item(2, "cancelled")]);
    await user.click(screen.getByRole("radio", { name: "Failed" }));
    expect(screen.getAllByRole("listitem").map((r) => r.firstElementChild?.getAttribute("data-item"))).toEqual(["1", "2"]);
    await user.click(screen.getByRole("button", { name: "#2 host-2: show its log" }));
    expect(onSelectItem).toHaveBeenCalledWith(2);
  });

  it("keeps only a window of 1,000 items in the DOM", () => {
    list(Array.from({ length: 1000 }, (_, i) => item(i, i % 7 === 0 ? "failed" : "succeeded")));
    const rendered = screen.getAllByRole("listitem").length;
    expect(rendered).toBeGreaterThan(0);
    expect(rendered).toBeLessThan(40);
  });
});

describe("FanOutProgress", () => {
  it("says the items' progress with the parallel limit", () => {
    render(
      <FanOutProgress
        step="deploy"
        fan={{ kind: "for_each", max_parallel: 10, fail_fast: false, min_success: null, total: 200, counts: { pending: 153, waiting: 0, running: 10, succeeded: 35, failed: 2, skipped: 0, cancelled: 0 } }}
      />,
    );
    expect(screen.getByText(/37 of 200 ended · 10 running · 2 failed/)).toHaveTextContent("Items: 37 of 200 ended · 10 running · 2 failed · at most 10 at once");
  });
});
