// What the viewer sees: the canvas against the exact source frame and against a reference
// decoder (ffmpeg) fed the very stream the page received, on the coloured `desktop` scene.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ffmpegPicture, launchBrowser, psnr, psnrRgb, readCanvas, recordedStripes, recordStripes, sleep,
  snapshot, startServe, waitForFullPicture,
} from './support.mjs';

const REGION = '640x360';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function withServe(args, fn) {
  const server = await startServe(['--listen', '127.0.0.1:0', ...args]);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Bytes of the recorded stripes with this tag (first byte). */
function bytesOf(stripes, tag) {
  return stripes.filter((b) => b[0] === tag).reduce((n, b) => n + b.length, 0);
}

/** Opens a recording viewer and waits for its whole first picture. */
async function viewer(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await recordStripes(page);
  await page.goto(url);
  await waitForFullPicture(page);
  return { page, errors };
}

/** Waits until every stripe has had a lossless still painted since the viewer connected. */
async function waitForStills(page, { timeout = 10000 } = {}) {
  await page.waitForFunction(() => {
    const s = window.pixelflux;
    return s.stills >= Math.ceil(s.hello.height / s.hello.stripe_height);
  }, null, { timeout, polling: 50 });
}

describe('fidelity at the canvas', () => {
  for (const fullcolor of [false, true]) {
    const label = fullcolor ? 'H.264 4:4:4' : 'H.264 4:2:0';
    test(`${label}: the canvas shows what a reference decoder makes of the same stream`, async () => {
      const ref = snapshot(['--scene', 'desktop', '--region', REGION]);
      const extra = fullcolor ? ['--h264-fullcolor'] : [];
      await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'h264', '--no-paint-over',
        ...extra], async (server) => {
        const page = await browser.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await recordStripes(page);
        await page.goto(server.url);
        await waitForFullPicture(page);
        await sleep(500);
        const canvas = await readCanvas(page);
        const stripes = await recordedStripes(page);
        const decoded = ffmpegPicture(stripes, 640, 360);
        const dbCanvas = psnr(canvas, ref);
        const dbFfmpeg = psnrRgb(decoded, ref);
        const dbBetween = psnr(canvas, decoded);
        console.log(`${label}: canvas ${dbCanvas.toFixed(2)} dB, ffmpeg ${dbFfmpeg.toFixed(2)} dB ` +
          `(against the source); canvas vs ffmpeg ${dbBetween.toFixed(2)} dB`);
        assert.ok(dbCanvas >= dbFfmpeg - 0.5,
          `canvas ${dbCanvas.toFixed(2)} dB is more than 0.5 dB below ffmpeg's ${dbFfmpeg.toFixed(2)} dB`);
        // And the two pictures are close to each other, not just equally far from the source.
        assert.ok(dbBetween >= 40, `canvas vs ffmpeg decode: ${dbBetween.toFixed(2)} dB`);
        assert.deepEqual(errors, []);
        await page.close();
      });
    });
  }

  for (const [label, args] of [
    ['JPEG', ['--codec', 'jpeg']],
    ['H.264 4:2:0', ['--codec', 'h264']],
    ['H.264 4:4:4', ['--codec', 'h264', '--h264-fullcolor']],
  ]) {
    test(`${label}: a still screen converges to the exact picture, for a late viewer too`, async () => {
      const ref = snapshot(['--scene', 'desktop', '--region', REGION]);
      // What the still refresh may cost: a q95 4:4:4 JPEG of the same stripes, times 1.5.
      const q95 = await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'jpeg',
        '--quality', '95', '--jpeg-subsampling', '444', '--no-paint-over'], async (server) => {
        const v = await viewer(server.url);
        await sleep(300);
        const bytes = bytesOf(await recordedStripes(v.page), 0x03);
        await v.page.close();
        return bytes;
      });
      await withServe(['--scene', 'desktop', '--region', REGION, '--fps', '30', ...args], async (server) => {
        const v = await viewer(server.url);
        const first = psnr(await readCanvas(v.page), ref);
        await waitForStills(v.page);
        await sleep(300);
        const still = psnr(await readCanvas(v.page), ref);
        const stripes = await recordedStripes(v.page);
        const stillBytes = bytesOf(stripes, 0x05);
        console.log(`${label}: first paint ${first.toFixed(2)} dB, after the stills ${still.toFixed(2)} dB; ` +
          `stills ${stillBytes} B vs q95 4:4:4 JPEG ${q95} B (${(stillBytes / q95).toFixed(2)}x)`);
        assert.equal(still, Infinity, `the still screen is exact at the canvas (${still.toFixed(2)} dB)`);
        assert.ok(stillBytes <= 1.5 * q95, `stills ${stillBytes} B > 1.5 x ${q95} B`);
        // A viewer joining later gets key pictures, then the stills again.
        const late = await viewer(server.url);
        await waitForStills(late.page);
        await sleep(300);
        const lateDb = psnr(await readCanvas(late.page), ref);
        assert.equal(lateDb, Infinity, `late viewer: ${lateDb.toFixed(2)} dB`);
        const state = await v.page.evaluate(() => window.pixelflux.errors);
        assert.equal(state, 0, 'no decode errors');
        assert.deepEqual([...v.errors, ...late.errors], []);
        await v.page.close();
        await late.page.close();
      });
    });
  }
});
