import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { LogPanel } from "./LogPanel";
import { LogStore } from "./logs";

function bigLog(n: number) {
  const s = new LogStore();
  for (let i = 1; i <= n; i++) {
    s.add({ step: "load", job_id: "j", seq: i, stream: i % 10 === 0 ? "stderr" : "stdout", text: i % 1000 === 0 ? `checkpoint ${i}` : `line ${i}` });
  }
  return s;
}

// jsdom lays nothing out: give the scrolling box a size, as a browser would.
beforeAll(() => {
  vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockImplementation(
    () => ({ x: 0, y: 0, top: 0, left: 0, right: 800, bottom: 400, width: 800, height: 400, toJSON: () => ({}) }) as DOMRect,
  );
  Object.defineProperty(HTMLElement.prototype, "clientHeight", { configurable: true, get: () => 400 });
  Object.defineProperty(HTMLElement.prototype, "clientWidth", { configurable: true, get: () => 800 });
});

describe("LogPanel", () => {
  it("keeps only a window of a long log in the DOM", () => {
    const s = bigLog(20_000);
    render(<LogPanel entries={s.entries} version={1} step={null} />);
    expect(screen.getByText("20,000 lines")).toBeInTheDocument();
    const rendered = document.querySelectorAll(".log-line").length;
    expect(rendered).toBeGreaterThan(0);
    expect(rendered).toBeLessThan(200);
  });

  it("counts matches and moves between them with next and previous", async () => {
    const user = userEvent.setup();
    const s = bigLog(5000);
    render(<LogPanel entries={s.entries} version={1} step={null} />);
    await user.click(screen.getByRole("searchbox", { name: "Search the log" }));
    await user.paste("checkpoint");
    expect(screen.getByTestId("search-count")).toHaveTextContent("1 of 5");
    await user.click(screen.getByRole("button", { name: "Next match" }));
    expect(screen.getByTestId("search-count")).toHaveTextContent("2 of 5");
    await user.click(screen.getByRole("button", { name: "Previous match" }));
    await user.click(screen.getByRole("button", { name: "Previous match" }));
    expect(screen.getByTestId("search-count")).toHaveTextContent("5 of 5");
  });

  it("filters to errors and says when nothing matches", async () => {
    const user = userEvent.setup();
    const s = bigLog(100);
    render(<LogPanel entries={s.entries} version={1} step={null} />);
    await user.click(screen.getByRole("radio", { name: "Errors" }));
    expect(screen.getByText("10 lines")).toBeInTheDocument();
    await user.click(screen.getByRole("searchbox", { name: "Search the log" }));
    await user.paste("nothing like this");
    expect(screen.getByTestId("search-count")).toHaveTextContent("no match");
  });

  it("offers the items of a fanned-out step and shows the chosen item's lines", async () => {
    const user = userEvent.setup();
    const s = new LogStore();
    s.add({ step: "deploy", job_id: "a", item: 0, seq: 1, stream: "stdout", text: "eu up" });
    s.add({ step: "deploy", job_id: "b", item: 1, seq: 1, stream: "stdout", text: "us up" });
    const onItem = vi.fn();
    const items = [
      { index: 0, item: "eu" },
      { index: 1, item: "us" },
    ];
    const { rerender } = render(<LogPanel entries={s.entries} version={1} step="deploy" items={items} item={null} onItem={onItem} />);
    expect(screen.getByText("2 lines · deploy")).toBeInTheDocument();
    // every line says its item while all items show
    expect(document.querySelector(".log-item")).toHaveTextContent("#0");
    await user.selectOptions(screen.getByRole("combobox", { name: "Item of deploy whose log shows" }), "#1 us");
    expect(onItem).toHaveBeenCalledWith(1);
    rerender(<LogPanel entries={s.entries} version={1} step="deploy" items={items} item={1} onItem={onItem} />);
    expect(screen.getByText("1 line · deploy #1")).toBeInTheDocument();
    expect(screen.getByText("us up")).toBeInTheDocument();
    expect(screen.queryByText("eu up")).not.toBeInTheDocument();
  });

  it("stops following when the user scrolls up, not when lines arrive below the view", () => {
    render(<LogPanel entries={bigLog(1000).entries} version={1} step={null} live />);
    const box = screen.getByTestId("log-lines");
    Object.defineProperty(box, "scrollHeight", { configurable: true, get: () => 20_000 });
    const scrollTo = (top: number) => {
      box.scrollTop = top;
      fireEvent.scroll(box);
    };
    // the view was scrolled to the end, then more lines made the log longer: still following
    scrollTo(19_000);
    scrollTo(19_200);
    expect(screen.getByRole("button", { name: "Pause" })).toBeInTheDocument();
    // the user scrolls up
    scrollTo(12_000);
    expect(screen.getByRole("button", { name: "Resume" })).toBeInTheDocument();
  });

  it("pauses and resumes following the tail", async () => {
    const user = userEvent.setup();
    render(<LogPanel entries={bigLog(10).entries} version={1} step={null} live />);
    await user.click(screen.getByRole("button", { name: "Pause" }));
    expect(screen.getByRole("button", { name: "Resume" })).toHaveAttribute("aria-pressed", "true");
  });
});
