// The dashboard's browser tests: real Chromium against a real ui-server (backed by a real relay,
// real node-agents with lab traffic and a real SQLite store; ui-server/tests/browser.rs starts
// them). Every test saves a screenshot; the last line is "browser: N passed, N failed".
//
//   node tests/run.mjs --url http://127.0.0.1:PORT --out ../target/ui-screenshots [--only NAME]
//
// Assertions compare what the page shows with what the API answers at the same moment, so no
// expected value is written here; and no assertion is about timing.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { launch } from './browser.mjs';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    out: { type: 'string', default: '../target/ui-screenshots' },
    only: { type: 'string' },
    token: { type: 'string' },
    // A second ui-server started with --token: the dashboard must ask for it.
    'token-url': { type: 'string' },
    'token-value': { type: 'string' },
    // Waits for data (rows, chart marks): traffic takes a few seconds to reach the store.
    timeout: { type: 'string', default: '45000' },
  },
});
if (!opts.url) {
  console.error('usage: node tests/run.mjs --url http://127.0.0.1:PORT [--out DIR] [--only NAME]');
  process.exit(2);
}
const BASE = opts.url.replace(/\/$/, '');
const OUT = resolve(opts.out);
const WAIT = Number(opts.timeout);
mkdirSync(OUT, { recursive: true });

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

/** GET an API path as the page would, returning JSON (the tests compare the page with it). */
async function apiGet(path) {
  const headers = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};
  const r = await fetch(`${BASE}${path}`, { headers });
  const body = await r.text();
  if (!r.ok) throw new Failure(`${path}: ${r.status} ${body}`);
  return JSON.parse(body);
}

/** Texts of one column of the flows table. */
async function columnTexts(page, col) {
  return page.$$eval(`[data-testid=flow-row] [data-col=${col}]`, (els) => els.map((e) => e.textContent ?? ''));
}

/** Waits until `fn()` returns a truthy value; the page keeps refreshing by itself meanwhile. */
async function until(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Failure(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('flows-live', async (page) => {
  await page.goto(`${BASE}/flows`);
  await page.waitForSelector('[data-testid=stream-status]:has-text("live")', { timeout: WAIT });
  await until('5 flows from the live stream', async () => (await page.$$('[data-testid=flow-row]')).length >= 5);
  const verdicts = new Set(await columnTexts(page, 'verdict'));
  check([...verdicts].every((v) => v.length > 0), 'every row shows a verdict');
  // Lost flows are always on display, zero included.
  const lost = await page.textContent('[data-testid=lost-count]');
  check(/lost: \d/.test(lost ?? ''), `the lost-flow count is shown (got ${JSON.stringify(lost)})`);
  // Pause freezes the rows; resume brings the held ones.
  await page.click('[data-testid=pause]');
  const frozen = await page.textContent('[data-testid=flow-count]');
  await until('a flow arriving while paused', async () => /new/.test((await page.textContent('[data-testid=pause]')) ?? ''));
  check((await page.textContent('[data-testid=flow-count]')) === frozen, 'paused rows do not change');
  await page.click('[data-testid=pause]');
  await until('held flows shown after resume', async () => (await page.textContent('[data-testid=flow-count]')) !== frozen);
});

test('flows-verdict-filter', async (page) => {
  await page.goto(`${BASE}/flows`);
  await until('live flows', async () => (await page.$$('[data-testid=flow-row]')).length >= 1);
  await page.selectOption('[data-testid=filter-verdict]', 'DROPPED');
  await until('the URL carries the filter', async () => new URL(page.url()).searchParams.get('verdict') === 'DROPPED');
  await until('dropped flows only', async () => {
    const v = await columnTexts(page, 'verdict');
    return v.length >= 3 && v.every((x) => x === 'DROPPED');
  });
  // The same filter the other way: no dropped flow among forwarded ones.
  await page.selectOption('[data-testid=filter-verdict]', 'FORWARDED');
  await until('forwarded flows only', async () => {
    const v = await columnTexts(page, 'verdict');
    return v.length >= 3 && v.every((x) => x === 'FORWARDED');
  });
});

test('flow-detail-policy', async (page) => {
  // Dropped flows to SSH: the lab's ssh-client keeps trying, a Calico tier policy denies it.
  await page.goto(`${BASE}/flows?verdict=DROPPED&port=22`);
  await until('dropped SSH flows', async () => (await page.$$('[data-testid=flow-row]')).length >= 1);
  const rowPolicy = (await columnTexts(page, 'policy'))[0];
  await page.click('[data-testid=flow-row] >> nth=0');
  await page.waitForSelector('[data-testid=detail-panel]');
  const deciding = (await page.textContent('[data-testid=detail-policy]'))?.trim() ?? '';
  check(deciding.length > 0 && !deciding.startsWith('no policy'), `the detail panel names the deciding policy (got ${JSON.stringify(deciding)})`);
  check(deciding === rowPolicy, `the detail names the row's policy ${rowPolicy}, got ${deciding}`);
  // The trace holds the deciding hit with its tier, rule index and action.
  const hits = await page.$$eval('[data-testid=trace-enforced] tbody tr', (rows) =>
    rows.map((r) => ({ deciding: r.classList.contains('deciding'), cells: [...r.querySelectorAll('td')].map((c) => c.textContent ?? '') })),
  );
  const decidingHit = hits.find((h) => h.deciding);
  check(decidingHit, `the enforced trace highlights the deciding hit (trace: ${JSON.stringify(hits)})`);
  check(decidingHit.cells[3] === 'deny', `the deciding hit's action is deny (got ${decidingHit.cells[3]})`);
  check(/^\d+$/.test(decidingHit.cells[2] ?? ''), `the deciding hit has a rule index (got ${decidingHit.cells[2]})`);
  // Compare with the stored flow: the same policy decided the same pair.
  const stored = await apiGet(`/api/v1/flows?verdict=DROPPED&port=22&limit=5`);
  check(stored.flows.some((f) => f.policy === deciding), `stored dropped SSH flows are decided by ${deciding} too`);
});

test('drops-page', async (page) => {
  await page.goto(`${BASE}/drops`);
  await until('drops by policy', async () => (await page.$$('[data-testid=drops-by-policy-item]')).length >= 1);
  await until('drop bars over time', async () => (await page.$$('[data-testid=drops-over-time-bar]')).length >= 1);
  await until('top dropped pairs', async () => (await page.$$('[data-testid=drops-pair]')).length >= 1);
  const api = await apiGet('/api/v1/drops?since=15m');
  const shownPolicies = await page.$$eval('[data-testid=drops-by-policy-item] .barlist-label', (e) => e.map((x) => x.textContent));
  check(
    api.by_policy.some((p) => shownPolicies.includes(p.policy)),
    `the policies shown (${shownPolicies}) are the API's (${api.by_policy.map((p) => p.policy)})`,
  );
  await page.screenshot({ path: join(OUT, 'drops-charts.png'), fullPage: true });
  // Clicking a policy opens the Flows page filtered to its drops.
  // The element itself (rows are keyed by policy, so a refresh cannot swap it for another).
  const link = await page.$('[data-testid=drops-by-policy-item] a');
  const first = (await link.$eval('.barlist-label', (e) => e.textContent)) ?? '';
  await link.click();
  await until('the flows page', async () => new URL(page.url()).pathname === '/flows');
  const params = new URL(page.url()).searchParams;
  check(params.get('verdict') === 'DROPPED', `filtered to drops (${page.url()})`);
  check(!first.startsWith('(') ? params.get('policy') === first : true, `filtered to ${first} (${page.url()})`);
  await until(`dropped flows decided by ${first}`, async () => {
    const v = await columnTexts(page, 'verdict');
    const p = await columnTexts(page, 'policy');
    return v.length >= 1 && v.every((x) => x === 'DROPPED') && (first.startsWith('(') || p.every((x) => x === first));
  });
});

test('policies-page', async (page) => {
  await page.goto(`${BASE}/policies`);
  const api = await until('policies from the API', async () => {
    const r = await apiGet('/api/v1/policies?since=15m');
    return r.policies.some((p) => !p.never_hit) ? r : null;
  });
  await until('one row per policy', async () => (await page.$$('[data-testid=policy-row]')).length === api.policies.length);
  await until('hit counts shown', async () => (await page.$$('[data-testid=policy-row][data-never-hit=false]')).length >= 1);
  // Highlighted as never hit: exactly the ones the API says (the page refreshes; compare twice).
  await until('never-hit highlights match the API', async () => {
    const now = await apiGet('/api/v1/policies?since=15m');
    const shown = await page.$$eval('[data-testid=policy-row][data-never-hit=true] [data-testid=policy-name]', (e) => e.map((x) => x.textContent).sort());
    const want = now.policies.filter((p) => p.never_hit).map((p) => `${p.kind}/${p.namespace ? `${p.namespace}/` : ''}${p.name}`).sort();
    return JSON.stringify(shown) === JSON.stringify(want);
  });
  await until('hits over time', async () => (await page.$$('[data-testid=policy-hits-chart-bar]')).length >= 1);
  const staged = await apiGet('/api/v1/staged?since=15m');
  if (staged.would_deny.length > 0) {
    await until('staged would-deny pairs', async () => (await page.$$('[data-testid=staged-row]')).length >= 1);
  }
  // Selecting a policy with hits narrows the chart to it.
  await page.click('[data-testid=policy-row][data-never-hit=false] >> nth=0');
  await page.waitForSelector('h2:has-text("Hits over time by action:")');
});

test('service-map', async (page) => {
  await page.goto(`${BASE}/map`);
  await until('edges on the map', async () => (await page.$$('[data-testid=map-edge]')).length >= 2);
  const api = await apiGet('/api/v1/servicemap?since=15m');
  const nsApi = new Set(api.nodes.map((n) => n.namespace).filter(Boolean));
  await until('every namespace drawn at once', async () => (await page.$$('[data-testid=map-namespace-group]')).length >= nsApi.size);
  const verdicts = new Set(await page.$$eval('[data-testid=map-edge]', (e) => e.map((x) => x.getAttribute('data-verdict'))));
  if (api.edges.some((e) => e.dropped > 0)) check(verdicts.has('dropped'), 'dropped edges are drawn');
  if (api.edges.some((e) => e.forwarded > 0)) check(verdicts.has('forwarded'), 'forwarded edges are drawn');
  // Only dropped traffic: every edge left is a dropped one.
  await page.uncheck('[data-testid=map-show-forwarded]');
  await page.uncheck('[data-testid=map-show-audit]');
  await until('only dropped edges', async () => {
    const v = await page.$$eval('[data-testid=map-edge]', (e) => e.map((x) => x.getAttribute('data-verdict')));
    return v.length >= 1 && v.every((x) => x === 'dropped');
  });
});

test('sql-console', async (page) => {
  await page.goto(`${BASE}/sql`);
  // Once the store's dialect is known the page fills in its first example: wait for it, so the
  // text typed below replaces it instead of racing with it.
  await page.waitForFunction(() => (document.querySelector('[data-testid=sql-input]')?.value ?? '').length > 0, null, { timeout: WAIT });
  await page.fill('[data-testid=sql-input]', 'SELECT verdict, count(*) AS flows FROM flows GROUP BY verdict ORDER BY flows DESC');
  await page.click('[data-testid=sql-run]');
  await page.waitForSelector('[data-testid=sql-row]', { timeout: WAIT });
  const verdicts = await page.$$eval('[data-testid=sql-row] td:first-child', (e) => e.map((x) => x.textContent));
  check(verdicts.includes('FORWARDED') || verdicts.includes('DROPPED'), `verdict counts returned (${verdicts})`);
  // A result with a time column is charted.
  await page.click('[data-testid=sql-example] >> nth=0');
  await page.click('[data-testid=sql-run]');
  await until('a chart of the time column', async () => (await page.$$('[data-testid=sql-chart-bar], [data-testid=sql-chart-line]')).length >= 1);
  await page.screenshot({ path: join(OUT, 'sql-chart.png'), fullPage: true });
  // Writes are refused with the server's message, shown to the user.
  await page.fill('[data-testid=sql-input]', 'DELETE FROM flows');
  await page.click('[data-testid=sql-run]');
  const err = await page.waitForSelector('[data-testid=error]', { timeout: WAIT });
  check(/read-only|readonly|not allowed|refus/i.test((await err.textContent()) ?? ''), `the read-only refusal is shown: ${await err.textContent()}`);
});

test('nodes-page', async (page) => {
  await page.goto(`${BASE}/nodes`);
  const api = await apiGet('/api/v1/nodes');
  await until('one row per node', async () => (await page.$$('[data-testid=node-row]')).length === api.nodes.length && api.nodes.length > 0);
  await page.waitForSelector('[data-testid=relay-status] .big.ok');
  // The store's recorded losses (lost_events) are on screen: each source, or "none".
  await until("the store's recorded losses", async () => {
    const status = await apiGet('/api/v1/status');
    const stored = Object.entries(status.store.lost ?? {}).filter(([, v]) => v > 0);
    const shown = (await page.textContent('[data-testid=stored-lost]')) ?? '';
    return stored.length ? stored.every(([k]) => shown.includes(k)) : /none/.test(shown);
  });
  check((await page.$$('[data-testid=node-stored-lost]')).length === api.nodes.length, 'a stored-lost cell per node');
});

test('flows-history', async (page) => {
  await page.goto(`${BASE}/flows?range=15m`);
  await until('stored flows', async () => (await page.$$('[data-testid=flow-row]')).length >= 1);
  const api = await apiGet('/api/v1/flows?since=15m&limit=500');
  check(api.flows.length > 0, 'the store answers with flows');
  const count = await page.textContent('[data-testid=flow-count]');
  check(/^[1-9]/.test(count ?? ''), `the number of stored flows is shown (${count})`);
  check(await page.isVisible('[data-testid=load-more]'), 'pagination is offered');
  // The range's recorded losses are on screen: a count naming the sources, or "no events lost".
  const lost = Object.entries(api.lost ?? {}).filter(([, v]) => v > 0);
  const shown = (await page.textContent('[data-testid=history-lost]')) ?? '';
  check(lost.length ? lost.every(([k]) => shown.includes(k)) : /no events lost/.test(shown), `the range's losses are shown (${shown})`);
});

test('dark-scheme', async (page) => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${BASE}/flows`);
  await until('live flows', async () => (await page.$$('[data-testid=flow-row]')).length >= 1);
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const dark = await background();
  await page.click('[data-testid=theme-toggle]'); // auto -> dark (explicit)
  await page.click('[data-testid=theme-toggle]'); // dark -> light
  await until('the light scheme after the toggle', async () => (await background()) !== dark);
  await page.screenshot({ path: join(OUT, 'light-scheme.png') });
  await page.click('[data-testid=theme-toggle]'); // back to auto: dark here
  await until('the system\'s dark scheme again', async () => (await background()) === dark);
});

test('bearer-token', async (page) => {
  const url = opts['token-url'];
  const secret = opts['token-value'];
  if (!url || !secret) return 'skipped: no --token-url';
  // Without a token every API call answers 401: the dashboard asks for one.
  await page.goto(`${url}/nodes`);
  await page.waitForSelector('[data-testid=token-dialog]', { timeout: WAIT });
  await page.fill('[data-testid=token-input]', 'not-the-token');
  await page.click('[data-testid=token-save]');
  // A wrong one is refused by the server and asked for again.
  await page.waitForSelector('[data-testid=token-dialog]', { timeout: WAIT });
  await page.fill('[data-testid=token-input]', secret);
  await page.click('[data-testid=token-save]');
  await until('nodes with the token', async () => (await page.$$('[data-testid=node-row]')).length >= 1);
  check((await page.evaluate(() => localStorage.getItem('vigil.token'))) === secret, 'the token is kept in localStorage');
  // The WebSocket carries it as ?token=: live flows arrive.
  await page.goto(`${url}/flows`);
  await page.waitForSelector('[data-testid=stream-status]:has-text("live")', { timeout: WAIT });
  await until('live flows with the token', async () => ((await page.evaluate(() => window.__vigilStream?.received ?? 0)) ?? 0) >= 1);
});

const { browser, close } = await launch();
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  for (const t of tests) {
    if (opts.only && !opts.only.split(',').includes(t.name)) continue;
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    if (opts.token) await context.addInitScript((tok) => localStorage.setItem('vigil.token', tok), opts.token);
    const page = await context.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    const started = Date.now();
    try {
      const note = await t.fn(page);
      check(consoleErrors.length === 0, `uncaught errors in the page: ${consoleErrors.join('; ')}`);
      if (typeof note === 'string' && note.startsWith('skipped')) {
        skipped++;
        console.log(`ok - ${t.name} # ${note}`);
        continue;
      }
      passed++;
      console.log(`ok - ${t.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${t.name}: ${e instanceof Failure ? e.message : e?.stack ?? e}`);
    } finally {
      await page.screenshot({ path: join(OUT, `${t.name}.png`), fullPage: true }).catch(() => {});
      await context.close();
    }
  }
} finally {
  await close();
}
console.log(`screenshots in ${OUT}`);
console.log(`browser: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
