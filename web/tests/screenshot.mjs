// The README's picture: the live Flows page at 1280x800 with a dropped flow's policy trace open.
//
//   node tests/screenshot.mjs --url http://127.0.0.1:8080 --out ../docs/dashboard.png
//
// Point it at a ui-server over live traffic (`make demo` plus `ui-server --state /tmp/vigil-demo
// --store sqlite:///tmp/vigil-demo/flows.db`).

import { parseArgs } from 'node:util';
import { launch } from './browser.mjs';

const { values: opts } = parseArgs({
  options: { url: { type: 'string' }, out: { type: 'string', default: 'dashboard.png' }, scheme: { type: 'string', default: 'light' } },
});
if (!opts.url) {
  console.error('usage: node tests/screenshot.mjs --url http://127.0.0.1:PORT [--out FILE] [--scheme light|dark]');
  process.exit(2);
}
const { browser, close } = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: opts.scheme === 'dark' ? 'dark' : 'light' });
  await page.goto(`${opts.url.replace(/\/$/, '')}/flows`);
  await page.waitForSelector('[data-testid=stream-status]:has-text("live")');
  // A screenful of live rows, then the newest drop with its trace.
  await page.waitForFunction(() => (window.__vigilStream?.received ?? 0) >= 40, null, { timeout: 60_000 });
  await page.waitForSelector('[data-testid=flow-row].v-drop', { timeout: 60_000 });
  await page.click('[data-testid=pause]');
  await page.click('[data-testid=flow-row].v-drop >> nth=0');
  await page.waitForSelector('[data-testid=detail-panel]');
  await page.mouse.move(0, 0);
  await page.screenshot({ path: opts.out, fullPage: true });
  console.log(`wrote ${opts.out}`);
} finally {
  await close();
}
