// Opens Selkies' own web client in headless Chromium, screenshots it next to an x11grab of
// the display, resizes the viewport (Selkies then resizes the screen and calls
// update_capture_region) and does it again. Usage: node page.mjs URL DISPLAY OUT_PREFIX
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';

// playwright-core is installed by tests/browser's `npm ci`.
const require = createRequire(new URL('../browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, display, out] = process.argv.slice(2);

/**
 * Waits until the page's picture has settled: two screenshots a second apart are the same
 * (the fixed wait alone stood in for this; on a loaded machine the client may still be
 * connecting or painting after it). At least `minMs` (the old fixed wait), at most `maxMs`:
 * after that it goes on and the caller's comparison with the screen decides.
 */
async function settle(page, minMs, maxMs = 30000) {
  const t0 = Date.now();
  await page.waitForTimeout(minMs);
  let last = await page.screenshot();
  while (Date.now() - t0 < maxMs) {
    await page.waitForTimeout(1000);
    const shot = await page.screenshot();
    if (shot.equals(last)) return;
    last = shot;
  }
  console.log(`the page was still changing after ${maxMs} ms`);
}
const grab = (name) => execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'x11grab', '-i', display,
  '-frames:v', '1', name], { timeout: 20000 });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (e) => console.log('pageerror: ' + e.message.slice(0, 300)));
  await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  await settle(page, 8000);
  await page.screenshot({ path: `${out}-a.png` });
  grab(`${out}-grab-a.png`);
  await page.setViewportSize({ width: 1024, height: 600 });
  await settle(page, 6000);
  await page.screenshot({ path: `${out}-b.png` });
  grab(`${out}-grab-b.png`);
} finally {
  await browser.close();
}
