import type { Schemas } from "./client";

export type WorkflowSummary = Schemas["WorkflowSummary"];
export type WorkflowDetail = Schemas["WorkflowDetail"];
export type ExecutionSummary = Schemas["ExecutionSummary"];
export type ExecutionDetail = Schemas["ExecutionDetail"];
export type StepOut = Schemas["StepOut"];
export type JobOut = Schemas["JobOut"];
export type Approval = Schemas["ApprovalOut"];
export type ApprovalContext = Schemas["ApprovalContext"];
export type LogLine = Schemas["LogLineOut"];
export type Me = Schemas["Me"];

/** A declared param as the workflow definition spells it. */
export interface ParamSpec {
  type?: "string" | "integer" | "number" | "boolean" | "choice";
  description?: string | null;
  default?: string | number | boolean | null;
  required?: boolean;
  choices?: (string | number | boolean)[] | null;
  minimum?: number | null;
  maximum?: number | null;
  pattern?: string | null;
  secret?: boolean;
}

/** A step as the workflow definition spells it (only what the UI reads). */
export interface StepSpec {
  id: string;
  name?: string | null;
  type: string;
  needs?: string[];
  join?: string;
  allow_skip?: boolean;
  action?: string;
}

export interface Definition {
  id: string;
  name?: string;
  params?: Record<string, ParamSpec>;
  steps?: StepSpec[];
  triggers?: { type: string }[];
}
