// A workflow definition's steps as a graph (React Flow, laid out left to right by dagre): the
// editor's live preview, the visual builder's canvas (drag to connect, select, delete, move),
// and the version diff (added, removed and changed steps marked).
import dagre from "@dagrejs/dagre";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  useReactFlow,
  type Connection,
  type Edge,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { memo, useEffect, useMemo, useState } from "react";
import type { Graph, GraphEdge } from "./model";

export type Mark = "added" | "removed" | "changed";

const WIDTH = 180;
const HEIGHT = 56;

/** A glyph per step type (with its word beside it, never alone). */
export const TYPE_ICONS: Record<string, string> = {
  script: "›_",
  http: "⇄",
  terraform: "▦",
  ansible: "⚙",
  ssh: "⌁",
  approval: "☑",
  condition: "◇",
  notify: "✉",
  workflow: "↻",
};

const MARK_WORDS: Record<Mark, string> = { added: "added", removed: "removed", changed: "changed" };

type StepData = { id: string; type: string; name: string | null; mark: Mark | null; selected: boolean; editable: boolean };
type StepNode = Node<StepData, "step">;

const StepNodeView = memo(function StepNodeView({ data }: NodeProps<StepNode>) {
  return (
    <div
      className={`flow-node${data.mark ? ` mark-${data.mark}` : ""}${data.selected ? " is-selected" : ""}`}
      title={`${data.id} (${data.type})${data.mark ? `, ${MARK_WORDS[data.mark]}` : ""}`}
      data-step={data.id}
    >
      <Handle type="target" position={Position.Left} isConnectable={data.editable} />
      <div className="flow-node-row">
        <span className="flow-node-icon" aria-hidden="true">
          {TYPE_ICONS[data.type] ?? "•"}
        </span>
        <span className="flow-node-name">{data.name || data.id}</span>
      </div>
      <div className="flow-node-meta">
        <span>{data.type || "no type"}</span>
        {data.mark ? <span className="flow-node-mark">{MARK_WORDS[data.mark]}</span> : data.name ? <span>{data.id}</span> : null}
      </div>
      <Handle type="source" position={Position.Right} isConnectable={data.editable} />
    </div>
  );
});

const nodeTypes = { step: StepNodeView };

export function edgeId(e: GraphEdge): string {
  return `${e.source}->${e.target}:${e.outcome}`;
}

/** Node positions (top-left corners) by dagre, left to right. */
export function autoLayout(graph: Graph): Map<string, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 28, ranksep: 60, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of graph.steps) g.setNode(s.id, { width: WIDTH, height: HEIGHT });
  for (const e of graph.edges) g.setEdge(e.source, e.target);
  dagre.layout(g);
  const out = new Map<string, { x: number; y: number }>();
  for (const s of graph.steps) {
    const n = g.node(s.id);
    out.set(s.id, { x: (n?.x ?? 0) - WIDTH / 2, y: (n?.y ?? 0) - HEIGHT / 2 });
  }
  return out;
}

/** Fits the graph to the pane whenever its shape (steps or needs) changes, since the layout
 *  then moves nodes, and when asked to lay out again. */
function Fit({ shape, layoutKey }: { shape: string; layoutKey: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    const t = window.setTimeout(() => void flow.fitView({ padding: 0.2, maxZoom: 1.1 }), 30);
    return () => window.clearTimeout(t);
  }, [flow, shape, layoutKey]);
  return null;
}

export default function FlowGraph({
  graph,
  editable = false,
  marks,
  edgeMarks,
  selected = null,
  onSelect,
  onConnect,
  onDeleteSteps,
  onDeleteEdges,
  layoutKey = 0,
  label,
  testId = "flow-graph",
}: {
  graph: Graph;
  editable?: boolean;
  marks?: Map<string, Mark>;
  edgeMarks?: Map<string, Mark>;
  selected?: string | null;
  onSelect?: (id: string | null) => void;
  onConnect?: (source: string, target: string) => void;
  onDeleteSteps?: (ids: string[]) => void;
  onDeleteEdges?: (edges: GraphEdge[]) => void;
  /** Change it to lay the graph out afresh (forgetting where people moved nodes). */
  layoutKey?: number;
  label: string;
  testId?: string;
}) {
  const [moved, setMoved] = useState<Map<string, { x: number; y: number }>>(new Map());
  useEffect(() => setMoved(new Map()), [layoutKey]);
  const placed = useMemo(() => autoLayout(graph), [graph]);
  const shape = useMemo(() => [...graph.steps.map((s) => s.id), ...graph.edges.map(edgeId)].join(" "), [graph]);
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());

  const nodes: StepNode[] = useMemo(
    () =>
      graph.steps.map((s) => ({
        id: s.id,
        type: "step",
        position: moved.get(s.id) ?? placed.get(s.id) ?? { x: 0, y: 0 },
        width: WIDTH,
        height: HEIGHT,
        data: { id: s.id, type: s.type, name: s.name, mark: marks?.get(s.id) ?? null, selected: s.id === selected, editable },
        selected: s.id === selected,
        draggable: editable,
        connectable: editable,
        deletable: editable,
        ariaLabel: `Step ${s.name || s.id}, ${s.type}${marks?.get(s.id) ? `, ${marks.get(s.id)}` : ""}`,
      })),
    [graph, moved, placed, marks, selected, editable],
  );
  const edges: Edge[] = useMemo(
    () =>
      graph.edges.map((e) => {
        const id = edgeId(e);
        const failing = e.outcome === "failed" || e.outcome === "rejected" || e.outcome === "false";
        const mark = edgeMarks?.get(id);
        return {
          id,
          source: e.source,
          target: e.target,
          label: e.outcome === "success" ? undefined : e.outcome,
          className: [failing ? "edge-failing" : "", mark ? `edge-${mark}` : ""].join(" ").trim() || undefined,
          markerEnd: { type: MarkerType.ArrowClosed },
          selected: selectedEdges.has(id),
          deletable: editable,
          ariaLabel: `Need: ${e.target} waits for ${e.source} ${e.outcome}`,
        };
      }),
    [graph, edgeMarks, selectedEdges, editable],
  );

  return (
    <div className={`flow${editable ? " flow-edit" : ""}`} data-testid={testId} aria-label={label} role="group">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.2, maxZoom: 1.1 }}
        minZoom={0.1}
        nodesDraggable={editable}
        nodesConnectable={editable}
        elementsSelectable
        deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
        onNodeClick={(_, n) => onSelect?.(n.id)}
        onPaneClick={() => {
          onSelect?.(null);
          setSelectedEdges(new Set());
        }}
        onEdgeClick={(_, e) => setSelectedEdges(new Set([e.id]))}
        onNodesChange={(changes) => {
          for (const c of changes) {
            if (c.type === "position" && c.position) {
              const pos = c.position;
              setMoved((m) => new Map(m).set(c.id, pos));
            }
          }
        }}
        onConnect={(c: Connection) => {
          if (c.source && c.target) onConnect?.(c.source, c.target);
        }}
        onDelete={({ nodes: ns, edges: es }) => {
          if (ns.length) onDeleteSteps?.(ns.map((n) => n.id));
          const gone = graph.edges.filter((e) => es.some((x) => x.id === edgeId(e)) && !ns.some((n) => n.id === e.source || n.id === e.target));
          if (gone.length) onDeleteEdges?.(gone);
          setSelectedEdges(new Set());
        }}
        proOptions={{ hideAttribution: true }}
      >
        <Fit shape={shape} layoutKey={layoutKey} />
        <Background gap={16} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
