import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import type { Definition, WorkflowDetail, WorkflowSummary } from "../api/types";

export type WorkflowRow = WorkflowSummary;

export function useWorkflow(id: string | undefined) {
  return useQuery({
    queryKey: ["workflows", "detail", id],
    enabled: !!id,
    queryFn: () => call(api.GET("/api/v1/workflows/{workflow_id}", { params: { path: { workflow_id: id! } } })),
  });
}

/** The definition a run of `version` follows: that version's, or the draft for a test run. */
export function useDefinition(workflowId: string | undefined, version: number | null | undefined) {
  return useQuery({
    queryKey: ["workflows", "definition", workflowId, version ?? "draft"],
    enabled: !!workflowId,
    staleTime: version ? Infinity : 30_000,
    queryFn: async (): Promise<Definition> => {
      if (version) {
        const v = await call(
          api.GET("/api/v1/workflows/{workflow_id}/versions/{number}", {
            params: { path: { workflow_id: workflowId!, number: version } },
          }),
        );
        return v.definition as unknown as Definition;
      }
      const wf: WorkflowDetail = await call(api.GET("/api/v1/workflows/{workflow_id}", { params: { path: { workflow_id: workflowId! } } }));
      return wf.draft_definition as unknown as Definition;
    },
  });
}
