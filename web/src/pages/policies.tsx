// The Policies page: every loaded policy with its hits over the range (never-hit ones stand
// out), hits over time by action for all policies or the one selected, and what staged
// policies would deny if they were enforced.

import { useState } from 'preact/hooks';
import { query } from '../api';
import { ErrorBox } from '../components/ErrorBox';
import { TimeChart, type Series } from '../components/charts';
import { fmtDateTime, fmtNum, pair } from '../format';
import { useApi } from '../hooks';
import { href } from '../router';
import { bucketFor, type TimeRange } from '../timerange';
import type { HitSeries, Policy, PoliciesResponse, PolicyHitsResponse, StagedPair } from '../types';

export function policyRef(p: Pick<Policy, 'kind' | 'namespace' | 'name'>): string {
  return `${p.kind}/${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
}

const ACTION_COLORS: Record<string, string> = {
  allow: 'var(--fwd)',
  deny: 'var(--drop)',
  log: 'var(--log)',
  pass: 'var(--pass)',
};

/** One series per action (and enforcement), summed over the policies given. */
function byAction(series: HitSeries[]): Series[] {
  const out = new Map<string, Map<number, number>>();
  for (const s of series) {
    const name = s.enforcement === 'pending' ? `staged ${s.action || 'none'}` : s.action || 'none';
    const m = out.get(name) ?? new Map<number, number>();
    for (const [t, v] of s.points) {
      const ms = Date.parse(t);
      m.set(ms, (m.get(ms) ?? 0) + v);
    }
    out.set(name, m);
  }
  return [...out.entries()].map(([name, m]) => ({
    name,
    color: name.startsWith('staged') ? (name.endsWith('deny') ? 'var(--audit)' : 'var(--staged)') : (ACTION_COLORS[name] ?? 'var(--muted)'),
    points: [...m.entries()],
  }));
}

export function PoliciesPage({ range }: { range: TimeRange }) {
  const [selected, setSelected] = useState<string | null>(null);
  const [onlyNever, setOnlyNever] = useState(false);
  const refresh = range.live ? 5000 : 0;
  const rq = { since: range.since, until: range.until || undefined };
  const policies = useApi<PoliciesResponse>(`/api/v1/policies${query(rq)}`, refresh);
  const hits = useApi<PolicyHitsResponse>(`/api/v1/policies/hits${query({ ...rq, bucket: bucketFor(range), policy: selected ?? undefined })}`, refresh);
  const staged = useApi<{ would_deny: StagedPair[] }>(`/api/v1/staged${query(rq)}`, refresh);

  const list = policies.data?.policies ?? [];
  const never = list.filter((p) => p.never_hit).length;
  const rows = onlyNever ? list.filter((p) => p.never_hit) : list;

  return (
    <div class="page">
      <ErrorBox error={policies.error} onRetry={policies.reload} />
      {(policies.data?.rejected ?? []).map((r) => (
        <div class="error" role="alert" data-testid="policy-rejected" key={r.file}>
          <span class="error-text">
            {r.file} is refused and not enforced: <code>{r.error}</code>
          </span>
        </div>
      ))}
      <section class="card">
        <header>
          <h2>Hits over time by action{selected ? `: ${selected}` : ', all policies'}</h2>
          {selected && (
            <button type="button" onClick={() => setSelected(null)}>
              Show all policies
            </button>
          )}
        </header>
        <ErrorBox error={hits.error} onRetry={hits.reload} />
        <TimeChart
          testid="policy-hits-chart"
          series={byAction(hits.data?.series ?? [])}
          bucketMs={(hits.data?.bucket_seconds ?? 60) * 1000}
          emptyText={hits.data ? 'No hits in this range' : 'Loading…'}
        />
      </section>
      <section class="card">
        <header>
          <h2>Policies</h2>
          <span class="muted" data-testid="policies-summary">
            {list.length} loaded · <span class={never ? 'never' : ''}>{never} never hit</span> in this range
          </span>
          <label class="inline">
            <input type="checkbox" checked={onlyNever} onChange={(e) => setOnlyNever((e.currentTarget as HTMLInputElement).checked)} /> only never hit
          </label>
        </header>
        <div class="scroll-x">
          <table class="data" data-testid="policies-table">
            <thead>
              <tr>
                <th>Policy</th>
                <th>Dialect</th>
                <th>Tier</th>
                <th class="num">Order</th>
                <th class="num">Allowed</th>
                <th class="num">Denied</th>
                <th class="num">Logged</th>
                <th class="num">Passed</th>
                <th class="num">Staged deny</th>
                <th class="num">Staged allow</th>
                <th>Last hit</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((p) => {
                const ref = policyRef(p);
                return (
                  <tr
                    key={ref}
                    class={`${p.never_hit ? 'never-hit' : ''} ${selected === ref ? 'selected' : ''} clickable`}
                    data-testid="policy-row"
                    data-never-hit={p.never_hit ? 'true' : 'false'}
                    onClick={() => setSelected(ref)}
                  >
                    <td>
                      <div class="policy-name">
                        <a href={href('/flows', { policy: ref })} onClick={(e) => e.stopPropagation()} data-testid="policy-name">
                          {ref}
                        </a>
                        {p.staged && <span class="badge staged">staged</span>}
                        {p.never_hit && (
                          <span class="badge never" data-testid="policy-never-hit">
                            never hit
                          </span>
                        )}
                        {p.loaded === false && <span class="badge muted">not loaded</span>}
                      </div>
                      <div class="muted small">{p.file}</div>
                    </td>
                    <td>{p.dialect}</td>
                    <td>{p.tier || '—'}</td>
                    <td class="num">{p.order ?? '—'}</td>
                    <td class="num">{fmtNum(p.hits.allowed)}</td>
                    <td class="num">{fmtNum(p.hits.denied)}</td>
                    <td class="num">{fmtNum(p.hits.logged)}</td>
                    <td class="num">{fmtNum(p.hits.passed)}</td>
                    <td class="num">{fmtNum(p.hits.staged_would_deny)}</td>
                    <td class="num">{fmtNum(p.hits.staged_would_allow)}</td>
                    <td>{fmtDateTime(p.last_hit)}</td>
                  </tr>
                );
              })}
              {policies.data && rows.length === 0 && (
                <tr>
                  <td colSpan={11} class="empty">
                    No policy
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      <section class="card">
        <header>
          <h2>What staged policies would deny</h2>
          <span class="muted">pairs a staged policy would deny if enforced</span>
        </header>
        <ErrorBox error={staged.error} onRetry={staged.reload} />
        <table class="data" data-testid="staged-table">
          <thead>
            <tr>
              <th>Staged policy</th>
              <th>Source</th>
              <th>Destination</th>
              <th>Port</th>
              <th>Protocol</th>
              <th class="num">Flows</th>
              <th>Last</th>
            </tr>
          </thead>
          <tbody>
            {(staged.data?.would_deny ?? []).map((s) => (
              <tr key={`${s.policy}|${s.src_namespace}/${s.src_pod}|${s.dst_namespace}/${s.dst_pod}|${s.dst_port}|${s.protocol}`} data-testid="staged-row">
                <td>
                  <a href={href('/flows', { policy: s.policy })}>{s.policy}</a>
                </td>
                <td>{pair(s.src_namespace, s.src_pod)}</td>
                <td>{pair(s.dst_namespace, s.dst_pod)}</td>
                <td>{s.dst_port || ''}</td>
                <td>{s.protocol}</td>
                <td class="num">{fmtNum(s.count)}</td>
                <td>{fmtDateTime(s.last)}</td>
              </tr>
            ))}
            {staged.data && staged.data.would_deny.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  No staged policy would deny anything in this range
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </div>
  );
}
