import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import type { ExecutionDetail, JobOut, StepOut } from "../api/types";
import { ACTIVE_EXECUTION } from "../components/status";
import { executionKey } from "./useExecutionStream";

export type StepRow = StepOut;
export type JobRow = JobOut;
export type ExecutionView = ExecutionDetail;

export function useExecution(id: string | undefined) {
  return useQuery({
    queryKey: executionKey(id ?? ""),
    enabled: !!id,
    queryFn: async () => (await call(api.GET("/api/v1/executions/{execution_id}", { params: { path: { execution_id: id! } } }))) as ExecutionView,
    // The stream refetches on every change; this only covers a stream that cannot connect.
    refetchInterval: (q) => (q.state.data && ACTIVE_EXECUTION.has(q.state.data.status) ? 10_000 : false),
  });
}

/** Milliseconds a step took: its first job's start to its end (or now). */
export function stepTimes(step: StepOut): { start: string | null; end: string | null } {
  return { start: step.started_at ?? step.jobs[0]?.started_at ?? null, end: step.ended_at };
}
