// Hand-written SVG charts: time series as bars (stacked) or lines, and horizontal bar lists.
// A few hundred lines instead of a chart library: the dashboard needs three chart shapes and
// full control over colours in both themes and over click targets.

import { useRef, useState } from 'preact/hooks';
import type { JSX } from 'preact';
import { useWidth } from '../hooks';
import { fmtNum } from '../format';

export interface Series {
  name: string;
  color: string;
  /** [unix ms, value], any order. */
  points: [number, number][];
}

interface TimeChartProps {
  series: Series[];
  kind?: 'bars' | 'lines';
  height?: number;
  /** Bucket width in ms (bars); guessed from the points when absent. */
  bucketMs?: number;
  onBucketClick?: (startMs: number, endMs: number) => void;
  testid?: string;
  emptyText?: string;
}

const PAD = { left: 44, right: 12, top: 10, bottom: 22 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeTicks(t0: number, t1: number, n: number): number[] {
  const span = t1 - t0;
  const steps = [1e3, 5e3, 15e3, 30e3, 60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];
  const step = steps.find((s) => span / s <= n) ?? 86400e3;
  const out: number[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
  return out;
}

function tickLabel(t: number, span: number): string {
  const d = new Date(t);
  const hm = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', ...(span < 300e3 ? { second: '2-digit' } : {}) });
  return span > 2 * 86400e3 ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
}

export function TimeChart({ series, kind = 'bars', height = 180, bucketMs, onBucketClick, testid, emptyText }: TimeChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  const width = useWidth(ref);
  const [hover, setHover] = useState<number | null>(null);

  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  if (times.length === 0) {
    return (
      <div ref={ref} class="chart chart-empty" data-testid={testid} style={{ height }}>
        {emptyText ?? 'No data in this range'}
      </div>
    );
  }
  let bucket = bucketMs ?? 0;
  if (!bucket) {
    bucket = Infinity;
    for (let i = 1; i < times.length; i++) bucket = Math.min(bucket, times[i]! - times[i - 1]!);
    if (!Number.isFinite(bucket)) bucket = 60_000;
  }
  const t0 = times[0]!;
  const t1 = times[times.length - 1]! + (kind === 'bars' ? bucket : 0);
  const span = Math.max(t1 - t0, 1);
  const innerW = Math.max(width - PAD.left - PAD.right, 10);
  const innerH = height - PAD.top - PAD.bottom;
  const x = (t: number) => PAD.left + ((t - t0) / span) * innerW;

  // Stack per time (bars) or take the max of any series (lines).
  const byTime = new Map<number, number[]>();
  series.forEach((s, i) => {
    for (const [t, v] of s.points) {
      const row = byTime.get(t) ?? new Array<number>(series.length).fill(0);
      row[i] = (row[i] ?? 0) + v;
      byTime.set(t, row);
    }
  });
  let max = 0;
  for (const row of byTime.values()) {
    max = Math.max(max, kind === 'bars' ? row.reduce((a, b) => a + b, 0) : Math.max(...row));
  }
  const yMax = niceMax(max);
  const y = (v: number) => PAD.top + innerH - (v / yMax) * innerH;
  const barW = Math.max(1, (bucket / span) * innerW - 1);

  const marks: JSX.Element[] = [];
  if (kind === 'bars') {
    for (const [t, row] of byTime) {
      let acc = 0;
      row.forEach((v, i) => {
        if (!v) return;
        marks.push(
          <rect
            key={`${t}-${i}`}
            x={x(t)}
            y={y(acc + v)}
            width={barW}
            height={Math.max(0, y(acc) - y(acc + v))}
            fill={series[i]!.color}
            data-testid={testid ? `${testid}-bar` : undefined}
          />,
        );
        acc += v;
      });
    }
  } else {
    series.forEach((s, i) => {
      const pts = [...s.points].sort((a, b) => a[0] - b[0]);
      const d = pts.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
      marks.push(<path key={i} d={d} fill="none" stroke={s.color} stroke-width={1.8} data-testid={testid ? `${testid}-line` : undefined} />);
      if (pts.length === 1) marks.push(<circle key={`c${i}`} cx={x(pts[0]![0])} cy={y(pts[0]![1])} r={3} fill={s.color} />);
    });
  }

  const hovered = hover === null ? null : times.reduce((best, t) => (Math.abs(x(t) - hover) < Math.abs(x(best) - hover) ? t : best), t0);
  const hoverRow = hovered === null ? null : byTime.get(hovered);

  return (
    <div ref={ref} class="chart" data-testid={testid}>
      <svg
        width={width}
        height={height}
        onMouseMove={(e) => setHover((e as MouseEvent).offsetX)}
        onMouseLeave={() => setHover(null)}
        onClick={() => {
          if (onBucketClick && hovered !== null) onBucketClick(hovered, hovered + bucket);
        }}
        class={onBucketClick ? 'clickable' : ''}
      >
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.left} x2={PAD.left + innerW} y1={y(yMax * f)} y2={y(yMax * f)} class="grid" />
            <text x={PAD.left - 6} y={y(yMax * f) + 4} text-anchor="end" class="axis">
              {fmtNum(yMax * f)}
            </text>
          </g>
        ))}
        {timeTicks(t0, t1, Math.max(2, Math.floor(innerW / 90))).map((t) => (
          <text key={t} x={x(t)} y={height - 6} text-anchor="middle" class="axis">
            {tickLabel(t, span)}
          </text>
        ))}
        {marks}
        {hovered !== null && <line x1={x(hovered)} x2={x(hovered)} y1={PAD.top} y2={PAD.top + innerH} class="cursor" />}
      </svg>
      {hovered !== null && hoverRow && (
        <div class="tooltip" style={{ left: Math.min(x(hovered) + 8, width - 180) }}>
          <div class="muted">{new Date(hovered).toLocaleString()}</div>
          {series.map((s, i) =>
            hoverRow[i] ? (
              <div key={s.name}>
                <span class="swatch" style={{ background: s.color }} /> {s.name}: {fmtNum(hoverRow[i])}
              </div>
            ) : null,
          )}
        </div>
      )}
      {series.length > 1 && (
        <div class="legend">
          {series.map((s) => (
            <span key={s.name}>
              <span class="swatch" style={{ background: s.color }} />
              {s.name}
            </span>
          ))}
        </div>
      )}
    </div>
  );
}

export interface BarItem {
  label: string;
  value: number;
  title?: string;
  href?: string;
  color?: string;
}

/** Horizontal bars; each row a link when `href` is set. */
export function BarList({ items, testid, empty }: { items: BarItem[]; testid?: string; empty?: string }) {
  if (items.length === 0) return <div class="empty">{empty ?? 'Nothing in this range'}</div>;
  const max = Math.max(...items.map((i) => i.value), 1);
  return (
    <ul class="barlist" data-testid={testid}>
      {items.map((it) => {
        const body = (
          <>
            <span class="barlist-bar" style={{ width: `${(it.value / max) * 100}%`, background: it.color ?? 'var(--drop)' }} />
            <span class="barlist-label" title={it.title ?? it.label}>
              {it.label}
            </span>
            <span class="barlist-value">{fmtNum(it.value)}</span>
          </>
        );
        return (
          <li key={it.label} data-testid={testid ? `${testid}-item` : undefined}>
            {it.href ? <a href={it.href}>{body}</a> : <div>{body}</div>}
          </li>
        );
      })}
    </ul>
  );
}

/** A tiny line of the last values (node flow rates). */
export function Sparkline({ values, width = 120, height = 28, color = 'var(--accent)' }: { values: number[]; width?: number; height?: number; color?: string }) {
  if (values.length < 2) return <svg width={width} height={height} />;
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  const d = values.map((v, i) => `${i ? 'L' : 'M'}${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join('');
  return (
    <svg width={width} height={height} class="sparkline">
      <path d={d} fill="none" stroke={color} stroke-width={1.5} />
    </svg>
  );
}
