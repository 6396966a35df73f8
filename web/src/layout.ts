// The service map's layout: one cell per namespace on a grid shaped like the canvas, the
// namespace's workloads on a circle inside its cell, each placed on the side facing the
// namespaces it talks to (a barycentre ordering, the classic crossing-reduction heuristic).
// Deterministic and stable between refreshes, unlike a force simulation, and every label stays
// readable however many edges there are; no graph library needed for a few hundred nodes.

export interface Placed {
  x: number;
  y: number;
}

export interface Cell {
  group: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export function layout(
  nodes: { id: string; group: string }[],
  links: { source: string; target: string }[],
  width: number,
  height: number,
): { pos: Map<string, Placed>; cells: Cell[] } {
  const members = new Map<string, string[]>();
  for (const n of nodes) members.set(n.group, [...(members.get(n.group) ?? []), n.id]);
  // World and host peers last, so cluster namespaces come first in reading order.
  const groups = [...members.keys()].sort((a, b) => Number(a.startsWith('(')) - Number(b.startsWith('(')) || a.localeCompare(b));
  const cols = Math.max(1, Math.min(groups.length, Math.round(Math.sqrt((groups.length * width) / height))));
  const rows = Math.max(1, Math.ceil(groups.length / cols));
  const cw = width / cols;
  const ch = height / rows;
  const cells: Cell[] = groups.map((group, i) => ({ group, x: (i % cols) * cw, y: Math.floor(i / cols) * ch, w: cw, h: ch }));
  const cellOf = new Map(cells.map((c) => [c.group, c]));
  const groupOf = new Map(nodes.map((n) => [n.id, n.group]));

  // Where each node's peers in other namespaces are, on average.
  const pull = new Map<string, { x: number; y: number; n: number }>();
  for (const l of links) {
    for (const [a, b] of [
      [l.source, l.target],
      [l.target, l.source],
    ] as const) {
      const ga = groupOf.get(a);
      const gb = groupOf.get(b);
      if (!ga || !gb || ga === gb) continue;
      const c = cellOf.get(gb)!;
      const p = pull.get(a) ?? { x: 0, y: 0, n: 0 };
      pull.set(a, { x: p.x + c.x + c.w / 2, y: p.y + c.y + c.h / 2, n: p.n + 1 });
    }
  }

  const pos = new Map<string, Placed>();
  for (const cell of cells) {
    const ids = [...members.get(cell.group)!].sort();
    const cx = cell.x + cell.w / 2;
    const cy = cell.y + cell.h / 2 + 6;
    if (ids.length === 1) {
      pos.set(ids[0]!, { x: cx, y: cy });
      continue;
    }
    const r = Math.max(24, Math.min(cell.w / 2 - 50, cell.h / 2 - 40));
    const angle = (id: string) => {
      const p = pull.get(id);
      return p ? Math.atan2(p.y / p.n - cy, p.x / p.n - cx) : Infinity;
    };
    // Nodes with outside peers take the slots facing them; the others fill the rest.
    const facing = ids.filter((id) => pull.has(id)).sort((a, b) => angle(a) - angle(b));
    const inner = ids.filter((id) => !pull.has(id));
    const order = [...facing, ...inner];
    const start = facing.length ? angle(facing[0]!) : -Math.PI / 2;
    const step = (2 * Math.PI) / order.length;
    order.forEach((id, i) => {
      const a = start + i * step;
      pos.set(id, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) * 0.85 });
    });
  }
  return { pos, cells };
}
