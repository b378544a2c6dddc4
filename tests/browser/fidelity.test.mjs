// What the viewer sees: the canvas against the exact source frame and against a reference
// decoder (ffmpeg) fed the very stream the page received, on the coloured `desktop` scene.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ffmpegJpegPicture, ffmpegPicture, launchBrowser, psnr, psnrRgb, readCanvas, recordedStripes, recordAllStripes, sleep,
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
  await recordAllStripes(page);
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
  for (const [fullcolor, crf] of [[false, 25], [true, 25], [false, 10], [true, 10]]) {
    const label = `${fullcolor ? 'H.264 4:4:4' : 'H.264 4:2:0'} CRF ${crf}`;
    test(`${label}: the canvas shows what a reference decoder makes of the same stream`, async () => {
      const ref = snapshot(['--scene', 'desktop', '--region', REGION]);
      const extra = fullcolor ? ['--h264-fullcolor'] : [];
      await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'h264', '--no-paint-over',
        '--crf', String(crf), ...extra], async (server) => {
        const page = await browser.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await recordAllStripes(page);
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
        // For the record: the browser's own conversion (drawImage of the VideoFrame).
        const own = await browser.newPage();
        await own.goto(`${server.url}?yuv=browser`);
        await waitForFullPicture(own);
        await sleep(500);
        const dbBrowser = psnr(await readCanvas(own), ref);
        await own.close();
        console.log(`${label}: Chromium's own conversion ${dbBrowser.toFixed(2)} dB`);
        assert.ok(dbCanvas >= dbFfmpeg - 0.5,
          `canvas ${dbCanvas.toFixed(2)} dB is more than 0.5 dB below ffmpeg's ${dbFfmpeg.toFixed(2)} dB`);
        // And the two pictures are close to each other, not just equally far from the source.
        assert.ok(dbBetween >= 40, `canvas vs ffmpeg decode: ${dbBetween.toFixed(2)} dB`);
        assert.deepEqual(errors, []);
        await page.close();
      });
    });
  }

  test('JPEG: the canvas shows what a reference decoder makes of the same stripes', async () => {
    const ref = snapshot(['--scene', 'desktop', '--region', REGION]);
    await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'jpeg', '--no-paint-over'], async (server) => {
      const v = await viewer(server.url);
      await sleep(500);
      const canvas = await readCanvas(v.page);
      const decoded = ffmpegJpegPicture(await recordedStripes(v.page), 640, 360);
      const dbCanvas = psnr(canvas, ref);
      const dbRef = psnrRgb(decoded, ref);
      console.log(`JPEG q85 auto: canvas ${dbCanvas.toFixed(2)} dB, ffmpeg ${dbRef.toFixed(2)} dB (against the source); ` +
        `canvas vs ffmpeg ${psnr(canvas, decoded).toFixed(2)} dB`);
      assert.ok(dbCanvas >= dbRef - 0.5, `canvas ${dbCanvas.toFixed(2)} dB vs ffmpeg ${dbRef.toFixed(2)} dB`);
      assert.deepEqual(v.errors, []);
      await v.page.close();
    });
  });

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

  // An X screen (our own Xvfb) that shows a pattern, then another: the stills of the first
  // arrive, then the change, as a P picture for H.264 that must decode against the stripe's
  // last H.264 picture (the decoder never saw the stills), then the stills of the second.
  for (const [label, args] of [
    ['JPEG', ['--codec', 'jpeg']],
    ['H.264 4:2:0', ['--codec', 'h264']],
  ]) {
    test(`${label}: a change after the stills repaints right, then converges again`, async () => {
      const env = { ...process.env };
      delete env.DISPLAY;
      const dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-fidelity-'));
      const flag = path.join(dir, 'change');
      const script = "xsetroot -mod 3 5 -fg '#cc3366' -bg '#33cc66' && " +
        `until [ -e '${flag}' ]; do sleep 0.05; done && ` +
        "xsetroot -mod 7 2 -fg '#303848' -bg '#d8d0c8' && exec sleep 60";
      // 4 fps: a still follows a change by 10 frames (2.5 s), time to see the change alone.
      // The second pattern is near grey: 4:2:0 cannot show 1-pixel colour stripes at all.
      const server = await startServe(['--listen', '127.0.0.1:0', '--size', '320x240', '--fps', '4',
        ...args, '--', 'sh', '-c', script], { env });
      try {
        const display = server.stderr.match(/started Xvfb (:\d+)/)[1];
        const grab = () => {
          const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-video_size', '320x240',
            '-i', display, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
          { timeout: 20000, maxBuffer: 1 << 24 });
          assert.equal(r.status, 0, `x11grab: ${r.stderr}`);
          return { width: 320, height: 240, rgb: r.stdout };
        };
        /** Polls the canvas until `done(canvas)`; returns that canvas. */
        const until = async (page, done, what, timeoutMs = 10000) => {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const c = await readCanvas(page);
            if (done(c)) return c;
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
            await sleep(50);
          }
        };
        const v = await viewer(server.url);
        // The first pattern, exact once its stills are in.
        const a = grab();
        await until(v.page, (c) => psnr(c, a) === Infinity, 'the first pattern exact', 15000);
        const stillsBefore = await v.page.evaluate(() => window.pixelflux.stills);
        writeFileSync(flag, '');
        // The change arrives as JPEG or an H.264 P picture, a second before its stills.
        let b = null;
        const changed = await until(v.page, (c) => {
          if (psnr(c, a) > 20) return false;
          b ??= grab();
          return psnr(c, b) >= 20;
        }, 'the change');
        const stillsMid = await v.page.evaluate(() => window.pixelflux.stills);
        const dbChange = psnr(changed, b);
        if (label.startsWith('H.264')) {
          // What the decoder drew is what ffmpeg makes of the same stream: in step.
          const decoded = ffmpegPicture(await recordedStripes(v.page), 320, 240);
          const db = psnr(changed, decoded);
          assert.ok(db >= 40, `the change vs ffmpeg's decode of the stream: ${db.toFixed(2)} dB`);
        }
        await until(v.page, (c) => psnr(c, b) === Infinity, 'the second pattern exact', 15000);
        const stillsAfter = await v.page.evaluate(() => window.pixelflux.stills);
        console.log(`${label}: change ${dbChange.toFixed(2)} dB (stills: ${stillsBefore} before, ` +
          `${stillsMid} at the change, ${stillsAfter} after)`);
        assert.equal(stillsMid, stillsBefore, 'the change was read before its stills');
        assert.ok(stillsAfter > stillsMid, 'the second pattern was made exact by stills');
        assert.ok(dbChange >= 25, `the change repainted at ${dbChange.toFixed(2)} dB`);
        const state = await v.page.evaluate(() => ({ errors: window.pixelflux.errors, refreshes: window.pixelflux.refreshes }));
        assert.deepEqual(state, { errors: 0, refreshes: 0 }, 'decoders in step: no errors, no refresh');
        assert.deepEqual(v.errors, []);
        await v.page.close();
      } finally {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

function fmtDb(db) {
  return db === Infinity ? 'exact' : `${db.toFixed(2)} dB`;
}
