// A small force layout for the service map (about 80 lines instead of a graph library): nodes
// repel, edges pull, and each node is drawn towards its namespace's centre so namespaces form
// groups. Deterministic (seeded start positions) so the map does not jump between refreshes.

export interface LayoutNode {
  id: string;
  group: string;
  x: number;
  y: number;
}

export function layout(
  ids: { id: string; group: string }[],
  links: { source: string; target: string }[],
  width: number,
  height: number,
  previous?: Map<string, { x: number; y: number }>,
): Map<string, LayoutNode> {
  const groups = [...new Set(ids.map((n) => n.group))].sort();
  // Group centres on a grid that fits the canvas's aspect ratio.
  const cols = Math.max(1, Math.ceil(Math.sqrt((groups.length * width) / height)));
  const rows = Math.max(1, Math.ceil(groups.length / cols));
  const centre = new Map<string, [number, number]>();
  groups.forEach((g, i) => {
    const c = i % cols;
    const r = Math.floor(i / cols);
    centre.set(g, [((c + 0.5) * width) / cols, ((r + 0.5) * height) / rows]);
  });

  let seed = 42;
  const rand = () => {
    seed = (seed * 1664525 + 1013904223) % 4294967296;
    return seed / 4294967296;
  };
  const nodes: LayoutNode[] = ids.map((n) => {
    const prev = previous?.get(n.id);
    const [cx, cy] = centre.get(n.group)!;
    return { id: n.id, group: n.group, x: prev?.x ?? cx + (rand() - 0.5) * 80, y: prev?.y ?? cy + (rand() - 0.5) * 80 };
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const edges = links.flatMap((l) => {
    const a = byId.get(l.source);
    const b = byId.get(l.target);
    return a && b && a !== b ? [[a, b] as const] : [];
  });

  const area = (width * height) / Math.max(nodes.length, 1);
  const k = Math.min(120, Math.sqrt(area) * 0.6);
  const iterations = previous ? 120 : 300;
  for (let it = 0; it < iterations; it++) {
    const temp = (1 - it / iterations) * 20 + 1;
    const dx = new Float64Array(nodes.length);
    const dy = new Float64Array(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        const a = nodes[i]!;
        const b = nodes[j]!;
        let ex = a.x - b.x;
        let ey = a.y - b.y;
        let d2 = ex * ex + ey * ey;
        if (d2 < 0.01) {
          ex = rand() - 0.5;
          ey = rand() - 0.5;
          d2 = 0.01;
        }
        const f = (k * k) / d2 * (a.group === b.group ? 1 : 1.6);
        dx[i]! += ex * f * 0.05;
        dy[i]! += ey * f * 0.05;
        dx[j]! -= ex * f * 0.05;
        dy[j]! -= ey * f * 0.05;
      }
    }
    const index = new Map(nodes.map((n, i) => [n, i]));
    for (const [a, b] of edges) {
      const ex = b.x - a.x;
      const ey = b.y - a.y;
      const d = Math.sqrt(ex * ex + ey * ey) || 1;
      const f = (d / k) * 0.02 * (a.group === b.group ? 1 : 0.3);
      const ia = index.get(a)!;
      const ib = index.get(b)!;
      dx[ia]! += ex * f;
      dy[ia]! += ey * f;
      dx[ib]! -= ex * f;
      dy[ib]! -= ey * f;
    }
    nodes.forEach((n, i) => {
      const [cx, cy] = centre.get(n.group)!;
      dx[i]! += (cx - n.x) * 0.06;
      dy[i]! += (cy - n.y) * 0.06;
      const len = Math.sqrt(dx[i]! ** 2 + dy[i]! ** 2) || 1;
      const step = Math.min(len, temp);
      n.x = Math.min(width - 40, Math.max(40, n.x + (dx[i]! / len) * step));
      n.y = Math.min(height - 30, Math.max(30, n.y + (dy[i]! / len) * step));
    });
  }
  return byId;
}
