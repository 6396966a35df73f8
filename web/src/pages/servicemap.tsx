// The Service map: workloads as nodes grouped by namespace, traffic as edges coloured by
// verdict (one stroke per verdict seen on that pair), over every namespace at once unless one
// is chosen. Click a node or an edge for its traffic and a link to its flows.

import { useMemo, useRef, useState } from 'preact/hooks';
import { query } from '../api';
import { ErrorBox } from '../components/ErrorBox';
import { layout } from '../layout';
import { fmtNum } from '../format';
import { useApi, useWidth } from '../hooks';
import { href, setParams, type Route } from '../router';
import type { TimeRange } from '../timerange';
import type { MapEdge, MapNode, ServiceMap } from '../types';

const VERDICTS = [
  { key: 'forwarded', label: 'forwarded', color: 'var(--fwd)' },
  { key: 'dropped', label: 'dropped', color: 'var(--drop)' },
  { key: 'audit', label: 'audit', color: 'var(--audit)' },
] as const;
type VerdictKey = (typeof VERDICTS)[number]['key'];

interface Pair {
  source: string;
  target: string;
  edges: MapEdge[];
  forwarded: number;
  dropped: number;
  audit: number;
}

function groupOf(n: MapNode): string {
  return n.kind === 'world' ? '(world)' : n.namespace || `(${n.kind || 'other'})`;
}

export function ServiceMapPage({ route, range }: { route: Route; range: TimeRange }) {
  const ns = route.params.get('namespace') ?? '';
  const verdicts = (route.params.get('show') ?? 'forwarded,dropped,audit').split(',') as VerdictKey[];
  const { data, error, reload } = useApi<ServiceMap>(
    `/api/v1/servicemap${query({ since: range.since, until: range.until || undefined, namespace: ns || undefined })}`,
    range.live ? 5000 : 0,
  );
  const allNs = useApi<ServiceMap>(`/api/v1/servicemap${query({ since: range.since, until: range.until || undefined })}`, 0);
  const namespaces = [...new Set((allNs.data ?? data)?.nodes.map((n) => n.namespace).filter(Boolean) ?? [])].sort();

  const box = useRef<HTMLDivElement>(null);
  const width = Math.max(useWidth(box, 900), 500);
  // The map fills the window below the toolbar (1280x800 included).
  const height = Math.max(420, Math.min(900, window.innerHeight - 150));
  const [sel, setSel] = useState<{ node?: string; pair?: string } | null>(null);

  const pairs = useMemo(() => {
    const m = new Map<string, Pair>();
    for (const e of data?.edges ?? []) {
      const k = `${e.source}→${e.target}`;
      const p = m.get(k) ?? { source: e.source, target: e.target, edges: [], forwarded: 0, dropped: 0, audit: 0 };
      p.edges.push(e);
      p.forwarded += e.forwarded;
      p.dropped += e.dropped;
      p.audit += e.audit;
      m.set(k, p);
    }
    return [...m.values()].filter((p) => verdicts.some((v) => p[v] > 0));
  }, [data, verdicts.join()]);

  const nodes = data?.nodes ?? [];
  const { pos, cells } = useMemo(
    () =>
      layout(
        nodes.map((n) => ({ id: n.id, group: groupOf(n) })),
        pairs,
        width,
        height,
      ),
    [data, pairs, width],
  );
  const maxCount = Math.max(1, ...pairs.map((p) => p.forwarded + p.dropped + p.audit));
  const selPair = sel?.pair ? pairs.find((p) => `${p.source}→${p.target}` === sel.pair) : undefined;
  const selNode = sel?.node ? nodes.find((n) => n.id === sel.node) : undefined;

  return (
    <div class="page">
      <div class="toolbar">
        <label class="field">
          <span>Namespace</span>
          <select value={ns} data-testid="map-namespace" onChange={(e) => setParams({ namespace: (e.currentTarget as HTMLSelectElement).value || null })}>
            <option value="">all namespaces</option>
            {namespaces.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        {VERDICTS.map((v) => (
          <label class="inline" key={v.key}>
            <input
              type="checkbox"
              data-testid={`map-show-${v.key}`}
              checked={verdicts.includes(v.key)}
              onChange={(e) => {
                const on = (e.currentTarget as HTMLInputElement).checked;
                const next = VERDICTS.map((x) => x.key).filter((k) => (k === v.key ? on : verdicts.includes(k)));
                setParams({ show: next.length === 3 ? null : next.join(',') || 'none' });
              }}
            />
            <span class="swatch" style={{ background: v.color }} /> {v.label}
          </label>
        ))}
        <span class="muted" data-testid="map-summary">
          {nodes.length} workloads · {pairs.length} connections
        </span>
      </div>
      <ErrorBox error={error} onRetry={reload} />
      <div class="map-wrap">
        <div class="map card" ref={box}>
          <svg width={width} height={height} data-testid="service-map">
            <defs>
              {VERDICTS.map((v) => (
                <marker key={v.key} id={`arrow-${v.key}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L10,5 L0,10 z" fill={v.color} />
                </marker>
              ))}
            </defs>
            {cells.map((c) => (
              <g key={c.group} class="ns-box" data-testid="map-namespace-group">
                <rect x={c.x + 6} y={c.y + 6} width={c.w - 12} height={c.h - 12} rx={10} />
                <text x={c.x + 16} y={c.y + 24}>
                  {c.group}
                </text>
              </g>
            ))}
            {pairs.map((p) => {
              const a = pos.get(p.source);
              const b = pos.get(p.target);
              if (!a || !b) return null;
              const dx = b.x - a.x;
              const dy = b.y - a.y;
              const len = Math.sqrt(dx * dx + dy * dy) || 1;
              const nx = -dy / len;
              const ny = dx / len;
              const shown = VERDICTS.filter((v) => verdicts.includes(v.key) && p[v.key] > 0);
              const k = `${p.source}→${p.target}`;
              return (
                <g key={k} class={`edge ${sel?.pair === k ? 'selected' : ''}`} onClick={() => setSel({ pair: k })}>
                  {shown.map((v, i) => {
                    // A gentle curve to the right of the direction of travel, so A->B and B->A
                    // do not overlap; one stroke per verdict, side by side.
                    const off = (i - (shown.length - 1) / 2) * 4;
                    const bend = Math.min(40, len * 0.12) + off;
                    const mx = (a.x + b.x) / 2 + nx * bend;
                    const my = (a.y + b.y) / 2 + ny * bend;
                    // Stop short of the node circles so arrowheads stay visible.
                    const ux = (x: number, y: number, toX: number, toY: number, d: number) => {
                      const l = Math.hypot(toX - x, toY - y) || 1;
                      return [x + ((toX - x) / l) * d, y + ((toY - y) / l) * d] as const;
                    };
                    const [x1, y1] = ux(a.x, a.y, mx, my, 16);
                    const [x2, y2] = ux(b.x, b.y, mx, my, 18);
                    return (
                      <path
                        key={v.key}
                        d={`M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`}
                        fill="none"
                        stroke={v.color}
                        stroke-width={1.5 + 3 * Math.sqrt(p[v.key] / maxCount)}
                        marker-end={`url(#arrow-${v.key})`}
                        data-testid="map-edge"
                        data-verdict={v.key}
                        data-source={p.source}
                        data-target={p.target}
                      >
                        <title>
                          {p.source} → {p.target}: {fmtNum(p[v.key])} {v.label}
                        </title>
                      </path>
                    );
                  })}
                  <line class="edge-hit" x1={a.x} y1={a.y} x2={b.x} y2={b.y} />
                </g>
              );
            })}
            {nodes.map((n) => {
              const p = pos.get(n.id);
              if (!p) return null;
              return (
                <g key={n.id} class={`map-node k-${n.kind} ${sel?.node === n.id ? 'selected' : ''}`} transform={`translate(${p.x},${p.y})`} onClick={() => setSel({ node: n.id })} data-testid="map-node" data-id={n.id}>
                  <circle r={13} />
                  <text y={27} text-anchor="middle">
                    {n.workload}
                  </text>
                  <title>{n.id}</title>
                </g>
              );
            })}
            {data && nodes.length === 0 && (
              <text x={width / 2} y={height / 2} text-anchor="middle" class="muted">
                No traffic in this range
              </text>
            )}
          </svg>
        </div>
        {(selPair || selNode) && (
          <aside class="detail map-detail" data-testid="map-detail">
            <header>
              <h3>{selPair ? `${selPair.source} → ${selPair.target}` : selNode!.id}</h3>
              <button type="button" onClick={() => setSel(null)} aria-label="close">
                ×
              </button>
            </header>
            {selPair && <PairDetail p={selPair} nodes={nodes} />}
            {selNode && <NodeDetail n={selNode} pairs={pairs} />}
          </aside>
        )}
      </div>
    </div>
  );
}

function podParam(nodes: MapNode[], id: string): Record<string, string> {
  const n = nodes.find((x) => x.id === id);
  if (!n || n.kind !== 'pod') return {};
  return { namespace: n.namespace };
}

function PairDetail({ p, nodes }: { p: Pair; nodes: MapNode[] }) {
  return (
    <>
      <table class="data">
        <thead>
          <tr>
            <th>Port</th>
            <th class="num">Fwd</th>
            <th class="num">Drop</th>
            <th class="num">Audit</th>
          </tr>
        </thead>
        <tbody>
          {p.edges.map((e) => (
            <tr key={`${e.port}/${e.protocol}`}>
              <td>
                {e.port || ''}/{e.protocol}
              </td>
              <td class="num">{fmtNum(e.forwarded)}</td>
              <td class="num">{fmtNum(e.dropped)}</td>
              <td class="num">{fmtNum(e.audit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h4>Policies</h4>
      <ul class="plain">
        {[...new Set(p.edges.flatMap((e) => e.policies))].map((pol) => (
          <li key={pol}>
            <a href={href('/flows', { policy: pol })}>{pol}</a>
          </li>
        ))}
      </ul>
      <p>
        <a href={href('/flows', { ...podParam(nodes, p.source), q: p.source.split('/').pop() ?? '' })}>Flows from {p.source} →</a>
      </p>
    </>
  );
}

function NodeDetail({ n, pairs }: { n: MapNode; pairs: Pair[] }) {
  const out = pairs.filter((p) => p.source === n.id);
  const inn = pairs.filter((p) => p.target === n.id);
  const row = (p: Pair, other: string) => (
    <tr key={`${p.source}→${p.target}`}>
      <td>{other}</td>
      <td class="num">{fmtNum(p.forwarded)}</td>
      <td class="num">{fmtNum(p.dropped)}</td>
      <td class="num">{fmtNum(p.audit)}</td>
    </tr>
  );
  return (
    <>
      <p class="muted">
        {n.kind} · namespace {n.namespace || '—'}
      </p>
      <table class="data">
        <thead>
          <tr>
            <th>Peer</th>
            <th class="num">Fwd</th>
            <th class="num">Drop</th>
            <th class="num">Audit</th>
          </tr>
        </thead>
        <tbody>
          {out.length > 0 && (
            <tr>
              <th colSpan={4}>outgoing</th>
            </tr>
          )}
          {out.map((p) => row(p, p.target))}
          {inn.length > 0 && (
            <tr>
              <th colSpan={4}>incoming</th>
            </tr>
          )}
          {inn.map((p) => row(p, p.source))}
        </tbody>
      </table>
      <p>
        <a href={href('/flows', n.kind === 'pod' ? { namespace: n.namespace, q: n.workload } : { q: n.workload })}>Flows of {n.id} →</a>
      </p>
    </>
  );
}
