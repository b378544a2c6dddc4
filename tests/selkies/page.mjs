// Opens Selkies' own web client in headless Chromium, screenshots it next to an x11grab of
// the display, resizes the viewport (Selkies then resizes the screen and calls
// update_capture_region) and does it again. Usage: node page.mjs URL DISPLAY OUT_PREFIX
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';

// playwright-core is installed by tests/browser's `npm ci`.
const require = createRequire(new URL('../browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, display, out] = process.argv.slice(2);
const grab = (name) => execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'x11grab', '-i', display,
  '-frames:v', '1', name], { timeout: 20000 });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (e) => console.log('pageerror: ' + e.message.slice(0, 300)));
  await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  await page.waitForTimeout(8000);
  await page.screenshot({ path: `${out}-a.png` });
  grab(`${out}-grab-a.png`);
  await page.setViewportSize({ width: 1024, height: 600 });
  await page.waitForTimeout(6000);
  await page.screenshot({ path: `${out}-b.png` });
  grab(`${out}-grab-b.png`);
} finally {
  await browser.close();
}
