import { render, screen } from "@testing-library/react";
import type { ExecutionView } from "./api";
import type { Item } from "./fanOut";
import { OutputsTab } from "./Tabs";

function item(index: number, out: string): Item {
  return { index, item: `host-${index}`, status: "succeeded", attempts: 1, job_id: `j${index}`, started_at: null, ended_at: null, retry_at: null, outputs: { out }, error: null };
}

const ex = {
  id: "ex1",
  outputs: {},
  steps: [
    {
      id: "deploy",
      status: "succeeded",
      outputs: { items: [{ out: "a" }, { out: "b" }], total: 2 },
      fan_out: { total: 2, counts: { succeeded: 2 }, max_parallel: null },
      items: [item(0, "from-zero"), item(1, "from-one")],
      jobs: [],
    },
  ],
} as unknown as ExecutionView;

describe("OutputsTab", () => {
  it("shows every item of the selected step when no item is chosen", () => {
    render(<OutputsTab ex={ex} selected="deploy" />);
    expect(screen.getByRole("heading", { name: "deploy" })).toBeInTheDocument();
    expect(screen.getByText(/from-zero/)).toBeInTheDocument();
    expect(screen.getByText(/from-one/)).toBeInTheDocument();
  });
  it("shows only the chosen item, as the header above the tabs says", () => {
    render(<OutputsTab ex={ex} selected="deploy" selectedItem={1} />);
    expect(screen.getByRole("heading", { name: "deploy item #1" })).toBeInTheDocument();
    expect(screen.getByText(/from-one/)).toBeInTheDocument();
    expect(screen.queryByText(/from-zero/)).not.toBeInTheDocument();
    expect(screen.queryByText(/"total"/)).not.toBeInTheDocument();
  });
});
