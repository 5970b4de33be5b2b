// The workflow graph of an execution: React Flow with a layered left-to-right layout (dagre),
// each node showing its step's status icon, colour, name and duration; edges labelled by the
// outcome they wait for. Loaded lazily, so the other screens do not carry it.
import dagre from "@dagrejs/dagre";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  MiniMap,
  Position,
  ReactFlow,
  useReactFlow,
  type Edge,
  type FitViewOptions,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { memo, useEffect, useMemo, useRef, useState, type RefObject } from "react";
import type { StepSpec } from "../api/types";
import { formatDuration } from "../components/format";
import { StatusIcon, statusStyle } from "../components/status";
import { FanOutBar } from "./FanOutItems";
import { fanOutWords, type FanOut } from "./fanOut";

export type DagStep = {
  id: string;
  name: string;
  type: string;
  status: string;
  durationMs: number | null;
  /** Why a "queued" step waits for an agent (its pending_reason), shown in the node's tooltip. */
  reason?: string | null;
  /** A step with for_each or matrix: its node shows the items' progress. */
  fanOut?: FanOut | null;
  /** How many of its running items wait for an agent. */
  queuedItems?: number;
};

type StepNodeData = DagStep & { selected: boolean };
type StepNode = Node<StepNodeData, "step">;

const WIDTH = 190;
const HEIGHT = 52;
/** A fanned-out step's node has a third line: its items' progress. */
const FAN_OUT_HEIGHT = 74;

function nodeHeight(step: DagStep | undefined): number {
  return step?.fanOut ? FAN_OUT_HEIGHT : HEIGHT;
}

const StepNodeView = memo(function StepNodeView({ data }: NodeProps<StepNode>) {
  const style = statusStyle(data.status);
  const fan = data.fanOut ? fanOutWords(data.fanOut, data.queuedItems ?? 0) : null;
  return (
    <div
      className={`dag-node tone-${style.tone}${data.status === "running" ? " is-running" : ""}${data.selected ? " is-selected" : ""}${fan ? " is-fanned" : ""}`}
      title={`${data.name}: ${style.label}${data.reason ? ` (${data.reason})` : ""}${fan ? `; items ${fan.line}${fan.limit ? `, ${fan.limit}` : ""}` : ""}`}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="dag-node-row">
        <StatusIcon status={data.status} />
        <span className="dag-node-name">{data.name}</span>
      </div>
      <div className="dag-node-meta">
        <span>{style.label}</span>
        <span>{data.durationMs !== null ? formatDuration(data.durationMs) : data.type}</span>
      </div>
      {fan && data.fanOut && (
        <div className="dag-node-items" data-node-items={data.id}>
          <FanOutBar fan={data.fanOut} />
          <span className="dag-node-items-words">{fan.line}</span>
        </div>
      )}
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
});

const nodeTypes = { step: StepNodeView };

/** The overview map only pays off on a graph too large to read at a glance, and it must never sit
 *  over the nodes of a narrow pane (it is 200 × 150 px). */
export const MINIMAP_MIN_STEPS = 31;
export const MINIMAP_MIN_PANE_WIDTH = 700;

export function showMiniMap(stepCount: number, paneWidth: number): boolean {
  return stepCount >= MINIMAP_MIN_STEPS && paneWidth >= MINIMAP_MIN_PANE_WIDTH;
}

const MINIMAP_WIDTH = 200;
const MINIMAP_HEIGHT = 150;
const MINIMAP_MARGIN = 15;

/** How much room "fit to view" leaves around the graph. With the overview map shown, a gutter as
 *  wide as the map on the right, so the fitted graph ends left of it and the map never covers the
 *  bottom-right nodes (a wide pane otherwise fits the graph right under it). */
export function fitPadding(miniMap: boolean): NonNullable<FitViewOptions["padding"]> {
  if (!miniMap) return 0.15;
  const edge = "24px";
  return { top: edge, bottom: edge, left: edge, right: `${MINIMAP_WIDTH + 2 * MINIMAP_MARGIN}px` };
}

/** A step's colour in the overview map: its status tone, solid (the CSS variable of the tone). */
export function miniMapColor(status: string): string {
  const tone = statusStyle(status).tone;
  const base = tone === "graydashed" ? "gray" : tone === "redoutline" ? "red" : tone;
  return `var(--${base})`;
}

function miniMapNodeColor(node: Node): string {
  return miniMapColor((node.data as StepNodeData).status);
}

/** The pane's width in CSS px, kept current as the window is resized. */
function usePaneWidth(pane: RefObject<HTMLDivElement | null>): number {
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = pane.current;
    if (!el) return;
    setWidth(el.clientWidth);
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, [pane]);
  return width;
}

/** Splits `needs` entries such as `plan`, `approve.rejected`, `is-long.true`. */
export function parseNeed(need: string, known: Set<string>): { from: string; outcome: string | null } {
  if (known.has(need)) return { from: need, outcome: null };
  const dot = need.lastIndexOf(".");
  if (dot > 0 && known.has(need.slice(0, dot))) return { from: need.slice(0, dot), outcome: need.slice(dot + 1) };
  return { from: need, outcome: null };
}

// Above this many steps dagre's crossing minimisation takes too long for a page: a plain
// layered layout (rank = longest path from a root, parents' mean order within a rank) instead.
const DAGRE_LIMIT = 300;
const RANK_GAP = 50;
const NODE_GAP = 24;

/** Node centres by longest-path layering, in linear time. Specs come in definition order. */
function layeredPositions(specs: StepSpec[], parents: Map<string, string[]>, height: (id: string) => number): Map<string, { x: number; y: number }> {
  const rank = new Map<string, number>();
  const visit = (id: string, depth: number): number => {
    const known = rank.get(id);
    if (known !== undefined) return known;
    if (depth > specs.length) return 0; // a cycle, which validation forbids: do not loop
    let r = 0;
    for (const p of parents.get(id) ?? []) r = Math.max(r, visit(p, depth + 1) + 1);
    rank.set(id, r);
    return r;
  };
  for (const s of specs) visit(s.id, 0);
  const byRank: string[][] = [];
  for (const s of specs) (byRank[rank.get(s.id)!] ??= []).push(s.id);
  const order = new Map<string, number>();
  const pos = new Map<string, { x: number; y: number }>();
  byRank.forEach((ids, r) => {
    const key = (id: string) => {
      const ps = parents.get(id) ?? [];
      return ps.length ? ps.reduce((sum, p) => sum + (order.get(p) ?? 0), 0) / ps.length : 0;
    };
    const sorted = r === 0 ? ids : [...ids].sort((a, b) => key(a) - key(b));
    let y = 0;
    sorted.forEach((id, i) => {
      order.set(id, i);
      const h = height(id);
      pos.set(id, { x: r * (WIDTH + RANK_GAP) + WIDTH / 2, y: y + h / 2 });
      y += h + NODE_GAP;
    });
  });
  return pos;
}

export function layout(specs: StepSpec[], steps: Map<string, DagStep>, selected: string | null): { nodes: StepNode[]; edges: Edge[] } {
  const known = new Set(specs.map((s) => s.id));
  const parents = new Map<string, string[]>();
  const edges: Edge[] = [];
  for (const s of specs) {
    for (const need of s.needs ?? []) {
      const { from, outcome } = parseNeed(need, known);
      if (!known.has(from)) continue;
      (parents.get(s.id) ?? parents.set(s.id, []).get(s.id)!).push(from);
      const failing = outcome === "failed" || outcome === "rejected" || outcome === "false";
      edges.push({
        id: `${from}->${s.id}:${outcome ?? ""}`,
        source: from,
        target: s.id,
        label: outcome ?? undefined,
        className: failing ? "edge-failing" : undefined,
        markerEnd: { type: MarkerType.ArrowClosed },
        animated: steps.get(s.id)?.status === "running",
      });
    }
  }
  let place: (id: string) => { x: number; y: number } | undefined;
  if (specs.length > DAGRE_LIMIT) {
    const positions = layeredPositions(specs, parents, (id) => nodeHeight(steps.get(id)));
    place = (id) => positions.get(id);
  } else {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: NODE_GAP, ranksep: RANK_GAP, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const s of specs) g.setNode(s.id, { width: WIDTH, height: nodeHeight(steps.get(s.id)) });
    for (const [child, ps] of parents) for (const p of ps) g.setEdge(p, child);
    dagre.layout(g);
    place = (id) => g.node(id);
  }
  const nodes: StepNode[] = specs.map((s) => {
    const pos = place(s.id);
    const data = steps.get(s.id) ?? { id: s.id, name: s.name || s.id, type: s.type, status: "pending", durationMs: null };
    const height = nodeHeight(data);
    return {
      id: s.id,
      type: "step",
      position: { x: (pos?.x ?? 0) - WIDTH / 2, y: (pos?.y ?? 0) - height / 2 },
      // Known sizes: the overview map draws the nodes before React Flow has measured them.
      width: WIDTH,
      height,
      data: { ...data, selected: s.id === selected },
      draggable: false,
      connectable: false,
      ariaLabel: `Step ${data.name}, ${statusStyle(data.status).label}`,
    };
  });
  return { nodes, edges };
}

/** Fits the graph to the pane again when the pane's width changes (a narrowed window), and when
 *  the graph's shape does: `shape` changes when nodes or edges come or go (the definition's
 *  `needs` arrive after the execution, turning one column of steps into ranks) or a node grows
 *  (a step fans out). */
function FitOnResize({ pane, shape, miniMap }: { pane: RefObject<HTMLDivElement | null>; shape: string; miniMap: boolean }) {
  const flow = useReactFlow();
  const padding = fitPadding(miniMap);
  useEffect(() => {
    const el = pane.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    let width = el.clientWidth;
    const observer = new ResizeObserver(() => {
      if (Math.abs(el.clientWidth - width) < 40) return;
      width = el.clientWidth;
      void flow.fitView({ padding, maxZoom: 1.2 });
    });
    observer.observe(el);
    return () => observer.disconnect();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [flow, pane, miniMap]);
  useEffect(() => {
    void flow.fitView({ padding, maxZoom: 1.2 });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [flow, shape, miniMap]);
  return null;
}

export default function Dag({
  specs,
  steps,
  selected,
  onSelect,
}: {
  specs: StepSpec[];
  steps: Map<string, DagStep>;
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const { nodes, edges } = useMemo(() => layout(specs, steps, selected), [specs, steps, selected]);
  const pane = useRef<HTMLDivElement>(null);
  const paneWidth = usePaneWidth(pane);
  const miniMap = showMiniMap(specs.length, paneWidth);
  return (
    <div className="dag" data-testid="dag" ref={pane}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodeClick={(_, node) => onSelect(node.id)}
        fitView
        fitViewOptions={{ padding: fitPadding(miniMap), maxZoom: 1.2 }}
        minZoom={0.05}
        nodesDraggable={false}
        nodesConnectable={false}
        onlyRenderVisibleElements={specs.length > 200}
        proOptions={{ hideAttribution: true }}
      >
        <FitOnResize pane={pane} shape={`${nodes.length}:${edges.length}:${nodes.filter((n) => n.data.fanOut).length}`} miniMap={miniMap} />
        <Background gap={16} />
        <Controls showInteractive={false} />
        {miniMap && (
          <MiniMap
            style={{ width: MINIMAP_WIDTH, height: MINIMAP_HEIGHT, margin: MINIMAP_MARGIN }}
            pannable
            zoomable
            ariaLabel="Overview of the graph"
            nodeColor={miniMapNodeColor}
            nodeStrokeColor={miniMapNodeColor}
            nodeStrokeWidth={2}
            nodeBorderRadius={8}
          />
        )}
      </ReactFlow>
    </div>
  );
}
