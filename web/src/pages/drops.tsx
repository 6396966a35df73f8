// The Drops page: drops over time, by reason, by policy, and the most dropped pairs; every
// item links to the Flows page filtered to those flows, over the same time range.

import { ErrorBox } from '../components/ErrorBox';
import { BarList, TimeChart } from '../components/charts';
import { fmtNum, pair } from '../format';
import { useApi } from '../hooks';
import { query } from '../api';
import { href, navigate } from '../router';
import { bucketFor, type TimeRange } from '../timerange';
import type { DropsResponse } from '../types';

export function DropsPage({ range }: { range: TimeRange }) {
  const path = `/api/v1/drops${query({ since: range.since, until: range.until || undefined, bucket: bucketFor(range) })}`;
  const { data, error, reload, loading } = useApi<DropsResponse>(path, range.live ? 5000 : 0);
  const total = data?.by_reason.reduce((a, r) => a + r.count, 0) ?? 0;

  return (
    <div class="page">
      <ErrorBox error={error} onRetry={reload} />
      <section class="card">
        <header>
          <h2>Drops over time</h2>
          <span class="muted" data-testid="drops-total">
            {data ? `${fmtNum(total)} dropped flows` : loading ? 'Loading…' : ''} · click a bar for its flows
          </span>
        </header>
        <TimeChart
          testid="drops-over-time"
          series={[{ name: 'dropped', color: 'var(--drop)', points: (data?.over_time ?? []).map(([t, v]) => [Date.parse(t), v]) }]}
          bucketMs={(data?.bucket_seconds ?? 60) * 1000}
          onBucketClick={(s, e) =>
            navigate('/flows', { range: 'custom', since: new Date(s).toISOString(), until: new Date(e).toISOString(), verdict: 'DROPPED' })
          }
          emptyText={data ? 'No drops in this range' : 'Loading…'}
        />
      </section>
      <div class="grid-2">
        <section class="card">
          <header>
            <h2>By reason</h2>
          </header>
          <BarList
            testid="drops-by-reason"
            items={(data?.by_reason ?? []).map((r) => ({ label: r.reason || '(none)', value: r.count, href: href('/flows', { verdict: 'DROPPED', drop_reason: r.reason }) }))}
            empty={data ? 'No drops' : 'Loading…'}
          />
        </section>
        <section class="card">
          <header>
            <h2>By policy</h2>
          </header>
          <BarList
            testid="drops-by-policy"
            items={(data?.by_policy ?? []).map((r) => ({ label: r.policy || '(no policy: default deny)', value: r.count, href: href('/flows', { verdict: 'DROPPED', ...(r.policy ? { policy: r.policy } : {}) }) }))}
            empty={data ? 'No drops' : 'Loading…'}
          />
        </section>
      </div>
      <section class="card">
        <header>
          <h2>Top dropped pairs</h2>
        </header>
        <table class="data" data-testid="drops-top-pairs">
          <thead>
            <tr>
              <th>Source</th>
              <th>Destination</th>
              <th>Port</th>
              <th>Protocol</th>
              <th class="num">Drops</th>
            </tr>
          </thead>
          <tbody>
            {(data?.top_pairs ?? []).map((p) => {
              const link = href('/flows', {
                verdict: 'DROPPED',
                ...(p.src_pod ? { from_pod: `${p.src_namespace}/${p.src_pod}` } : {}),
                ...(p.dst_pod ? { to_pod: `${p.dst_namespace}/${p.dst_pod}` } : {}),
                ...(p.dst_port ? { port: String(p.dst_port) } : {}),
                ...(p.protocol ? { protocol: p.protocol } : {}),
              });
              return (
                <tr key={`${p.src_namespace}/${p.src_pod}>${p.dst_namespace}/${p.dst_pod}:${p.dst_port}/${p.protocol}`} data-testid="drops-pair">
                  <td>
                    <a href={link}>{pair(p.src_namespace, p.src_pod)}</a>
                  </td>
                  <td>
                    <a href={link}>{pair(p.dst_namespace, p.dst_pod)}</a>
                  </td>
                  <td>{p.dst_port || ''}</td>
                  <td>{p.protocol}</td>
                  <td class="num">{fmtNum(p.count)}</td>
                </tr>
              );
            })}
            {data && data.top_pairs.length === 0 && (
              <tr>
                <td colSpan={5} class="empty">
                  No drops in this range
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </div>
  );
}
