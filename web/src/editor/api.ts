// The editor's calls: validate, save and publish send the YAML text itself (application/yaml),
// so the server keeps the author's comments and reports findings at their lines.
import { useQuery } from "@tanstack/react-query";
import { API, api, call, csrfToken, problemOf, type Schemas } from "../api/client";
import type { Finding } from "./YamlEditor";
import { SchemaDocs, type JsonSchema } from "./schemaDocs";

export type SaveResult = Schemas["SaveResult"];
export type VersionSummary = Schemas["VersionSummary"];
export type VersionDetail = Schemas["VersionDetail"];

async function sendYaml(method: "POST" | "PUT", path: string, text: string, ifMatch: string | null = null): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": "application/yaml" };
  if (ifMatch) headers["If-Match"] = `"${ifMatch}"`;
  const token = csrfToken();
  if (token) headers["X-CSRF-Token"] = token;
  try {
    return await fetch(`${API}${path}`, { method, headers, body: text, credentials: "same-origin" });
  } catch {
    throw problemOf(0, null);
  }
}

async function json(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

type ProblemItem = { loc?: string; msg?: string; line?: number | null; column?: number | null };

function findingsOf(items: unknown, severity: Finding["severity"]): Finding[] {
  if (!Array.isArray(items)) return [];
  return (items as ProblemItem[]).map((p) => ({ loc: p.loc ?? "", msg: p.msg ?? "", line: p.line ?? null, column: p.column ?? null, severity }));
}

/** The server's findings for `text` (POST /workflows/validate): its warnings when it is valid
 *  (what it names that the server lacks, markup that stays as written), its errors when not. A
 *  finding without a place (the whole document) gets line null. Throws on anything but 200 and
 *  422. */
export async function validateYaml(text: string, signal?: AbortSignal): Promise<Finding[]> {
  const headers: Record<string, string> = { "Content-Type": "application/yaml" };
  const token = csrfToken();
  if (token) headers["X-CSRF-Token"] = token;
  const response = await fetch(`${API}/workflows/validate`, { method: "POST", headers, body: text, credentials: "same-origin", signal });
  const body = await json(response);
  if (response.ok) return findingsOf((body as { warnings?: unknown } | null)?.warnings, "warning");
  if (response.status === 422) {
    const problem = body as { detail?: string; errors?: unknown };
    const found = findingsOf(problem.errors, "error");
    return found.length ? found : [{ loc: "", msg: problem.detail ?? "invalid", line: null, column: null, severity: "error" }];
  }
  throw problemOf(response.status, body);
}

/** Creates (workflowId null) or replaces the draft of a workflow, publishing it if asked. With
 *  `ifMatch` (the draft_tag loaded) the server refuses with 412 if the draft changed since. */
export async function saveYaml(workflowId: string | null, text: string, publish: boolean, ifMatch: string | null = null): Promise<SaveResult> {
  const query = publish ? "?publish=true" : "";
  const response = workflowId
    ? await sendYaml("PUT", `/workflows/${encodeURIComponent(workflowId)}${query}`, text, ifMatch)
    : await sendYaml("POST", `/workflows${query}`, text);
  const body = await json(response);
  if (!response.ok) throw problemOf(response.status, body);
  return body as SaveResult;
}

export function warningsOf(result: SaveResult): Finding[] {
  return findingsOf(result.warnings, "warning");
}

/** The workflow JSON Schema the server serves, as completion and hover docs. */
export function useSchemaDocs() {
  return useQuery({
    queryKey: ["schema", "workflow"],
    staleTime: Infinity,
    queryFn: async () => new SchemaDocs((await call(api.GET("/api/v1/schema/workflow"))) as unknown as JsonSchema),
  });
}

export function useVersions(workflowId: string | null) {
  return useQuery({
    queryKey: ["workflows", "versions", workflowId],
    enabled: !!workflowId,
    queryFn: () => call(api.GET("/api/v1/workflows/{workflow_id}/versions", { params: { path: { workflow_id: workflowId! } } })),
  });
}

export function useVersion(workflowId: string | null, number: number | null) {
  return useQuery({
    queryKey: ["workflows", "version", workflowId, number],
    enabled: !!workflowId && !!number,
    staleTime: Infinity,
    queryFn: () => call(api.GET("/api/v1/workflows/{workflow_id}/versions/{number}", { params: { path: { workflow_id: workflowId!, number: number! } } })),
  });
}

export function restoreVersion(workflowId: string, number: number) {
  return call(api.POST("/api/v1/workflows/{workflow_id}/versions/{number}/restore", { params: { path: { workflow_id: workflowId, number } } }));
}
