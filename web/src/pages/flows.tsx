// The Flows page: live from the WebSocket (virtualized rows over a bounded ring, rendered once
// per animation frame, pause/resume, lost-flow counts) or, in history mode, stored flows page by
// page from /api/v1/flows. Filters live in the URL and go to the server as parameters.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, query, type Params } from '../api';
import { ErrorBox } from '../components/ErrorBox';
import { VirtualTable, type Column } from '../components/VirtualTable';
import { endpoint, fmtDateTime, fmtNum, fmtTime } from '../format';
import { useStored } from '../hooks';
import { href, setParams, type Route } from '../router';
import { FlowStream } from '../stream';
import type { TimeRange } from '../timerange';
import type { Flow, FlowsPage as FlowsPageData, Hit } from '../types';

/** The filter parameters of docs/ui-api.md, in the order the bar shows them. */
export const FILTER_KEYS = ['namespace', 'pod', 'verdict', 'policy', 'port', 'protocol', 'q'] as const;
/** Further parameters other pages link with; shown as removable chips. */
export const EXTRA_KEYS = ['from_pod', 'to_pod', 'ip', 'node', 'direction', 'drop_reason'] as const;
const ALL_KEYS = [...FILTER_KEYS, ...EXTRA_KEYS];

const BUFFER = 20_000;
/** Stored flows shown under the live ones when the stream starts. */
const BACKFILL = 200;
const PAGE = 500;
/** History pages kept in memory at most (PAGE flows each). */
const MAX_PAGES = 40;

function filtersOf(params: URLSearchParams): Params {
  const out: Params = {};
  for (const k of ALL_KEYS) {
    const v = params.getAll(k).filter((x) => x !== '');
    if (v.length) out[k] = v;
  }
  return out;
}

export function verdictClass(v: string): string {
  switch (v) {
    case 'FORWARDED':
      return 'v-fwd';
    case 'DROPPED':
      return 'v-drop';
    case 'AUDIT':
      return 'v-audit';
    default:
      return 'v-other';
  }
}

const COLUMNS: Column<Flow>[] = [
  { key: 'time', title: 'Time', width: '104px', render: (f) => <span title={f.time}>{fmtTime(f.time)}</span> },
  { key: 'node', title: 'Node', width: '70px', render: (f) => f.node },
  { key: 'src', title: 'Source', width: 'minmax(120px, 1.3fr)', render: (f) => <span title={`${f.src.ip}:${f.src.port}`}>{endpoint(f.src)}</span> },
  { key: 'dst', title: 'Destination', width: 'minmax(120px, 1.3fr)', render: (f) => <span title={`${f.dst.ip}:${f.dst.port}`}>{endpoint(f.dst)}</span> },
  { key: 'port', title: 'Port', width: '60px', render: (f) => (f.dst.port ? String(f.dst.port) : '') },
  { key: 'protocol', title: 'Proto', width: '56px', render: (f) => f.protocol },
  {
    key: 'direction',
    title: 'Dir',
    width: '84px',
    render: (f) => `${f.direction === 'INGRESS' ? 'ingress' : f.direction === 'EGRESS' ? 'egress' : '?'}${f.is_reply ? ' ↩' : ''}`,
  },
  { key: 'verdict', title: 'Verdict', width: '100px', render: (f) => <span class={`verdict ${verdictClass(f.verdict)}`}>{f.verdict}</span> },
  { key: 'drop_reason', title: 'Reason', width: '100px', render: (f) => f.drop_reason },
  { key: 'policy', title: 'Policy', width: 'minmax(140px, 1.6fr)', render: (f) => <PolicyCell f={f} /> },
  { key: 'flags', title: 'Flags', width: '74px', render: (f) => f.tcp_flags },
  { key: 'summary', title: 'Summary', width: 'minmax(100px, 1fr)', render: (f) => f.summary },
];
const DEFAULT_COLUMNS = ['time', 'src', 'dst', 'port', 'protocol', 'direction', 'verdict', 'policy', 'node'];

/** The last hit of one view (enforced or pending): the one that decided in that view. */
function lastHit(f: Flow, enforcement: 'enforced' | 'pending'): Hit | undefined {
  return f.hits.findLast((h) => (enforcement === 'pending' ? h.enforcement === 'pending' : h.enforcement !== 'pending'));
}

/** What decided a flow no policy decided: the trace says (default allow, reply, ...). */
function noPolicy(f: Flow): string {
  const h = lastHit(f, 'enforced');
  if (h?.hit_kind === 'default-allow') return 'default allow';
  if (f.is_reply) return 'reply (conntrack)';
  return h?.hit_kind.replace(/-/g, ' ') ?? '';
}

/** For an AUDIT flow, the staged policy whose decision (would deny) it reports. */
function stagedDecider(f: Flow): string {
  const h = lastHit(f, 'pending');
  return h && h.name ? policyRef(h) : '';
}

function PolicyCell({ f }: { f: Flow }) {
  if (f.verdict === 'AUDIT' && stagedDecider(f)) {
    return (
      <span class="staged-decider" title="the staged (pending) view's decision">
        staged: {stagedDecider(f)}
      </span>
    );
  }
  return f.policy ? <>{f.policy}</> : <span class="muted">{noPolicy(f)}</span>;
}

export function FlowsPage({ route, range }: { route: Route; range: TimeRange }) {
  const filters = useMemo(() => filtersOf(route.params), [route.params.toString()]);
  const [shown, setShown] = useStored<string[]>('vigil.flows.columns', DEFAULT_COLUMNS);
  const columns = COLUMNS.filter((c) => shown.includes(c.key));
  const [selected, setSelected] = useState<Flow | null>(null);

  return (
    <div class="page flows-page">
      <FilterBar params={route.params} />
      <div class="flows-main">
        <div class="flows-table">
          {range.live ? (
            <LiveFlows filters={filters} columns={columns} shown={shown} setShown={setShown} selected={selected} onSelect={setSelected} />
          ) : (
            <HistoryFlows filters={filters} range={range} columns={columns} shown={shown} setShown={setShown} selected={selected} onSelect={setSelected} />
          )}
        </div>
        {selected && <FlowDetail flow={selected} onClose={() => setSelected(null)} />}
      </div>
    </div>
  );
}

interface TableProps {
  filters: Params;
  columns: Column<Flow>[];
  shown: string[];
  setShown: (c: string[]) => void;
  selected: Flow | null;
  onSelect: (f: Flow) => void;
}

function LiveFlows(p: TableProps) {
  const [, render] = useState(0);
  const stream = useRef<FlowStream | null>(null);
  const lastSize = useRef(0);
  const key = JSON.stringify(p.filters);

  useEffect(() => {
    const s = new FlowStream(p.filters, BUFFER, () => render((n) => n + 1));
    stream.current = s;
    lastSize.current = 0;
    // The stream starts now: show the latest stored flows beneath it meanwhile.
    const ctl = new AbortController();
    api<FlowsPageData>(`/api/v1/flows${query({ ...p.filters, since: '15m', limit: BACKFILL })}`, { signal: ctl.signal })
      .then((r) => s.backfill(r.flows))
      .catch((e: unknown) => {
        if (!(e instanceof DOMException && e.name === 'AbortError')) s.note(`recent stored flows: ${e instanceof Error ? e.message : String(e)}`);
      });
    return () => {
      ctl.abort();
      s.close();
    };
  }, [key]);

  const s = stream.current;
  if (!s) return null;
  const st = s.state;
  // Rows added on top since the last render (the ring's size stops growing once full).
  const prepended = Math.max(0, s.inserted - lastSize.current);
  lastSize.current = s.inserted;
  const lostSources = Object.entries(st.lost);

  return (
    <>
      <div class="toolbar">
        <button type="button" data-testid="pause" aria-pressed={st.paused} onClick={() => s.setPaused(!st.paused)}>
          {st.paused ? `▶ Resume${st.held ? ` (${fmtNum(st.held)} new)` : ''}` : '❚❚ Pause'}
        </button>
        <button type="button" onClick={() => s.clear()}>
          Clear
        </button>
        <span class={`status-dot s-${st.status}`} data-testid="stream-status" title={st.status}>
          {st.status === 'open' ? 'live' : st.status}
        </span>
        <span class="stat" data-testid="flow-count">
          {fmtNum(s.ring.size)} shown
        </span>
        <span class="stat">{fmtNum(st.received)} live</span>
        {st.backfilled > 0 && <span class="stat muted">+{fmtNum(st.backfilled)} stored</span>}
        <span class="stat">{fmtNum(st.rate)}/s</span>
        <span
          class={`stat ${st.lostTotal ? 'lost' : ''}`}
          data-testid="lost-count"
          title={lostSources.length ? lostSources.map(([k, v]) => `${k}: ${v}`).join('\n') : 'no flow lost'}
        >
          lost: {fmtNum(st.lostTotal)}
          {lostSources.length ? ` (${lostSources.map(([k, v]) => `${k} ${fmtNum(v)}`).join(', ')})` : ''}
        </span>
        {st.evicted > 0 && (
          <span class="stat muted" title="The view keeps the newest flows; older ones are in History.">
            {fmtNum(st.evicted)} older rolled out of the {fmtNum(BUFFER)}-row view
          </span>
        )}
        <NodeChips nodes={st.nodes} />
        <span class="spacer" />
        <ColumnToggle shown={p.shown} setShown={p.setShown} />
      </div>
      <ErrorBox error={st.error} />
      <VirtualTable
        columns={p.columns}
        count={s.ring.size}
        row={(i) => s.ring.get(i)}
        rowKey={(f) => f.uuid}
        version={s.version}
        prepended={prepended}
        selected={p.selected?.uuid ?? null}
        onSelect={p.onSelect}
        testid="flows-table"
        rowTestid="flow-row"
        rowClass={(f) => verdictClass(f.verdict)}
        empty={st.status === 'open' ? 'Waiting for flows that match…' : 'Connecting…'}
      />
    </>
  );
}

function NodeChips({ nodes }: { nodes: Record<string, { state: string; message: string }> }) {
  return (
    <>
      {Object.entries(nodes).map(([name, n]) => (
        <span key={name} class={`chip ${n.state === 'NODE_CONNECTED' ? 'ok' : 'bad'}`} title={n.message}>
          {name} {n.state === 'NODE_CONNECTED' ? '✓' : `: ${n.state.replace('NODE_', '').toLowerCase()}`}
        </span>
      ))}
    </>
  );
}

/** The events recorded lost in the history range, or that none were. */
function HistoryLost({ lost }: { lost: Record<string, number> | null }) {
  if (!lost) return null;
  const items = Object.entries(lost).filter(([, v]) => v > 0);
  const total = items.reduce((a, [, v]) => a + v, 0);
  if (!total) {
    return (
      <span class="stat muted" data-testid="history-lost">
        no events lost in this range
      </span>
    );
  }
  return (
    <span class="chip bad" data-testid="history-lost" title={items.map(([k, v]) => `${k}: ${fmtNum(v)}`).join('\n')}>
      {fmtNum(total)} events lost in this range ({items.map(([k]) => k).join(', ')})
    </span>
  );
}

function HistoryFlows(p: TableProps & { range: TimeRange }) {
  const [flows, setFlows] = useState<Flow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [version, setVersion] = useState(0);
  // What the store recorded lost in this range (from the first page): history shows its gaps.
  const [lost, setLost] = useState<Record<string, number> | null>(null);
  const base: Params = { ...p.filters, since: p.range.since, until: p.range.until || undefined, limit: PAGE };
  const key = JSON.stringify(base);

  const load = (cursor: string | null, prev: Flow[]) => {
    setLoading(true);
    api<FlowsPageData>(`/api/v1/flows${query({ ...base, cursor })}`)
      .then((r) => {
        const all = prev.concat(r.flows);
        setFlows(all.length > PAGE * MAX_PAGES ? all.slice(all.length - PAGE * MAX_PAGES) : all);
        setNext(r.next);
        if (r.lost) setLost(r.lost);
        setError(null);
        setVersion((v) => v + 1);
      })
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)))
      .finally(() => setLoading(false));
  };

  useEffect(() => {
    setFlows([]);
    setNext(null);
    setLost(null);
    load(null, []);
  }, [key]);

  return (
    <>
      <div class="toolbar">
        <span class="stat" data-testid="flow-count">
          {fmtNum(flows.length)} stored flows{next ? ' (more available)' : ''}
        </span>
        <span class="stat muted">
          {p.range.kind === 'custom' ? `${fmtDateTime(p.range.since)} → ${p.range.until ? fmtDateTime(p.range.until) : 'now'}` : `last ${p.range.since}`}, newest first
        </span>
        <HistoryLost lost={lost} />
        <button type="button" data-testid="load-more" disabled={!next || loading} onClick={() => load(next, flows)}>
          {loading ? 'Loading…' : next ? `Load ${PAGE} older` : 'No older flows'}
        </button>
        <button type="button" onClick={() => load(null, [])} disabled={loading}>
          Refresh
        </button>
        <span class="spacer" />
        <ColumnToggle shown={p.shown} setShown={p.setShown} />
      </div>
      <ErrorBox error={error} onRetry={() => load(null, [])} />
      <VirtualTable
        columns={p.columns}
        count={flows.length}
        row={(i) => flows[i]}
        rowKey={(f) => f.uuid}
        version={version}
        selected={p.selected?.uuid ?? null}
        onSelect={p.onSelect}
        testid="flows-table"
        rowTestid="flow-row"
        rowClass={(f) => verdictClass(f.verdict)}
        empty={loading ? 'Loading…' : 'No stored flow matches in this range'}
      />
    </>
  );
}

function ColumnToggle({ shown, setShown }: { shown: string[]; setShown: (c: string[]) => void }) {
  return (
    <details class="dropdown" data-testid="column-toggle">
      <summary>Columns</summary>
      <div class="dropdown-menu">
        {COLUMNS.map((c) => (
          <label key={c.key}>
            <input
              type="checkbox"
              checked={shown.includes(c.key)}
              data-testid={`column-${c.key}`}
              onChange={(e) => {
                const on = (e.currentTarget as HTMLInputElement).checked;
                setShown(on ? COLUMNS.map((x) => x.key).filter((k) => k === c.key || shown.includes(k)) : shown.filter((k) => k !== c.key));
              }}
            />
            {c.title}
          </label>
        ))}
      </div>
    </details>
  );
}

const VERDICTS = ['', 'FORWARDED', 'DROPPED', 'AUDIT', 'ERROR', 'REDIRECTED', 'TRACED', 'TRANSLATED'];
const PROTOCOLS = ['', 'TCP', 'UDP', 'ICMPv4', 'ICMPv6', 'SCTP'];

/** The filter bar: edits are applied together (Enter or Apply), so the stream restarts once. */
function FilterBar({ params }: { params: URLSearchParams }) {
  const initial = () => Object.fromEntries(FILTER_KEYS.map((k) => [k, params.getAll(k).join(',')])) as Record<string, string>;
  const [draft, setDraft] = useState(initial);
  const paramKey = params.toString();
  useEffect(() => setDraft(initial()), [paramKey]);

  const apply = (d: Record<string, string>) => {
    const changes: Record<string, string[] | null> = {};
    for (const k of FILTER_KEYS) {
      // Commas give several values (ORed by the server), except in free text.
      const v = d[k] ?? '';
      changes[k] = k === 'q' ? (v.trim() ? [v.trim()] : null) : v.split(',').map((x) => x.trim()).filter(Boolean);
      if (changes[k]?.length === 0) changes[k] = null;
    }
    setParams(changes, false);
  };
  const set = (k: string, v: string, now = false) => {
    const d = { ...draft, [k]: v };
    setDraft(d);
    if (now) apply(d);
  };
  const text = (k: string, label: string, placeholder: string, width: string) => (
    <label class="field" style={{ width }}>
      <span>{label}</span>
      <input
        type="text"
        value={draft[k]}
        placeholder={placeholder}
        data-testid={`filter-${k}`}
        onInput={(e) => set(k, (e.currentTarget as HTMLInputElement).value)}
      />
    </label>
  );
  const extras = EXTRA_KEYS.flatMap((k) => params.getAll(k).map((v) => [k, v] as const));

  return (
    <form
      class="filterbar"
      data-testid="filter-bar"
      onSubmit={(e) => {
        e.preventDefault();
        apply(draft);
      }}
    >
      {text('namespace', 'Namespace', 'shop', '110px')}
      {text('pod', 'Pod', 'shop/frontend', '140px')}
      <label class="field">
        <span>Verdict</span>
        <select value={draft.verdict} data-testid="filter-verdict" onChange={(e) => set('verdict', (e.currentTarget as HTMLSelectElement).value, true)}>
          {VERDICTS.map((v) => (
            <option key={v} value={v}>
              {v || 'any'}
            </option>
          ))}
          {draft.verdict && !VERDICTS.includes(draft.verdict) && <option value={draft.verdict}>{draft.verdict}</option>}
        </select>
      </label>
      {text('policy', 'Policy', 'deny-ssh', '150px')}
      {text('port', 'Port', '443', '64px')}
      <label class="field">
        <span>Protocol</span>
        <select value={draft.protocol} data-testid="filter-protocol" onChange={(e) => set('protocol', (e.currentTarget as HTMLSelectElement).value, true)}>
          {PROTOCOLS.map((v) => (
            <option key={v} value={v}>
              {v || 'any'}
            </option>
          ))}
        </select>
      </label>
      {text('q', 'Search', 'pods, IPs, policies', '170px')}
      <button type="submit" class="primary" data-testid="filter-apply">
        Apply
      </button>
      <button
        type="button"
        onClick={() => setParams(Object.fromEntries(ALL_KEYS.map((k) => [k, null])), false)}
        data-testid="filter-clear"
      >
        Clear
      </button>
      {extras.map(([k, v]) => (
        <span class="chip" key={`${k}=${v}`} data-testid="filter-chip">
          {k.replace('_', ' ')}: {v}
          <button type="button" aria-label={`remove ${k}`} onClick={() => setParams({ [k]: params.getAll(k).filter((x) => x !== v) }, false)}>
            ×
          </button>
        </span>
      ))}
    </form>
  );
}

function policyRef(h: Hit): string {
  return `${h.kind}/${h.namespace ? `${h.namespace}/` : ''}${h.name}`;
}

/** A flow in full: both peers, and the policy trace (enforced, then pending hits). */
function FlowDetail({ flow, onClose }: { flow: Flow; onClose: () => void }) {
  const enforced = flow.hits.filter((h) => h.enforcement !== 'pending');
  const pending = flow.hits.filter((h) => h.enforcement === 'pending');
  // The deciding hit: the last enforced one naming the deciding policy (earlier ones may be a
  // Pass or Log of the same policy).
  const deciding = flow.policy ? enforced.findLast((h) => policyRef(h) === flow.policy) : undefined;
  const peer = (title: string, x: Flow['src']) => (
    <div class="peer">
      <h4>{title}</h4>
      <dl>
        <dt>Pod</dt>
        <dd>{x.pod ? `${x.namespace}/${x.pod}` : '—'}</dd>
        <dt>Workload</dt>
        <dd>{x.workload || '—'}</dd>
        <dt>Address</dt>
        <dd>
          {x.ip}
          {x.port ? `:${x.port}` : ''}
        </dd>
        <dt>Identity</dt>
        <dd>{x.identity}</dd>
        <dt>Labels</dt>
        <dd class="labels">{x.labels.length ? x.labels.map((l) => <code key={l}>{l}</code>) : '—'}</dd>
      </dl>
    </div>
  );
  const hitTable = (hits: Hit[], testid: string, decider?: Hit) => (
    <table class="hits" data-testid={testid}>
      <thead>
        <tr>
          <th>Policy</th>
          <th>Tier</th>
          <th>Rule</th>
          <th>Action</th>
        </tr>
      </thead>
      <tbody>
        {hits.map((h, i) => (
          <tr key={i} class={h === decider ? 'deciding' : ''} data-testid="hit-row">
            <td class="hit-policy">
              {h.name ? (
                <a href={href('/flows', { policy: policyRef(h) })} title={policyRef(h)}>
                  <span class="muted small hit-kind">{h.kind}</span>
                  {h.namespace ? `${h.namespace}/` : ''}
                  {h.name}
                </a>
              ) : (
                <span class="muted">{h.hit_kind}</span>
              )}
            </td>
            <td>{h.tier || '—'}</td>
            <td title={`${h.hit_kind} (${h.direction.toLowerCase()})`}>{typeof h.rule_index === 'number' && h.rule_index >= 0 ? h.rule_index : h.hit_kind.replace(/-/g, ' ')}</td>
            <td>
              <span class={`action a-${h.action || 'none'}`}>{h.action || '—'}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );

  return (
    <aside class="detail" data-testid="detail-panel">
      <header>
        <h3>
          <span class={`verdict ${verdictClass(flow.verdict)}`}>{flow.verdict}</span> {flow.protocol} {flow.dst.port || ''}
        </h3>
        <button type="button" onClick={onClose} aria-label="close" data-testid="detail-close">
          ×
        </button>
      </header>
      <div class="decided">
        <span class="muted">Decided by</span>{' '}
        <strong data-testid="detail-policy">{flow.policy || `no policy: ${noPolicy(flow) || 'default'}`}</strong>
        {flow.drop_reason && <span class="muted"> · {flow.drop_reason}</span>}
        {stagedDecider(flow) && stagedDecider(flow) !== flow.policy && (
          <div data-testid="detail-staged">
            <span class="muted">Staged view</span>{' '}
            <span class={`action a-${lastHit(flow, 'pending')?.action ?? ''}`}>{lastHit(flow, 'pending')?.action}</span> by{' '}
            <strong>{stagedDecider(flow)}</strong>
          </div>
        )}
      </div>
      <h4>Enforced trace</h4>
      {enforced.length ? hitTable(enforced, 'trace-enforced', deciding) : <div class="empty small">No enforced hit recorded</div>}
      <h4>Pending (staged) trace</h4>
      {pending.length ? hitTable(pending, 'trace-pending') : <div class="empty small">No staged policy matched</div>}
      <dl class="meta">
        <dt>Time</dt>
        <dd>{flow.time}</dd>
        <dt>Node</dt>
        <dd>{flow.node}</dd>
        <dt>Direction</dt>
        <dd>
          {flow.direction}
          {flow.is_reply === true ? ' (reply)' : flow.is_reply === false ? '' : ' (reply unknown)'}
        </dd>
        <dt>TCP flags</dt>
        <dd>{flow.tcp_flags || '—'}</dd>
        <dt>Summary</dt>
        <dd>{flow.summary || '—'}</dd>
        <dt>UUID</dt>
        <dd class="mono">{flow.uuid}</dd>
      </dl>
      <div class="peers">
        {peer('Source', flow.src)}
        {peer('Destination', flow.dst)}
      </div>
      {flow.policy && (
        <p>
          <a href={href('/flows', { policy: flow.policy })}>Flows decided by {flow.policy} →</a>
        </p>
      )}
    </aside>
  );
}
