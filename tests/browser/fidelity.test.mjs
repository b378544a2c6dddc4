// What the viewer sees: the canvas against the exact source frame and against a reference
// decoder (ffmpeg) fed the very stream the page received, on the coloured `desktop` scene.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WAIT_MS, ffmpegJpegPicture, ffmpegPicture, grabScreen, lastJpegs, launchBrowser, openPage, psnr, psnrRgb,
  readCanvas, readSettled, serverDisplay, snapshot, startServe, waitForFile, withServe,
} from './support.mjs';

const REGION = '640x360';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Bytes of the recorded stripes with this tag (first byte). */
function bytesOf(stripes, tag) {
  return stripes.filter((b) => b[0] === tag).reduce((n, b) => n + b.length, 0);
}

/** Opens a recording viewer and waits for its whole first picture. */
const viewer = (url) => openPage(browser, url, { record: true });

/** Waits until every stripe has had a lossless still painted since the viewer connected. */
async function waitForStills(page, { timeout = WAIT_MS } = {}) {
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
        const { page, errors } = await viewer(server.url);
        // The canvas and the stripes it shows, read at one moment once the stream rests.
        const { canvas, recorded } = await readSettled(page);
        const decoded = ffmpegPicture(recorded, 640, 360);
        const dbCanvas = psnr(canvas, ref);
        const dbFfmpeg = psnrRgb(decoded, ref);
        const dbBetween = psnr(canvas, decoded);
        console.log(`${label}: canvas ${dbCanvas.toFixed(2)} dB, ffmpeg ${dbFfmpeg.toFixed(2)} dB ` +
          `(against the source); canvas vs ffmpeg ${dbBetween.toFixed(2)} dB`);
        // For the record: the browser's own conversion (drawImage of the VideoFrame).
        const own = await openPage(browser, `${server.url}?yuv=browser`);
        const dbBrowser = psnr((await readSettled(own.page)).canvas, ref);
        await own.page.close();
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
      const { canvas, recorded } = await readSettled(v.page);
      const decoded = ffmpegJpegPicture(recorded, 640, 360);
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
        const bytes = bytesOf((await readSettled(v.page)).recorded, 0x03);
        await v.page.close();
        return bytes;
      });
      await withServe(['--scene', 'desktop', '--region', REGION, '--fps', '30', ...args], async (server) => {
        const v = await viewer(server.url);
        const first = psnr(await readCanvas(v.page), ref);
        await waitForStills(v.page);
        const settled = await readSettled(v.page);
        const still = psnr(settled.canvas, ref);
        const stillBytes = bytesOf(settled.recorded, 0x05);
        console.log(`${label}: first paint ${first.toFixed(2)} dB, after the stills ${still.toFixed(2)} dB; ` +
          `stills ${stillBytes} B vs q95 4:4:4 JPEG ${q95} B (${(stillBytes / q95).toFixed(2)}x)`);
        assert.equal(still, Infinity, `the still screen is exact at the canvas (${still.toFixed(2)} dB)`);
        assert.ok(stillBytes <= 1.5 * q95, `stills ${stillBytes} B > 1.5 x ${q95} B`);
        // A viewer joining later gets key pictures, then the stills again.
        const late = await viewer(server.url);
        await waitForStills(late.page);
        const lateDb = psnr((await readSettled(late.page)).canvas, ref);
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
      // `ready` once the first pattern is on the screen: the command starts on its own time,
      // not the test's.
      const ready = path.join(dir, 'ready');
      const script = "xsetroot -mod 3 5 -fg '#cc3366' -bg '#33cc66' && " +
        `touch '${ready}' && until [ -e '${flag}' ]; do sleep 0.05; done && ` +
        "xsetroot -mod 7 2 -fg '#303848' -bg '#d8d0c8' && exec sleep 60";
      // 4 fps: a still follows a change by 10 frames (2.5 s), time to see the change alone.
      // The second pattern is near grey: 4:2:0 cannot show 1-pixel colour stripes at all.
      const server = await startServe(['--listen', '127.0.0.1:0', '--size', '320x240', '--fps', '4',
        ...args, '--', 'sh', '-c', script], { env });
      try {
        const display = await serverDisplay(server);
        const grab = () => grabScreen(display, 320, 240);
        /**
         * Reads the canvas, with the counters and stripes of that moment, each time the stream
         * rests, until `done(canvas)`; returns that reading ({ canvas, counts, recorded }).
         */
        const until = async (page, done, what, timeoutMs = WAIT_MS) => {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const r = await readSettled(page, { quietMs: 200, timeout: timeoutMs });
            if (done(r.canvas)) return r;
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          }
        };
        const v = await viewer(server.url);
        // The first pattern, exact once its stills are in.
        await waitForFile(ready, () => true, 'the first pattern');
        const a = grab();
        const stillsBefore = (await until(v.page, (c) => psnr(c, a) === Infinity, 'the first pattern exact')).counts.stills;
        writeFileSync(flag, '');
        // The change arrives as JPEG or an H.264 P picture, a second before its stills.
        let b = null;
        const { canvas: changed, counts: { stills: stillsMid }, recorded } = await until(v.page, (c) => {
          if (psnr(c, a) > 20) return false;
          b ??= grab();
          return psnr(c, b) >= 20;
        }, 'the change');
        const dbChange = psnr(changed, b);
        if (label.startsWith('H.264')) {
          // What the decoder drew is what ffmpeg makes of the stripes received until then.
          const decoded = ffmpegPicture(recorded, 320, 240);
          const db = psnr(changed, decoded);
          assert.ok(db >= 40, `the change vs ffmpeg's decode of the stream: ${db.toFixed(2)} dB`);
        }
        const stillsAfter = (await until(v.page, (c) => psnr(c, b) === Infinity, 'the second pattern exact')).counts.stills;
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

  // A screen with no colour (a terminal's grey text): `auto` sends its stripes as
  // one-component JPEGs, which the page draws as it draws the three-component 4:2:0 JPEGs of
  // the same luma (two quality steps up, as auto would), for fewer bytes.
  test('JPEG: grey stripes arrive in one component and paint like their three-component JPEG', async () => {
    const env = { ...process.env };
    delete env.DISPLAY;
    const dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-grey-'));
    const ready = path.join(dir, 'ready');
    const script = "xsetroot -mod 3 5 -fg '#202020' -bg '#d8d8d8' && " +
      `touch '${ready}' && exec sleep 60`;
    /** What a viewer of that screen settles on with these options: { canvas, screen, jpegs }. */
    const watch = async (args) => {
      const server = await startServe(['--listen', '127.0.0.1:0', '--size', '320x240', '--fps', '10',
        '--codec', 'jpeg', '--no-paint-over', ...args, '--', 'sh', '-c', script], { env });
      try {
        await waitForFile(ready, () => true, 'the grey pattern');
        const v = await viewer(server.url);
        const { canvas, recorded } = await readSettled(v.page);
        const screen = grabScreen(await serverDisplay(server), 320, 240);
        const state = await v.page.evaluate(() => window.pixelflux.errors);
        assert.equal(state, 0, 'no decode errors');
        assert.deepEqual(v.errors, []);
        await v.page.close();
        // The last JPEG of each stripe, as the canvas shows it.
        return { canvas, screen, jpegs: [...lastJpegs(recorded).values()] };
      } finally {
        await server.stop();
        rmSync(ready, { force: true });
      }
    };
    try {
      const grey = await watch([]);
      const three = await watch(['--jpeg-subsampling', '420', '--quality', '87']);
      const bytes = (w) => w.jpegs.reduce((n, j) => n + j.length, 0);
      const db = psnr(grey.canvas, grey.screen);
      const db420 = psnr(three.canvas, three.screen);
      console.log(`grey screen: one component ${fmtDb(db)} in ${bytes(grey)} B; ` +
        `4:2:0 q87 ${fmtDb(db420)} in ${bytes(three)} B`);
      assert.equal(grey.jpegs.length, Math.ceil(240 / 64), 'every stripe was sent');
      assert.deepEqual(grey.jpegs.map(jpegComponents), grey.jpegs.map(() => 1));
      assert.deepEqual(three.jpegs.map(jpegComponents), three.jpegs.map(() => 3));
      assert.ok(db >= db420 - 0.05, `one component ${fmtDb(db)} vs three ${fmtDb(db420)}`);
      assert.ok(db >= 30, `the grey screen at ${fmtDb(db)}`);
      assert.ok(bytes(grey) < bytes(three), `${bytes(grey)} B vs ${bytes(three)} B`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Components of a baseline or progressive JPEG, from its frame header (SOF0-SOF2). */
function jpegComponents(jpeg) {
  for (let i = 2; i + 9 < jpeg.length;) {
    if (jpeg[i] !== 0xff) throw new Error(`no JPEG marker at ${i}`);
    const marker = jpeg[i + 1];
    if (marker >= 0xc0 && marker <= 0xc2) return jpeg[i + 9];
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  throw new Error('no frame header');
}

function fmtDb(db) {
  return db === Infinity ? 'exact' : `${db.toFixed(2)} dB`;
}
