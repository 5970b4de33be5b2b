import { render, screen, within } from "@testing-library/react";
import { SshHostsTable, sshHosts } from "./SshHosts";

const outputs = {
  hosts: {
    "web-1": { status: "completed", exit_code: 0, stdout_tail: "active", duration_ms: 812, error: null },
    "web-2": { status: "failed", exit_code: 3, stdout_tail: "", duration_ms: 1640, error: "exit code 3" },
  },
  failed_hosts: ["web-2"],
};

describe("SshHosts", () => {
  it("reads the hosts of ssh jobs only", () => {
    expect(sshHosts("ssh.command", outputs)?.map(([name]) => name)).toEqual(["web-1", "web-2"]);
    expect(sshHosts("ansible.playbook", outputs)).toBeNull();
    expect(sshHosts("ssh.command", {})).toBeNull();
  });

  it("shows each host's status, exit code, duration and output tail", () => {
    render(<SshHostsTable hosts={sshHosts("ssh.script", outputs)!} label="Hosts of attempt 1" />);
    const table = screen.getByRole("table", { name: "Hosts of attempt 1" });
    expect(within(table).getByText("2 hosts, 1 failed")).toBeInTheDocument();
    const first = within(table).getByRole("rowheader", { name: "web-1" }).closest("tr")!;
    expect(within(first).getByText("812 ms")).toBeInTheDocument();
    expect(within(first).getByText("0")).toBeInTheDocument();
    expect(screen.getByLabelText("Output tail of web-1")).toHaveTextContent("active");
    const second = within(table).getByRole("rowheader", { name: "web-2" }).closest("tr")!;
    expect(within(second).getByText("3")).toBeInTheDocument();
    expect(within(table).getByText("exit code 3")).toBeInTheDocument();
  });
});
