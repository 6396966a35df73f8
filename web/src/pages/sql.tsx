// The SQL console: read-only queries over the stored flows and policy hits, the result as a
// table, and as a chart when the result has a time column (Unix seconds or RFC 3339).

import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox } from '../components/ErrorBox';
import { TimeChart, type Series } from '../components/charts';
import { useApi, useStored } from '../hooks';
import type { SqlResult, Status } from '../types';

interface Example {
  title: string;
  sqlite: string;
  clickhouse: string;
}

const EXAMPLES: Example[] = [
  {
    title: 'Flows per minute by verdict (last hour)',
    sqlite:
      "SELECT time / 60 * 60 AS minute, verdict, count(*) AS flows\nFROM flows\nWHERE time > unixepoch() - 3600\nGROUP BY minute, verdict\nORDER BY minute",
    clickhouse:
      'SELECT intDiv(toUInt32(time), 60) * 60 AS minute, verdict, count() AS flows\nFROM flows FINAL\nWHERE time > now() - 3600\nGROUP BY minute, verdict\nORDER BY minute',
  },
  {
    title: 'Top denied flows by policy',
    sqlite:
      "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod,\n       dst_namespace, dst_pod, dst_port, protocol, count(*) AS denied\nFROM policy_hits\nWHERE enforcement = 'enforced' AND action = 'deny'\nGROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9\nORDER BY denied DESC\nLIMIT 20",
    clickhouse:
      "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod,\n       dst_namespace, dst_pod, dst_port, protocol, count() AS denied\nFROM policy_hits FINAL\nWHERE enforcement = 'enforced' AND action = 'deny'\nGROUP BY policy_kind, policy_namespace, policy_name, src_namespace, src_pod,\n         dst_namespace, dst_pod, dst_port, protocol\nORDER BY denied DESC\nLIMIT 20",
  },
  {
    title: 'Hits per policy per hour',
    sqlite:
      'SELECT time / 3600 * 3600 AS hour, policy_name, count(*) AS hits\nFROM policy_hits\nGROUP BY hour, policy_name\nORDER BY hour, policy_name',
    clickhouse:
      'SELECT intDiv(toUInt32(time), 3600) * 3600 AS hour, policy_name, count() AS hits\nFROM policy_hits FINAL\nGROUP BY hour, policy_name\nORDER BY hour, policy_name',
  },
  {
    title: 'Pairs staged policies would deny',
    sqlite:
      "SELECT policy_name, src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol,\n       count(*) AS flows\nFROM policy_hits\nWHERE enforcement = 'pending' AND action = 'deny'\nGROUP BY 1, 2, 3, 4, 5, 6, 7\nORDER BY flows DESC",
    clickhouse:
      "SELECT policy_name, src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol,\n       count() AS flows\nFROM policy_hits FINAL\nWHERE enforcement = 'pending' AND action = 'deny'\nGROUP BY policy_name, src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol\nORDER BY flows DESC",
  },
  {
    title: 'Policies last hit more than a day ago',
    sqlite:
      "SELECT policy_kind, policy_namespace, policy_name, max(time) AS last_hit\nFROM policy_hits WHERE policy_name <> ''\nGROUP BY 1, 2, 3\nHAVING max(time) < unixepoch() - 86400\nORDER BY last_hit",
    clickhouse:
      "SELECT policy_kind, policy_namespace, policy_name, max(toUInt32(time)) AS last_hit\nFROM policy_hits FINAL WHERE policy_name != ''\nGROUP BY policy_kind, policy_namespace, policy_name\nHAVING last_hit < toUInt32(now()) - 86400\nORDER BY last_hit",
  },
  {
    title: 'Latest 100 flows',
    sqlite: 'SELECT * FROM flows ORDER BY time DESC, nanos DESC LIMIT 100',
    clickhouse: 'SELECT * FROM flows FINAL ORDER BY time DESC, nanos DESC LIMIT 100',
  },
];

const TIME_NAMES = /^(time|ts|timestamp|minute|hour|day|bucket|second|date|datetime|t)$/i;
/** Colours that mean something wherever they appear: verdicts and actions. */
const NAMED: Record<string, string> = {
  FORWARDED: 'var(--fwd)',
  DROPPED: 'var(--drop)',
  AUDIT: 'var(--audit)',
  allow: 'var(--fwd)',
  deny: 'var(--drop)',
  log: 'var(--log)',
  pass: 'var(--pass)',
};
const PALETTE = ['var(--c1)', 'var(--c2)', 'var(--c3)', 'var(--c4)', 'var(--c5)', 'var(--c6)', 'var(--c7)', 'var(--c8)'];

/** Unix ms of a value in a time column, or null. */
function asTime(v: unknown): number | null {
  if (typeof v === 'number') {
    if (v > 1e9 && v < 1e10) return v * 1000; // seconds
    if (v > 1e12 && v < 1e13) return v; // ms
    return null;
  }
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d/.test(v)) {
    const t = Date.parse(v.includes('T') || v.endsWith('Z') ? v : `${v.replace(' ', 'T')}Z`);
    return Number.isFinite(t) ? t : null;
  }
  if (typeof v === 'string' && /^\d{10}$/.test(v)) return Number(v) * 1000;
  return null;
}

/** Series for a result with a time column: one per numeric column, or per category. */
/** The index of the result's time column, or -1. */
function timeColumn(r: SqlResult): number {
  if (r.rows.length < 1) return -1;
  return r.columns.findIndex((c, i) => TIME_NAMES.test(c) && r.rows.every((row) => asTime(row[i]) !== null));
}

export function chartOf(r: SqlResult): Series[] | null {
  const ti = timeColumn(r);
  if (ti < 0) return null;
  const numeric = r.columns.map((_, i) => i !== ti && r.rows.every((row) => typeof row[i] === 'number' || row[i] === null));
  const values = numeric.flatMap((n, i) => (n ? [i] : []));
  if (values.length === 0) return null;
  const cats = r.columns.map((_, i) => i !== ti && !numeric[i]).flatMap((c, i) => (c ? [i] : []));
  const series = new Map<string, Map<number, number>>();
  const add = (name: string, t: number, v: number) => {
    const m = series.get(name) ?? new Map<number, number>();
    m.set(t, (m.get(t) ?? 0) + v);
    series.set(name, m);
  };
  for (const row of r.rows) {
    const t = asTime(row[ti])!;
    if (cats.length) {
      const name = cats.map((c) => String(row[c] ?? '')).join(' ');
      add(name, t, Number(row[values[0]!] ?? 0));
    } else {
      for (const v of values) add(r.columns[v]!, t, Number(row[v] ?? 0));
    }
  }
  // The largest series first; the rest folded into "other" to keep the chart readable.
  const sorted = [...series.entries()].sort((a, b) => sum(b[1]) - sum(a[1]));
  const top = sorted.slice(0, 7);
  if (sorted.length > 7) {
    const other = new Map<number, number>();
    for (const [, m] of sorted.slice(7)) for (const [t, v] of m) other.set(t, (other.get(t) ?? 0) + v);
    top.push(['other', other]);
  }
  return top.map(([name, m], i) => ({ name, color: NAMED[name] ?? PALETTE[i % PALETTE.length]!, points: [...m.entries()] }));
}

function sum(m: Map<number, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function SqlPage() {
  const status = useApi<Status>('/api/v1/status');
  const dialect = status.data?.store.dialect === 'clickhouse' ? 'clickhouse' : 'sqlite';
  const [sql, setSql] = useStored('vigil.sql', '');
  const [result, setResult] = useState<SqlResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);

  // The first example fills an empty console once the dialect is known, unless the user has
  // typed meanwhile.
  const typed = useRef(false);
  useEffect(() => {
    if (!sql && status.data && !typed.current) setSql(EXAMPLES[0]![dialect]);
  }, [status.data]);

  const run = () => {
    if (!sql.trim() || running) return;
    setRunning(true);
    setError(null);
    api<SqlResult>('/api/v1/sql', { method: 'POST', body: { sql } })
      .then((r) => setResult(r))
      .catch((e: unknown) => {
        setResult(null);
        setError(e instanceof Error ? e.message : String(e));
      })
      .finally(() => setRunning(false));
  };
  const chart = result ? chartOf(result) : null;
  const ti = result ? timeColumn(result) : -1;
  const numeric = result ? result.columns.map((_, i) => result.rows.length > 0 && result.rows.every((row) => typeof row[i] === 'number' || row[i] === null)) : [];

  return (
    <div class="page sql-page">
      <div class="sql-editor card">
        <textarea
          value={sql}
          spellcheck={false}
          data-testid="sql-input"
          placeholder="SELECT verdict, count(*) FROM flows GROUP BY verdict"
          onInput={(e) => {
            typed.current = true;
            setSql((e.currentTarget as HTMLTextAreaElement).value);
          }}
          onKeyDown={(e) => {
            if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
              e.preventDefault();
              run();
            }
          }}
        />
        <div class="sql-side">
          <button type="button" class="primary" onClick={run} disabled={running} data-testid="sql-run">
            {running ? 'Running…' : 'Run (Ctrl+Enter)'}
          </button>
          <div class="muted small">
            {status.data ? `${status.data.store.dialect || dialect} · read-only` : ''}
          </div>
          <h4>Examples</h4>
          <ul class="plain examples">
            {EXAMPLES.map((ex) => (
              <li key={ex.title}>
                <a
                  href="#"
                  data-testid="sql-example"
                  onClick={(e) => {
                    e.preventDefault();
                    setSql(ex[dialect]);
                  }}
                >
                  {ex.title}
                </a>
              </li>
            ))}
          </ul>
        </div>
      </div>
      <ErrorBox error={status.error} />
      <ErrorBox error={error} />
      {result && (
        <section class="card">
          <header>
            <h2>Result</h2>
            <span class="muted" data-testid="sql-summary">
              {result.rows.length} rows · {result.elapsed_ms < 10 ? result.elapsed_ms.toPrecision(2) : Math.round(result.elapsed_ms)} ms
            </span>
          </header>
          {chart && (
            <TimeChart
              series={chart}
              kind={result.rows.length > 120 ? 'lines' : 'bars'}
              bucketMs={{ minute: 60e3, hour: 3600e3, day: 86400e3 }[result.columns[ti]!.toLowerCase()]}
              testid="sql-chart"
            />
          )}
          <div class="scroll-x sql-result">
            <table class="data" data-testid="sql-result">
              <thead>
                <tr>
                  {result.columns.map((c, i) => (
                    <th key={c} class={numeric[i] && i !== ti ? 'num' : ''}>
                      {c}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.rows.slice(0, 2000).map((row, i) => (
                  <tr key={i} data-testid="sql-row">
                    {row.map((v, j) =>
                      j === ti ? (
                        <td key={j}>
                          {cell(v)} <span class="muted small">{new Date(asTime(v)!).toLocaleString()}</span>
                        </td>
                      ) : (
                        <td key={j} class={typeof v === 'number' ? 'num' : ''}>
                          {cell(v)}
                        </td>
                      ),
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
            {result.rows.length > 2000 && <div class="muted">First 2000 of {result.rows.length} rows shown.</div>}
          </div>
        </section>
      )}
    </div>
  );
}
