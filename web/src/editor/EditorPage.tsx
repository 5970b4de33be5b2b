// The workflow editor (/workflows/:id/edit, and /workflows/new): the YAML with the server's
// findings at their lines as you type and a live graph beside it, the visual builder over the
// same text, and the versions. Save draft, Publish (says the new version), Run test (a run of
// the draft in the run dialog). Leaving with unsaved changes asks first.
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { ApiError } from "../api/client";
import { useCan } from "../auth/session";
import { ConfirmDialog } from "../components/Dialog";
import { ErrorMessage } from "../components/ErrorMessage";
import { StatusBadge } from "../components/status";
import { useToast } from "../components/Toast";
import { useWorkflow } from "../workflows/api";
import { RunDialog } from "../workflows/RunDialog";
import { restoreVersion, saveYaml, useSchemaDocs, validateYaml, warningsOf } from "./api";
import "./editor.css";
import FlowGraph from "./FlowGraph";
import { graphOf, parse } from "./model";
import type { Finding } from "./YamlEditor";

const YamlEditor = lazy(() => import("./YamlEditor"));
const Builder = lazy(() => import("./Builder"));
const Versions = lazy(() => import("./Versions"));

export const NEW_WORKFLOW = `# A new workflow. Give it an id (lowercase letters, digits and dashes), then add steps
# here or in the visual builder.
id: new-workflow
name: New workflow
steps: []
`;

const VALIDATE_DELAY_MS = 400;

/** The server's findings for the text, fetched once the typing pauses; `for` is the text they
 *  belong to (findings of an older text are never drawn on a newer one). */
function useFindings(text: string | null) {
  const [state, setState] = useState<{ for: string | null; findings: Finding[]; error: unknown }>({ for: null, findings: [], error: null });
  useEffect(() => {
    if (text === null) return;
    const abort = new AbortController();
    const timer = window.setTimeout(() => {
      validateYaml(text, abort.signal).then(
        (findings) => setState({ for: text, findings, error: null }),
        (error: unknown) => {
          if (!abort.signal.aborted) setState((s) => ({ ...s, error }));
        },
      );
    }, VALIDATE_DELAY_MS);
    return () => {
      window.clearTimeout(timer);
      abort.abort();
    };
  }, [text]);
  return state;
}

/** Asks before the page is left with unsaved changes: the browser's own prompt on reload or
 *  close, and our dialog for a link inside the app. */
function useUnsavedGuard(dirty: boolean, onDiscard: () => void) {
  const [leaving, setLeaving] = useState<string | null>(null);
  const navigate = useNavigate();
  const bypass = useRef(false);
  useEffect(() => {
    if (!dirty) return;
    const onUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = "";
    };
    const onClick = (e: MouseEvent) => {
      if (bypass.current || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = (e.target as Element | null)?.closest?.("a[href]") as HTMLAnchorElement | null;
      if (!a || a.target === "_blank" || a.origin !== window.location.origin) return;
      if (a.pathname === window.location.pathname) return;
      e.preventDefault();
      e.stopPropagation();
      setLeaving(a.pathname + a.search);
    };
    window.addEventListener("beforeunload", onUnload);
    document.addEventListener("click", onClick, true);
    return () => {
      window.removeEventListener("beforeunload", onUnload);
      document.removeEventListener("click", onClick, true);
    };
  }, [dirty]);
  const dialog = leaving ? (
    <ConfirmDialog
      title="Leave without saving?"
      confirmLabel="Leave and discard changes"
      onClose={() => setLeaving(null)}
      onConfirm={() => {
        bypass.current = true;
        onDiscard();
        const to = leaving;
        setLeaving(null);
        navigate(to);
      }}
    >
      <p>The workflow has changes that are not saved. Save the draft first to keep them.</p>
    </ConfirmDialog>
  ) : null;
  return dialog;
}

type Tab = "yaml" | "builder" | "versions";

export default function EditorPage() {
  const { id } = useParams();
  const isNew = !id;
  const workflow = useWorkflow(id);
  const schema = useSchemaDocs();
  const toast = useToast();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const canEdit = useCan("workflows:update");
  const canRun = useCan("workflows:run");
  const [search, setSearch] = useSearchParams();
  const tab = (["yaml", "builder", "versions"].includes(search.get("tab") ?? "") ? search.get("tab") : "yaml") as Tab;

  const [text, setText] = useState<string | null>(isNew ? NEW_WORKFLOW : null);
  const [saved, setSaved] = useState<string | null>(isNew ? NEW_WORKFLOW : null);
  const [warnings, setWarnings] = useState<Finding[]>([]);
  const [busy, setBusy] = useState<null | "save" | "publish" | "test">(null);
  const [published, setPublished] = useState<number | null>(null);
  const [testing, setTesting] = useState(false);
  // The draft_tag of the draft this text started from: saves send it as If-Match, so another
  // person's save in between is never overwritten unseen.
  const [tag, setTag] = useState<string | null>(null);
  const [conflict, setConflict] = useState<{ publish: boolean; detail: string } | null>(null);

  useEffect(() => {
    if (workflow.data && text === null) {
      setText(workflow.data.draft_yaml);
      setSaved(workflow.data.draft_yaml);
      setTag(workflow.data.draft_tag);
    }
  }, [workflow.data, text]);

  const dirty = text !== null && text !== saved;
  // The browser's back button cannot be held: unsaved text is kept for this tab's session, and
  // coming back offers it again.
  const stashKey = `opsflow.editor.unsaved.${id ?? "new"}`;
  const leaveDialog = useUnsavedGuard(dirty, () => window.sessionStorage.removeItem(stashKey));
  const [stashed, setStashed] = useState<string | null>(null);
  useEffect(() => {
    if (saved === null) return;
    const kept = window.sessionStorage.getItem(stashKey);
    if (kept !== null && kept !== saved) setStashed(kept);
    // Only when the saved text first arrives.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [saved === null, stashKey]);
  useEffect(() => {
    if (text === null || saved === null) return;
    if (dirty) window.sessionStorage.setItem(stashKey, text);
    else if (stashed === null) window.sessionStorage.removeItem(stashKey);
  }, [dirty, text, saved, stashKey, stashed]);
  const validation = useFindings(text);
  const current = validation.for === text;
  // The last save's warnings, unless the validation of the current text already has them.
  const findings = useMemo(() => {
    if (!current) return warnings;
    const known = new Set(validation.findings.map((f) => `${f.loc} ${f.msg}`));
    return [...validation.findings, ...warnings.filter((w) => !known.has(`${w.loc} ${w.msg}`))];
  }, [current, validation.findings, warnings]);
  const errors = current ? validation.findings.filter((f) => f.severity === "error").length : null;
  const graph = useMemo(() => graphOf(parse(text ?? "")), [text]);

  const onText = useCallback((t: string) => {
    setText(t);
    setWarnings([]);
  }, []);

  const save = async (publish: boolean, force = false): Promise<boolean> => {
    if (text === null) return false;
    setBusy(publish ? "publish" : "save");
    try {
      const result = await saveYaml(isNew ? null : id!, text, publish, force ? null : tag);
      setSaved(text);
      setTag(result.workflow.draft_tag);
      setConflict(null);
      setWarnings(warningsOf(result));
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
      if (publish) {
        const v = result.version;
        setPublished(v ?? null);
        toast.ok(result.created_version ? `Published version ${v}` : `Nothing changed since version ${v}: not published again`);
      } else toast.ok(isNew ? `Created ${result.workflow.id} as a draft` : "Draft saved");
      if (isNew) navigate(`/workflows/${result.workflow.id}/edit${tab !== "yaml" ? `?tab=${tab}` : ""}`, { replace: true });
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) setConflict({ publish, detail: err.detail });
      else toast.error(err, publish ? "Publish" : "Save");
      return false;
    } finally {
      setBusy(null);
    }
  };

  const runTest = async () => {
    if (dirty || isNew) {
      setBusy("test");
      const ok = await save(false);
      setBusy(null);
      if (!ok || isNew) return;
    }
    setTesting(true);
  };

  const restore = async (number: number) => {
    try {
      const wf = await restoreVersion(id!, number);
      setText(wf.draft_yaml);
      setSaved(wf.draft_yaml);
      setTag(wf.draft_tag);
      setConflict(null);
      setWarnings([]);
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
      toast.ok(`Version ${number} is the draft now`);
      setSearch({ tab: "yaml" });
    } catch (err) {
      toast.error(err, "Restore");
    }
  };

  const loadServerDraft = async () => {
    const fresh = await workflow.refetch();
    if (!fresh.data) return;
    setText(fresh.data.draft_yaml);
    setSaved(fresh.data.draft_yaml);
    setTag(fresh.data.draft_tag);
    setConflict(null);
  };

  if (!isNew && workflow.isError) return <ErrorMessage error={workflow.error} />;
  if (text === null) return <p className="muted">Loading…</p>;
  const wf = workflow.data;
  const latest = published ?? wf?.latest_version ?? null;
  const setTab = (t: Tab) => setSearch(t === "yaml" ? {} : { tab: t });
  return (
    <section aria-labelledby="editor-title" className="editor-page">
      <div className="page-head editor-head">
        <h1 id="editor-title">{isNew ? "New workflow" : `Edit ${wf?.name ?? id}`}</h1>
        {wf && <StatusBadge status={wf.status} kind="workflow" />}
        {latest !== null && (
          <span className="version-chip" data-testid="latest-version">
            Version {latest}
            {published !== null ? " published" : ""}
          </span>
        )}
        <span className={`save-state${dirty ? " is-dirty" : ""}`} role="status">
          {dirty ? "● Unsaved changes" : isNew ? "Not saved yet" : wf?.has_unpublished_changes ? "Draft saved, not published" : "Draft saved"}
        </span>
        <div className="editor-actions">
          {!isNew && (
            <Link className="button" to={`/workflows/${id}`}>
              Workflow page
            </Link>
          )}
          {canEdit && (
            <>
              <button type="button" onClick={() => void save(false)} disabled={busy !== null || (!dirty && !isNew)}>
                {busy === "save" ? "Saving…" : "Save draft"}
              </button>
              <button type="button" className="primary" onClick={() => void save(true)} disabled={busy !== null}>
                {busy === "publish" ? "Publishing…" : "Publish"}
              </button>
            </>
          )}
          {canRun && canEdit && (
            <button type="button" onClick={() => void runTest()} disabled={busy !== null} title="Save the draft and run it as a test run">
              {busy === "test" ? "Saving…" : "▶ Run test"}
            </button>
          )}
        </div>
      </div>
      {conflict && (
        <div className="banner-error conflict-banner" role="alert">
          <p>
            <strong>Not saved: someone else saved this draft since you opened it.</strong> <span className="small">{conflict.detail}</span>
          </p>
          <button type="button" className="small" onClick={() => void save(conflict.publish, true)} disabled={busy !== null}>
            {conflict.publish ? "Publish mine anyway" : "Save mine anyway"}
          </button>{" "}
          <button type="button" className="small" onClick={() => void loadServerDraft()}>
            Load their draft (drops my changes)
          </button>
        </div>
      )}
      {stashed !== null && stashed !== text && (
        <div className="banner-warning stash-banner" role="status">
          You left this editor with unsaved changes.{" "}
          <button
            type="button"
            className="small"
            onClick={() => {
              setText(stashed);
              setStashed(null);
            }}
          >
            Bring them back
          </button>{" "}
          <button
            type="button"
            className="small"
            onClick={() => {
              window.sessionStorage.removeItem(stashKey);
              setStashed(null);
            }}
          >
            Discard them
          </button>
        </div>
      )}
      <div className="tabs">
        <div className="tab-list" role="tablist" aria-label="Editor views">
        {(
          [
            ["yaml", "YAML"],
            ["builder", "Visual builder"],
            ["versions", "Versions"],
          ] as [Tab, string][]
        ).map(([t, label]) => (
          <button key={t} type="button" role="tab" id={`tab-${t}`} aria-selected={tab === t} aria-controls={`panel-${t}`} className={`tab${tab === t ? " on" : ""}`} disabled={t === "versions" && isNew} onClick={() => setTab(t)}>
            {label}
          </button>
        ))}
        </div>
        <span className="validity small" aria-live="polite">
          {errors === null ? "Checking…" : errors === 0 ? "✓ Valid" : `✕ ${errors} problem${errors === 1 ? "" : "s"}`}
        </span>
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="editor-panel">
        <Suspense fallback={<p className="muted">Loading…</p>}>
          {tab === "yaml" && (
            <div className="editor-grid">
              <div className="editor-left">
                <YamlEditor value={text} onChange={onText} findings={current ? findings : warnings} schema={schema.data ?? null} readOnly={!canEdit} label="Workflow YAML" />
                <Problems findings={findings} checking={!current} error={validation.error} />
              </div>
              <div className="editor-right">
                <h2 className="small-heading">Graph preview</h2>
                <FlowGraph graph={graph} label="Graph preview" testId="dag-preview" />
              </div>
            </div>
          )}
          {tab === "builder" && <Builder text={text} onText={onText} schema={schema.data ?? null} findings={current ? validation.findings : []} />}
          {tab === "versions" && !isNew && <Versions workflowId={id!} onRestore={restore} />}
        </Suspense>
        {tab === "builder" && findings.length > 0 && <Problems findings={findings} checking={!current} error={validation.error} />}
      </div>
      {testing && id && <RunDialog workflowId={id} test onClose={() => setTesting(false)} />}
      {leaveDialog}
    </section>
  );
}

function Problems({ findings, checking, error }: { findings: Finding[]; checking: boolean; error: unknown }) {
  if (error) return <ErrorMessage error={error} />;
  if (findings.length === 0) return checking ? null : <p className="problems-ok small">No problems: the server accepts this definition.</p>;
  return (
    <section className="problems" aria-labelledby="problems-title">
      <h2 id="problems-title" className="small-heading">
        Problems
      </h2>
      <ul data-testid="problems">
        {findings.map((f, i) => (
          <li key={i} className={`problem problem-${f.severity}`}>
            <span className="problem-where">{f.line ? `line ${f.line}` : "document"}</span> <span className="problem-sev">{f.severity}</span> {f.loc && <code>{f.loc}</code>} {f.msg}
          </li>
        ))}
      </ul>
    </section>
  );
}
