// The per-host results of an ssh job: one row per host with its status, exit code and
// duration, and the tail of its output beneath (the job's `hosts` output, issue 18).
import { formatDuration } from "../components/format";
import { StatusBadge } from "../components/status";

export interface HostOutcome {
  status: string;
  exit_code: number | null;
  stdout_tail: string;
  duration_ms: number | null;
  error: string | null;
}

function isOutcome(value: unknown): value is HostOutcome {
  return typeof value === "object" && value !== null && typeof (value as { status?: unknown }).status === "string";
}

/** The hosts of an ssh job's outputs in the order the step lists them, or null for any
 * other job (or an ssh job that ended before any host ran). */
export function sshHosts(action: string | undefined, outputs: Record<string, unknown>): [string, HostOutcome][] | null {
  if (!action?.startsWith("ssh.")) return null;
  const hosts = outputs.hosts;
  if (typeof hosts !== "object" || hosts === null) return null;
  const rows = Object.entries(hosts as Record<string, unknown>).filter((e): e is [string, HostOutcome] => isOutcome(e[1]));
  return rows.length > 0 ? rows : null;
}

export function SshHostsTable({ hosts, label }: { hosts: [string, HostOutcome][]; label: string }) {
  const failed = hosts.filter(([, h]) => h.status !== "completed").length;
  return (
    <div className="ssh-hosts">
      <table className="table compact" aria-label={label}>
        <caption className="small muted">
          {hosts.length} host{hosts.length === 1 ? "" : "s"}
          {failed > 0 ? `, ${failed} failed` : ", all succeeded"}
        </caption>
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">Status</th>
            <th scope="col">
              <abbr title="Exit code">Exit</abbr>
            </th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        {hosts.map(([name, h]) => (
          <tbody key={name}>
            <tr>
              <th scope="row" className="host-name">
                <code>{name}</code>
              </th>
              <td>
                <StatusBadge status={h.status} />
              </td>
              <td>{h.exit_code ?? "—"}</td>
              <td className="nowrap">{formatDuration(h.duration_ms)}</td>
            </tr>
            {(h.stdout_tail || h.error) && (
              <tr className="host-tail">
                <td colSpan={4}>
                  {h.error && <p className="host-error small">{h.error}</p>}
                  {h.stdout_tail && <pre aria-label={`Output tail of ${name}`}>{h.stdout_tail}</pre>}
                </td>
              </tr>
            )}
          </tbody>
        ))}
      </table>
    </div>
  );
}
