import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import type { ParamSpec } from "../api/types";
import { checkParams, initialValues, ParamsForm, serverFieldErrors, type FieldErrors } from "./ParamsForm";

const PARAMS: Record<string, ParamSpec> = {
  environment: { type: "choice", choices: ["staging", "production"], default: "staging", description: "Where to deploy." },
  replicas: { type: "integer", default: 2, minimum: 1, maximum: 12 },
  ratio: { type: "number" },
  ticket: { type: "string", required: true, pattern: "[A-Z]+-[0-9]+", description: "Change ticket." },
  dry_run: { type: "boolean", default: true },
};

function Harness({ onSubmit }: { onSubmit: (body: Record<string, unknown>) => void }) {
  const [values, setValues] = useState(() => initialValues(PARAMS));
  const [errors, setErrors] = useState<FieldErrors>({});
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        const checked = checkParams(PARAMS, values);
        setErrors(checked.errors);
        if (Object.keys(checked.errors).length === 0) onSubmit(checked.body);
      }}
    >
      <ParamsForm params={PARAMS} values={values} errors={errors} onChange={(n, v) => setValues((old) => ({ ...old, [n]: v }))} />
      <button type="submit">Start</button>
    </form>
  );
}

describe("ParamsForm", () => {
  it("renders one labelled control per param with defaults, choices and help", () => {
    render(<Harness onSubmit={() => undefined} />);
    expect(screen.getByLabelText(/environment/)).toHaveValue("staging");
    expect(screen.getAllByRole("option").map((o) => o.textContent)).toEqual(["staging", "production"]);
    expect(screen.getByLabelText(/replicas/)).toHaveValue("2");
    expect(screen.getByLabelText(/dry_run/)).toBeChecked();
    expect(screen.getByLabelText(/ticket/)).toHaveAccessibleDescription("Change ticket.");
    expect(screen.getByText("(required)")).toBeInTheDocument();
  });

  it("shows errors at the field and sends nothing until they are fixed", async () => {
    const user = userEvent.setup();
    const sent: Record<string, unknown>[] = [];
    render(<Harness onSubmit={(b) => sent.push(b)} />);
    await user.clear(screen.getByLabelText(/replicas/));
    await user.type(screen.getByLabelText(/replicas/), "40");
    await user.type(screen.getByLabelText(/ratio/), "abc");
    await user.click(screen.getByRole("button", { name: "Start" }));
    expect(sent).toHaveLength(0);
    expect(screen.getByLabelText(/replicas/)).toHaveAccessibleDescription(/at most 12/);
    expect(screen.getByLabelText(/ratio/)).toHaveAccessibleDescription(/Enter a number/);
    expect(screen.getByLabelText(/ticket/)).toHaveAccessibleDescription(/Required/);

    await user.clear(screen.getByLabelText(/replicas/));
    await user.type(screen.getByLabelText(/replicas/), "3");
    await user.clear(screen.getByLabelText(/ratio/));
    await user.type(screen.getByLabelText(/ratio/), "0.5");
    await user.type(screen.getByLabelText(/ticket/), "bad");
    await user.click(screen.getByRole("button", { name: "Start" }));
    expect(screen.getByLabelText(/ticket/)).toHaveAccessibleDescription(/expected form/);

    await user.clear(screen.getByLabelText(/ticket/));
    await user.type(screen.getByLabelText(/ticket/), "OPS-12");
    await user.selectOptions(screen.getByLabelText(/environment/), "production");
    await user.click(screen.getByLabelText(/dry_run/));
    await user.click(screen.getByRole("button", { name: "Start" }));
    expect(sent).toEqual([{ environment: "production", replicas: 3, ratio: 0.5, ticket: "OPS-12", dry_run: false }]);
  });

  it("places the server's errors on their fields", () => {
    const mapped = serverFieldErrors([
      { loc: "params.ticket", msg: "'x' does not match" },
      { loc: "version", msg: "no such version" },
    ]);
    expect(mapped.fields).toEqual({ ticket: "'x' does not match" });
    expect(mapped.other).toEqual(["version: no such version"]);
  });
});
