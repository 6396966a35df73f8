// WebSocket delivery to one browser tab at 5,000 flows/s: the real pipeline, measured at the
// tab. A two-node lab whose agents report every packet (`--aggregation none`), a paced UDP
// load between two pods (each request and its echo cross both nodes' veths: 4 flows), the relay
// storing into SQLite, the ui-server, and Chromium showing the live Flows page. Reports the
// flows the tab received per second, the flows reported lost (`lost` frames and the
// ui-server's own count) and the tab's frame rate (requestAnimationFrame callbacks per second).
//
// Run as root after `cargo build --release --workspace --bins`:
//   node web/bench/ws-5k.mjs [--pps 1250] [--seconds 20] [--bin target/release]
//                            [--throttle 20] [--queue 4096]
//
// It removes everything it created, also on Ctrl-C.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launch } from '../tests/browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const { values: opts } = parseArgs({
  options: {
    pps: { type: 'string', default: '1250' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    bin: { type: 'string', default: join(root, 'target/release') },
    queue: { type: 'string' },
    // Chromium's CPU throttling factor (DevTools' "slow CPU"): a tab that cannot keep up, to
    // see its loss counted and reported.
    throttle: { type: 'string' },
  },
});
const BIN = resolve(opts.bin);
const SECONDS = Number(opts.seconds);
const WARMUP = Number(opts.warmup);

const TOPOLOGY = `
nodes:
  - name: node-1
  - name: node-2
namespaces:
  - name: bench
    labels: {team: bench}
pods:
  - name: load
    namespace: bench
    node: node-1
    labels: {app: load}
  - name: sink
    namespace: bench
    node: node-2
    labels: {app: sink}
    serve: [udp:9000]
`;
// A policy on the sink so every flow carries a policy trace, as real traffic does.
const POLICY = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: sink-from-load
  namespace: bench
spec:
  endpointSelector: {matchLabels: {app: sink}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: load}}]
      toPorts: [{ports: [{port: "9000", protocol: UDP}]}]
`;

for (const b of ['lab', 'node-agent', 'relay', 'ui-server']) {
  if (!existsSync(join(BIN, b))) {
    console.error(`${join(BIN, b)} is missing: cargo build --release --workspace --bins`);
    process.exit(2);
  }
}

const prefix = `b${(process.pid & 0xfffff).toString(16).padStart(5, '0')}`;
const state = join(tmpdir(), `vigil-bench-${prefix}`);
const bpffs = `/sys/fs/bpf/${prefix}`;
const children = [];
let labUp = false;

function cleanup() {
  for (const c of children.reverse()) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  for (const node of ['node-1', 'node-2']) {
    spawnSync(join(BIN, 'node-agent'), ['--node', node, '--uninstall', '--state', state, '--bpffs', bpffs]);
  }
  if (labUp) spawnSync(join(BIN, 'lab'), ['down', '--state', state]);
  rmSync(bpffs, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function run(cmd, args, opt = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opt });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function start(name, cmd, args) {
  const log = openSync(join(state, `${name}.log`), 'w');
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', log], env: { ...process.env, RUST_LOG: 'info' } });
  children.push(c);
  return c;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(`127.0.0.1:${port}`));
    });
  });
}

async function waitFor(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {}
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  rmSync(state, { recursive: true, force: true });
  mkdirSync(join(state, 'policies'), { recursive: true });
  writeFileSync(join(state, 'topology.yaml'), TOPOLOGY);

  const dist = join(state, 'web-dist');
  console.error('bench: building the dashboard');
  run('npm', ['run', 'build', '--', '--emptyOutDir', '--outDir', dist], { cwd: join(root, 'web') });

  console.error('bench: lab, agents (--aggregation none), relay, ui-server');
  labUp = true;
  run(join(BIN, 'lab'), ['up', join(state, 'topology.yaml'), '--state', state, '--prefix', prefix]);
  writeFileSync(join(state, 'policies', 'sink.yaml'), POLICY);
  for (const node of ['node-1', 'node-2']) {
    start(`agent-${node}`, join(BIN, 'node-agent'), [
      '--node', node, '--state', state, '--bpffs', bpffs, '--aggregation', 'none',
      '--listen', '127.0.0.1:0', '--metrics', 'none', '--poll-ms', '100',
    ]);
  }
  for (const node of ['node-1', 'node-2']) {
    await waitFor(`${node}'s agent`, () => {
      const s = JSON.parse(readFileSync(join(state, 'status', `${node}.json`), 'utf8'));
      return s.generation > 0 && typeof s.observer === 'string';
    });
  }
  const relay = await freePort();
  start('relay', join(BIN, 'relay'), ['--state', state, '--listen', relay, '--metrics', 'none', '--store', `sqlite://${join(state, 'flows.db')}`]);
  const ui = await freePort();
  const uiArgs = ['--listen', ui, '--relay', relay, '--store', `sqlite://${join(state, 'flows.db')}`, '--state', state, '--web', dist];
  if (opts.queue) uiArgs.push('--stream-queue', opts.queue);
  start('ui-server', join(BIN, 'ui-server'), uiArgs);
  await waitFor('the ui-server', async () => (await fetch(`http://${ui}/healthz`)).ok);
  await waitFor('both nodes connected', async () => {
    const s = await (await fetch(`http://${ui}/api/v1/status`)).json();
    return s.relay.num_connected_nodes === 2;
  });

  console.error(`bench: load ${opts.pps} requests/s (x4 flows) for ${WARMUP + SECONDS + 2} s`);
  const load = start('load', join(BIN, 'lab'), [
    'exec', '--state', state, 'bench/load', '--',
    process.execPath, join(here, 'udp-load.mjs'), '10.200.2.10', '9000', opts.pps, String(WARMUP + SECONDS + 2),
  ]);

  const { browser, close } = await launch();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    if (opts.throttle) {
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: Number(opts.throttle) });
    }
    await page.goto(`http://${ui}/flows`);
    await page.evaluate(() => {
      window.__longTasks = 0;
      window.__longTaskMs = 0;
      new PerformanceObserver((l) => {
        for (const e of l.getEntries()) {
          window.__longTasks++;
          window.__longTaskMs += e.duration;
        }
      }).observe({ type: 'longtask', buffered: false });
    });
    await sleep(WARMUP * 1000);
    const sample = () =>
      page.evaluate(() => ({
        t: performance.now(),
        frames: window.__vigilFrames ?? 0,
        received: window.__vigilStream?.received ?? 0,
        lost: window.__vigilStream?.lostTotal ?? 0,
        renders: window.__vigilStream?.renders ?? 0,
        longTasks: window.__longTasks,
        longTaskMs: window.__longTaskMs,
        rows: document.querySelectorAll('[data-testid=flow-row]').length,
        shown: document.querySelector('[data-testid=flow-count]')?.textContent ?? '',
      }));
    const statusBefore = await (await fetch(`http://${ui}/api/v1/status`)).json();
    const a = await sample();
    await sleep(SECONDS * 1000);
    const b = await sample();
    const statusAfter = await (await fetch(`http://${ui}/api/v1/status`)).json();
    const secs = (b.t - a.t) / 1000;
    const received = b.received - a.received;
    const lost = b.lost - a.lost;
    const result = {
      seconds: Number(secs.toFixed(1)),
      offered_flows_per_s: Math.round((received + lost) / secs),
      received_flows_per_s: Math.round(received / secs),
      lost_flows: lost,
      lost_percent: Number(((100 * lost) / Math.max(1, received + lost)).toFixed(2)),
      ui_server_stream_lost: statusAfter.ui.stream_lost - statusBefore.ui.stream_lost,
      upstream_lost: statusAfter.lost,
      fps: Number(((b.frames - a.frames) / secs).toFixed(1)),
      renders_per_s: Number(((b.renders - a.renders) / secs).toFixed(1)),
      long_tasks: b.longTasks - a.longTasks,
      long_task_ms: Math.round(b.longTaskMs - a.longTaskMs),
      rows_in_dom: b.rows,
      view: b.shown,
    };
    console.log(JSON.stringify(result));
    console.log(
      `ws-5k: ${result.received_flows_per_s} flows/s delivered to the tab (offered ${result.offered_flows_per_s}/s), ` +
        `${result.lost_flows} lost (${result.lost_percent}%), ${result.fps} frames/s, ${result.long_tasks} long tasks (${result.long_task_ms} ms) over ${result.seconds} s`,
    );
    await page.screenshot({ path: join(state, '..', `vigil-bench-${prefix}.png`) }).catch(() => {});
  } finally {
    await close();
    load.kill('SIGKILL');
  }
}

main()
  .catch((e) => {
    console.error(`bench: ${e.stack ?? e}`);
    for (const n of ['relay', 'ui-server', 'agent-node-1', 'agent-node-2']) {
      try {
        console.error(`--- ${n}.log\n${readFileSync(join(state, `${n}.log`), 'utf8').split('\n').slice(-15).join('\n')}`);
      } catch {}
    }
    process.exitCode = 1;
  })
  .finally(cleanup);
