// The Nodes page: the relay, the store and every node's health, flow rate (kept as a short
// history here for a sparkline) and lost events by source: live since the ui-server started, and
// the store's recorded history.

import { useEffect, useRef } from 'preact/hooks';
import { ErrorBox } from '../components/ErrorBox';
import { Sparkline } from '../components/charts';
import { fmtDuration, fmtNum } from '../format';
import { useApi } from '../hooks';
import type { NodeInfo, Status } from '../types';

const POLL_MS = 2000;
const HISTORY = 60;

function LostList({ lost }: { lost: Record<string, number> }) {
  const items = Object.entries(lost).filter(([, v]) => v > 0);
  if (!items.length) return <span class="muted">none</span>;
  return (
    <span class="lost">
      {items.map(([k, v]) => (
        <span key={k} class="chip bad" title={k}>
          {k}: {fmtNum(v)}
        </span>
      ))}
    </span>
  );
}

export function NodesPage() {
  const nodes = useApi<{ nodes: NodeInfo[] }>('/api/v1/nodes', POLL_MS);
  const status = useApi<Status>('/api/v1/status', POLL_MS);
  const rates = useRef(new Map<string, number[]>());

  useEffect(() => {
    for (const n of nodes.data?.nodes ?? []) {
      const h = rates.current.get(n.name) ?? [];
      h.push(n.flow_rate);
      if (h.length > HISTORY) h.shift();
      rates.current.set(n.name, h);
    }
  }, [nodes.data]);

  const s = status.data;
  return (
    <div class="page">
      <ErrorBox error={status.error} onRetry={status.reload} />
      {s && (
        <div class="grid-3">
          <section class="card stat-card" data-testid="relay-status">
            <h2>Relay</h2>
            <div class={`big ${s.relay.reachable ? 'ok' : 'bad'}`}>{s.relay.reachable ? 'reachable' : 'unreachable'}</div>
            <div class="muted">{s.relay.address}</div>
            {s.relay.error && <div class="error-text">{s.relay.error}</div>}
            <div>
              {s.relay.num_connected_nodes} connected, {s.relay.num_unavailable_nodes} unavailable
              {s.relay.unavailable_nodes.length ? `: ${s.relay.unavailable_nodes.join(', ')}` : ''}
            </div>
            <div>
              {fmtNum(s.relay.num_flows)} / {fmtNum(s.relay.max_flows)} flows held · {fmtNum(s.relay.seen_flows)} seen
              {s.relay.flow_rate !== undefined && <> · {fmtNum(s.relay.flow_rate)} flows/s</>}
            </div>
          </section>
          <section class="card stat-card" data-testid="store-status">
            <h2>Store</h2>
            <div class="big">{s.store.dialect || '—'}</div>
            <div class="muted">{s.store.url}</div>
            {s.store.error ? (
              <div class="error-text">{s.store.error}</div>
            ) : (
              <div>
                {fmtNum(s.store.flows)} flows · {fmtNum(s.store.policy_hits)} policy hits
              </div>
            )}
          </section>
          <section class="card stat-card" data-testid="lost-status">
            <h2>Lost events</h2>
            <div class={`big ${Object.values(s.lost).some((v) => v > 0) || s.ui.stream_lost ? 'bad' : 'ok'}`}>
              {fmtNum(Object.values(s.lost).reduce((a, b) => a + b, 0) + s.ui.stream_lost)}
            </div>
            <div class="muted">since this dashboard server started</div>
            <div>
              upstream: <LostList lost={s.lost} />
            </div>
            <div data-testid="stored-lost">
              recorded in the store: {s.store.lost_error ? <span class="error-text">{s.store.lost_error}</span> : <LostList lost={s.store.lost ?? {}} />}
            </div>
            <div>
              dashboard clients: {fmtNum(s.ui.stream_lost)} lost over {s.ui.stream_clients} open streams
            </div>
          </section>
        </div>
      )}
      <ErrorBox error={nodes.error} onRetry={nodes.reload} />
      <section class="card">
        <header>
          <h2>Nodes</h2>
        </header>
        <table class="data" data-testid="nodes-table">
          <thead>
            <tr>
              <th>Node</th>
              <th>State</th>
              <th>Address</th>
              <th>Version</th>
              <th>Uptime</th>
              <th class="num">Flows held</th>
              <th class="num">Seen</th>
              <th class="num">Flows/s</th>
              <th>Rate</th>
              <th>Lost</th>
              <th>Lost (stored)</th>
            </tr>
          </thead>
          <tbody>
            {(nodes.data?.nodes ?? []).map((n) => (
              <tr key={n.name} data-testid="node-row">
                <td>{n.name}</td>
                <td>
                  <span class={`chip ${n.state === 'NODE_CONNECTED' ? 'ok' : 'bad'}`}>{n.state.replace('NODE_', '').toLowerCase()}</span>
                </td>
                <td class="mono">{n.address}</td>
                <td>{n.version}</td>
                <td>{n.uptime_ns ? fmtDuration(n.uptime_ns) : '—'}</td>
                <td class="num">
                  {fmtNum(n.num_flows)} / {fmtNum(n.max_flows)}
                </td>
                <td class="num">{fmtNum(n.seen_flows)}</td>
                <td class="num">{fmtNum(n.flow_rate)}</td>
                <td>
                  <Sparkline values={rates.current.get(n.name) ?? []} />
                </td>
                <td>
                  <LostList lost={n.lost} />
                </td>
                <td data-testid="node-stored-lost">
                  <LostList lost={n.stored_lost ?? {}} />
                </td>
              </tr>
            ))}
            {nodes.data && nodes.data.nodes.length === 0 && (
              <tr>
                <td colSpan={11} class="empty">
                  The relay reports no node
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </div>
  );
}
