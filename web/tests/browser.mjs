// Launching Debian's Chromium through playwright-core (no browser download: the closed
// network refuses it). Shared by the browser tests, the benchmark and the screenshot script.

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A headless Chromium; playwright gives every launch a fresh temporary profile (its own
 *  --user-data-dir, removed on close), so no state leaks from one run to the next. */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; scripts/setup.sh does it)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without the background-networking flags Chromium's own connections are refused by the
    // closed network and slow every start.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const close = async () => {
    await browser.close().catch(() => {});
  };
  return { browser, close };
}
