// Browser decode time of still formats: how long Chromium's createImageBitmap takes for the
// 17 stripes of a 1080p `desktop` frame in each format (median of 15 runs, after 3 warm-ups).
// The stripes come from the Rust measurement:
//   STILL_OUT=/tmp/stills cargo test --release -p pixelflux --test jpeg_chroma \
//     bench_still_formats -- --ignored --nocapture
//   node still-decode.mjs /tmp/stills
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './support.mjs';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node still-decode.mjs DIR (see the header of this file)');
  process.exit(2);
}
const types = {
  'png-fast': 'image/png', 'png-default': 'image/png', 'webp-lossless-m0': 'image/webp',
  'webp-lossless-m4': 'image/webp', 'jpeg-q95': 'image/jpeg', 'jpeg-q100': 'image/jpeg',
};
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto('about:blank');
  console.log('| format | decode ms (17 stripes, median) |\n|---|---|');
  for (const [name, type] of Object.entries(types)) {
    let files;
    try {
      files = readdirSync(path.join(dir, name)).sort();
    } catch {
      continue;
    }
    const blobs = files.map((f) => readFileSync(path.join(dir, name, f)).toString('base64'));
    const ms = await page.evaluate(async ({ blobs, type }) => {
      const data = blobs.map((b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
      const times = [];
      for (let run = 0; run < 18; run++) {
        const t = performance.now();
        const bmps = await Promise.all(data.map((d) => createImageBitmap(new Blob([d], { type }))));
        times.push(performance.now() - t);
        bmps.forEach((b) => b.close());
      }
      const kept = times.slice(3).sort((a, b) => a - b);
      return kept[Math.floor(kept.length / 2)];
    }, { blobs, type });
    console.log(`| ${name} | ${ms.toFixed(1)} |`);
  }
} finally {
  await browser.close();
}
