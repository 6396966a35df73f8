// The dashboard's shell: navigation, the live/history time-range switch, the colour scheme
// toggle and the token dialog; each page renders below them.

import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { onTokenNeeded, setToken, token } from './api';
import { useStored } from './hooks';
import { DropsPage } from './pages/drops';
import { FlowsPage } from './pages/flows';
import { NodesPage } from './pages/nodes';
import { PoliciesPage } from './pages/policies';
import { ServiceMapPage } from './pages/servicemap';
import { SqlPage } from './pages/sql';
import { href, linkClick, setParams, useRoute } from './router';
import { countFrames } from './stream';
import { fromLocalInput, rangeFrom, toLocalInput, type RangeKind } from './timerange';
import './styles.css';

const PAGES = [
  { path: '/flows', title: 'Flows', ranged: true },
  { path: '/drops', title: 'Drops', ranged: true },
  { path: '/policies', title: 'Policies', ranged: true },
  { path: '/map', title: 'Service map', ranged: true },
  { path: '/sql', title: 'SQL', ranged: false },
  { path: '/nodes', title: 'Nodes', ranged: false },
] as const;

type Theme = 'auto' | 'light' | 'dark';

function RangeSwitch({ params }: { params: URLSearchParams }) {
  const r = rangeFrom(params);
  const [since, setSince] = useState(toLocalInput(r.kind === 'custom' ? r.since : new Date(Date.now() - 3600e3).toISOString()));
  const [until, setUntil] = useState(r.until ? toLocalInput(r.until) : '');
  const pick = (k: RangeKind) =>
    setParams(k === 'live' ? { range: null, since: null, until: null } : k === 'custom' ? { range: 'custom', since: fromLocalInput(since) || null, until: fromLocalInput(until) || null } : { range: k, since: null, until: null }, false);
  return (
    <div class="range" data-testid="range-switch" role="group" aria-label="time range">
      {(['live', '15m', '1h', '24h', 'custom'] as RangeKind[]).map((k) => (
        <button type="button" key={k} class={r.kind === k ? 'active' : ''} aria-pressed={r.kind === k} data-testid={`range-${k}`} onClick={() => pick(k)}>
          {k === 'live' ? '● Live' : k === 'custom' ? 'Custom' : k}
        </button>
      ))}
      {r.kind === 'custom' && (
        <form
          class="custom-range"
          onSubmit={(e) => {
            e.preventDefault();
            pick('custom');
          }}
        >
          <input type="datetime-local" value={since} onInput={(e) => setSince((e.currentTarget as HTMLInputElement).value)} aria-label="since" />
          <span>→</span>
          <input type="datetime-local" value={until} onInput={(e) => setUntil((e.currentTarget as HTMLInputElement).value)} aria-label="until (empty: now)" />
          <button type="submit">Apply</button>
        </form>
      )}
    </div>
  );
}

function TokenDialog({ reason, onDone }: { reason: string; onDone: (t: string | null) => void }) {
  const [v, setV] = useState('');
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <div class="modal-back">
      <form
        class="modal"
        data-testid="token-dialog"
        onSubmit={(e) => {
          e.preventDefault();
          onDone(v.trim() || null);
        }}
      >
        <h3>Access token needed</h3>
        <p class="muted">{reason}</p>
        <p>The ui-server was started with a token. Enter it to continue; it is kept in this browser.</p>
        <input ref={input} type="password" value={v} data-testid="token-input" onInput={(e) => setV((e.currentTarget as HTMLInputElement).value)} />
        <div class="modal-actions">
          <button type="button" onClick={() => onDone(null)}>
            Cancel
          </button>
          <button type="submit" class="primary" data-testid="token-save">
            Save
          </button>
        </div>
      </form>
    </div>
  );
}

function App() {
  const route = useRoute();
  const [theme, setTheme] = useStored<Theme>('vigil.theme', 'auto');
  const [ask, setAsk] = useState<{ reason: string; resolve: (t: string | null) => void } | null>(null);

  // Applied during render, so the page never shows one frame in the old scheme.
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  useEffect(() => onTokenNeeded((reason) => new Promise((resolve) => setAsk({ reason, resolve }))), []);

  const path = route.path === '/' ? '/flows' : route.path;
  const page = PAGES.find((p) => p.path === path);
  const range = rangeFrom(route.params);
  let body;
  switch (page?.path) {
    case '/flows':
      body = <FlowsPage route={route} range={range} />;
      break;
    case '/drops':
      body = <DropsPage range={range} />;
      break;
    case '/policies':
      body = <PoliciesPage range={range} />;
      break;
    case '/map':
      body = <ServiceMapPage route={route} range={range} />;
      break;
    case '/sql':
      body = <SqlPage />;
      break;
    case '/nodes':
      body = <NodesPage />;
      break;
    default:
      body = (
        <div class="page empty" data-testid="not-found">
          No page at {route.path}. <a href="/flows">Go to Flows</a>
        </div>
      );
  }

  return (
    <div class="app" onClick={linkClick}>
      <header class="topbar">
        <a class="brand" href={href('/flows')}>
          <span class="logo" />
          Vigil
        </a>
        <nav>
          {PAGES.map((p) => (
            <a key={p.path} href={href(p.path)} class={p.path === path ? 'active' : ''} data-testid={`nav-${p.path.slice(1)}`}>
              {p.title}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        {page?.ranged && <RangeSwitch params={route.params} />}
        <button
          type="button"
          class="icon"
          data-testid="theme-toggle"
          title={`colour scheme: ${theme} (click to change)`}
          onClick={() => setTheme(theme === 'auto' ? 'dark' : theme === 'dark' ? 'light' : 'auto')}
        >
          {theme === 'auto' ? '◐' : theme === 'dark' ? '☾' : '☀'}
        </button>
        {token() && (
          <button
            type="button"
            class="icon"
            title="forget the access token"
            onClick={() => {
              setToken(null);
              location.reload();
            }}
          >
            ⎋
          </button>
        )}
      </header>
      <main>{body}</main>
      {ask && (
        <TokenDialog
          reason={ask.reason}
          onDone={(t) => {
            ask.resolve(t);
            setAsk(null);
          }}
        />
      )}
    </div>
  );
}

countFrames();
render(<App />, document.getElementById('app')!);
