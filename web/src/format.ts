// Formatting shared by every page.

export function fmtTime(rfc3339: string): string {
  // Keep the sub-second digits the API sends: they order flows within one second.
  const d = new Date(rfc3339);
  if (!Number.isFinite(d.getTime())) return rfc3339;
  const frac = /\.(\d{1,3})/.exec(rfc3339)?.[1]?.padEnd(3, '0') ?? '000';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${frac}`;
}

export function fmtDateTime(rfc3339: string | null | undefined): string {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  if (!Number.isFinite(d.getTime())) return rfc3339;
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtNum(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  if (Math.abs(n) >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function fmtDuration(ns: number): string {
  let s = Math.floor(ns / 1e9);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function endpoint(p: { namespace: string; pod: string; ip: string }): string {
  return p.pod ? `${p.namespace}/${p.pod}` : p.ip;
}

export function pair(ns: string, pod: string): string {
  return pod ? (ns ? `${ns}/${pod}` : pod) : ns || '(world)';
}
