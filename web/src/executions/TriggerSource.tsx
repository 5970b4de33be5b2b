// Which trigger started a run, in words: the webhook key, schedule instant, repository@commit,
// incident fingerprint, or the upstream execution (a link, as a chain is followed by clicking).
import { Link } from "react-router-dom";
import type { ExecutionSummary } from "../api/types";
import { TriggerIcon } from "../components/status";

/** `source` cut to `max` characters with an ellipsis; the whole text goes in a tooltip. */
export function shortSource(source: string, max = 32): string {
  return source.length <= max ? source : `${source.slice(0, max - 1)}…`;
}

/** The trigger's type (icon and word) and its source; `short` for a list cell. */
export function TriggerSource({ trigger, short = false }: { trigger: ExecutionSummary["trigger"]; short?: boolean }) {
  const source = trigger.source;
  const upstream = trigger.type === "workflow" && source;
  return (
    <span className="trigger-source">
      <TriggerIcon type={trigger.type} withLabel />
      {!short && trigger.name && <span className="small"> {trigger.name}</span>}
      {source &&
        (upstream && !short ? (
          <span className="small">
            {" "}
            from <Link to={`/executions/${encodeURIComponent(source)}`}>{source}</Link>
          </span>
        ) : (
          <span className="muted small" title={source} data-testid="trigger-source">
            {" "}
            {short ? shortSource(upstream ? source.slice(0, 8) : source, 28) : source}
          </span>
        ))}
    </span>
  );
}
