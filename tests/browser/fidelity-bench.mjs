// Fidelity through the real browser: `pixelflux serve` on a still scene (`desktop` unless named), headless
// Chromium reading its canvas at the canvas's own size (getImageData, not a screenshot), PSNR
// against the exact frame (`pixelflux snapshot`) at first paint and 2 s later, with the bytes
// received by then. Run: `node fidelity-bench.mjs [WxH] [scene]` after `cargo build --release -p
// pixelflux-cli` (part of `make bench`); writes ../../target/fidelity.json too.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  launchBrowser, psnr, readCanvas, recordedStripes, recordAllStripes, ROOT, sleep, snapshot,
  startServe, waitForFullPicture,
} from './support.mjs';

const REGION = process.argv[2] || '1920x1080';
const SCENE = process.argv[3] || 'desktop';
const cases = [
  { label: 'JPEG (default: auto chroma, stills)', args: ['--codec', 'jpeg'] },
  { label: 'JPEG auto chroma, no stills', args: ['--codec', 'jpeg', '--no-paint-over'] },
  { label: 'JPEG 4:4:4 (as 1.2.2), no stills', args: ['--codec', 'jpeg', '--jpeg-subsampling', '444', '--no-paint-over'] },
  { label: 'JPEG 4:2:0, no stills', args: ['--codec', 'jpeg', '--jpeg-subsampling', '420', '--no-paint-over'] },
  { label: 'H.264 4:2:0 (stills)', args: ['--codec', 'h264'] },
  { label: 'H.264 4:2:0, no stills', args: ['--codec', 'h264', '--no-paint-over'] },
  { label: 'H.264 4:4:4 (stills)', args: ['--codec', 'h264', '--h264-fullcolor'] },
  { label: 'H.264 4:4:4, no stills', args: ['--codec', 'h264', '--h264-fullcolor', '--no-paint-over'] },
  { label: 'H.264 4:2:0, no stills, Chromium\'s YUV→RGB', args: ['--codec', 'h264', '--no-paint-over'], query: '?yuv=browser' },
  { label: 'H.264 4:4:4, no stills, Chromium\'s YUV→RGB', args: ['--codec', 'h264', '--h264-fullcolor', '--no-paint-over'], query: '?yuv=browser' },
];

const kb = (stripes) => stripes.reduce((n, b) => n + b.length, 0) / 1024;

/**
 * KB of the codec picture on the canvas: per stripe position the last JPEG, or the last H.264
 * IDR and the pictures after it (a viewer joining while the first frame is sent gets the
 * whole picture twice; this counts one).
 */
function pictureKb(stripes) {
  const byY = new Map();
  for (const b of stripes) {
    if (b[0] !== 0x03 && b[0] !== 0x04) continue;
    const y = b.readUInt16BE(4);
    const key = b[0] === 0x03 || b[1] === 0x01;
    if (key || !byY.has(y)) byY.set(y, 0);
    byY.set(y, byY.get(y) + b.length);
  }
  return [...byY.values()].reduce((a, n) => a + n, 0) / 1024;
}
const fmt = (db) => (db === Infinity ? 'exact' : `${db.toFixed(2)} dB`);

const ref = snapshot(['--scene', SCENE, '--region', REGION]);
const browser = await launchBrowser();
const results = [];
try {
  for (const c of cases) {
    const server = await startServe(['--listen', '127.0.0.1:0', '--scene', SCENE, '--region', REGION,
      '--fps', '30', ...c.args]);
    try {
      const page = await browser.newPage();
      await recordAllStripes(page);
      await page.goto(server.url + (c.query || ''));
      await waitForFullPicture(page, { timeout: 30000 });
      // Joining asks for a refresh: let its pictures land (stills follow only 10 frames later).
      await sleep(150);
      const t0 = Date.now();
      const first = psnr(await readCanvas(page), ref);
      const firstStripes = await recordedStripes(page);
      const stillsAtFirst = await page.evaluate(() => window.pixelflux.stills);
      await sleep(Math.max(0, 2000 - (Date.now() - t0)));
      const later = psnr(await readCanvas(page), ref);
      const all = await recordedStripes(page);
      const r = {
        case: c.label,
        region: REGION,
        scene: SCENE,
        first_paint_db: first,
        picture_kb: pictureKb(firstStripes),
        received_kb: kb(firstStripes),
        stills_at_first_read: stillsAtFirst,
        after_2s_db: later,
        after_2s_kb: kb(all),
        stills_kb: kb(all.filter((b) => b[0] === 0x05)),
      };
      results.push(r);
      console.error(`${c.label}: first ${fmt(first)}, 2 s ${fmt(later)}`);
      await page.close();
    } finally {
      await server.stop();
    }
  }
} finally {
  await browser.close();
}

console.log(`\nFidelity at the canvas (Chromium, ${SCENE} scene ${REGION}, 30 fps)\n`);
console.log('| case | first paint | stills in by then | KB of that picture | after 2 s still | KB of stills |');
console.log('|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.case} | ${fmt(r.first_paint_db)} | ${r.stills_at_first_read} | ${r.picture_kb.toFixed(0)} | ` +
    `${fmt(r.after_2s_db)} | ${r.stills_kb.toFixed(0)} |`);
}
const out = path.join(ROOT, 'target');
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'fidelity.json'), JSON.stringify(results, (k, v) => (v === Infinity ? 'exact' : v), 2));
