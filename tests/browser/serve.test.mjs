// `pixelflux serve` in headless Chromium: the page's canvas is read back and compared with
// the source frame (`pixelflux snapshot` of the same source), for JPEG and H.264; several
// viewers, a late viewer, a stalled viewer, tokens, reconnecting, and the own-Xvfb mode.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WAIT_MS, decodeWithFfmpeg, launchBrowser, processAlive, psnr, psnrRgb, readCanvas, receivedStripes,
  recordStripes, rssKiB, runBin, serverDisplay, sleep, snapshot, stalledViewer, startServe,
  waitForFullPicture, waitForQuiet, withServe,
} from './support.mjs';

// The canvas is compared with the source picture, and the bar is what a standard decoder
// (ffmpeg) makes of the very stripes the page received: the page's decoding and painting may
// lose at most this much more. The encoders' own quality is tested against standard encoders
// in tests/python and crates/pixelflux/tests. JPEG: Chromium's libjpeg-turbo and ffmpeg's
// decoder differ in IDCT and chroma upsampling (measured: 0.43 dB below ffmpeg on the static
// scene at quality 85, 3 dB above it on flat colours). H.264: decoding is exact, only the YUV
// to RGB conversion may differ (measured: 0.40 dB below on the static scene in 4:2:0, 0.54 dB
// in 4:4:4; a wrong colour matrix or range costs several dB: 6.4 dB on the flat blue of the
// own-Xvfb test as of this writing).
const MARGIN_DB = { jpeg: 1.0, h264: 1.0 };
const REGION = '640x360';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function openViewer(url) {
  const page = await browser.newPage();
  await recordStripes(page);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const response = await page.goto(url);
  return { page, response, errors };
}

/**
 * Checks the canvas against `ref` with the bar above; returns its PSNR in dB. The canvas and
 * the stripes it should show are read with no stripe arriving in between, and again until
 * the bar is met or `WAIT_MS` pass: a stripe still being decoded, or one that arrived between
 * the two readings (JPEG's paint-over, seconds after a change), is not yet on the canvas.
 */
async function assertCanvas(page, ref, label) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    await sleep(300);
    const count = () => page.evaluate(() => window.pixelflux.stripes);
    const before = await count();
    const stripes = await receivedStripes(page);
    const canvas = await readCanvas(page);
    if (await count() !== before && Date.now() < deadline) continue;
    const codec = await page.evaluate(() => window.pixelflux.hello.codec);
    const standard = psnrRgb(decodeWithFfmpeg(stripes, canvas.width, canvas.height), ref);
    const db = psnr(canvas, ref);
    const ok = db >= standard - MARGIN_DB[codec];
    if (!ok && Date.now() < deadline) continue;
    console.log(`${label}: PSNR ${db.toFixed(2)} dB, ffmpeg on the same stripes ${standard.toFixed(2)} dB`);
    assert.ok(ok, `${label}: PSNR ${db.toFixed(2)} dB, ffmpeg on the same stripes ${standard.toFixed(2)} dB`);
    return db;
  }
}

async function assertMatches(page, ref, label) {
  await waitForFullPicture(page);
  return assertCanvas(page, ref, label);
}

describe('pixelflux serve in Chromium', () => {
  test('JPEG: the canvas matches the source; a second viewer and a late one get the whole picture', async () => {
    const ref = snapshot(['--scene', 'static', '--region', REGION]);
    await withServe(['--scene', 'static', '--region', REGION, '--codec', 'jpeg'], async (server) => {
      const a = await openViewer(server.url);
      assert.equal(a.response.status(), 200);
      const b = await openViewer(server.url);
      const dbA = await assertMatches(a.page, ref, 'viewer A');
      const dbB = await assertMatches(b.page, ref, 'viewer B');
      // The static scene sends nothing after its first frame and its stills: once nothing
      // has come for a second, a viewer joining only has a picture if its joining made the
      // server refresh every stripe.
      await waitForQuiet(a.page, { quietMs: 1000 });
      const late = await openViewer(server.url);
      const dbLate = await assertMatches(late.page, ref, 'late viewer');
      const hello = await late.page.evaluate(() => window.pixelflux.hello);
      assert.deepEqual([hello.width, hello.height, hello.codec], [640, 360, 'jpeg']);
      for (const v of [a, b, late]) {
        assert.deepEqual(v.errors, []);
        await v.page.close();
      }
      console.log(`JPEG PSNR: A ${dbA.toFixed(1)} dB, B ${dbB.toFixed(1)} dB, late ${dbLate.toFixed(1)} dB`);
    });
  });

  for (const fullcolor of [false, true]) {
    const label = fullcolor ? 'H.264 4:4:4' : 'H.264 4:2:0';
    test(`${label}: WebCodecs decodes every stripe and the canvas matches the source`, async () => {
      const extra = fullcolor ? ['--h264-fullcolor'] : [];
      const ref = snapshot(['--scene', 'static', '--region', REGION]);
      await withServe(['--scene', 'static', '--region', REGION, '--codec', 'h264', ...extra], async (server) => {
        const v = await openViewer(server.url);
        const db = await assertMatches(v.page, ref, label);
        const state = await v.page.evaluate(() => ({
          errors: window.pixelflux.errors, hello: window.pixelflux.hello, codec: window.pixelflux.codec,
        }));
        assert.equal(state.hello.codec, 'h264');
        // The decoder is configured with the stream's own profile: High 4:4:4 or baseline.
        assert.match(state.codec, fullcolor ? /^avc1\.F400[0-9A-F]{2}$/ : /^avc1\.42[0-9A-F]{4}$/);
        assert.equal(state.errors, 0, 'no decoder errors');
        // A late viewer gets IDRs on every stripe (once the first one's stream rests).
        await waitForQuiet(v.page, { quietMs: 1000 });
        const late = await openViewer(server.url);
        const dbLate = await assertMatches(late.page, ref, `${label} late viewer`);
        assert.deepEqual([...v.errors, ...late.errors], []);
        console.log(`${label} PSNR: ${db.toFixed(1)} dB, late ${dbLate.toFixed(1)} dB`);
        await v.page.close();
        await late.page.close();
      });
    });
  }

  test('a viewer that stops reading neither stalls the others nor grows server memory', async () => {
    await withServe(['--scene', 'full', '--region', '1280x720', '--fps', '30', '--quality', '95'], async (server) => {
      const v = await openViewer(server.url);
      await waitForFullPicture(v.page);
      const rss0 = rssKiB(server.pid);
      const stalled = await stalledViewer(server.url);
      const painted = [];
      let rssMax = rss0;
      for (let i = 0; i < 16; i++) {
        await sleep(500);
        rssMax = Math.max(rssMax, rssKiB(server.pid));
        painted.push(await v.page.evaluate(() => window.pixelflux.painted));
      }
      // The live viewer kept painting through every 2-second window.
      for (let i = 4; i < painted.length; i += 4) {
        assert.ok(painted[i] > painted[i - 4], `the live viewer stalled: painted counts ${painted}`);
      }
      stalled.destroy();
      // The stalled viewer was dropped to resync rather than buffered: its queue is bounded
      // (8 MiB) and the kernel holds a few MiB more.
      const growthMiB = (rssMax - rss0) / 1024;
      assert.ok(growthMiB < 48, `server RSS grew by ${growthMiB.toFixed(1)} MiB`);
      // The server logs the stalled viewer's leaving once it notices the closed socket.
      await server.waitForStderr(/viewer \d+ left/);
      const m = server.stderr.match(/viewer \d+ left.*?dropped=(\d+)/s) ||
        server.stderr.match(/dropped=(\d+).*?viewer \d+ left/);
      assert.ok(m && +m[1] > 0, `the stalled viewer should have had stripes dropped:\n${server.stderr}`);
      console.log(`stalled viewer: RSS ${rss0} -> max ${rssMax} KiB; live viewer painted ${painted.at(-1) - painted[0]} stripes in 8 s`);
      await v.page.close();
    });
  });

  test('a token guards page and stream; off loopback a token is required', async () => {
    const refused = runBin(['serve', '--listen', '0.0.0.0:0', '--scene', 'static'],
      { env: { ...process.env, PIXELFLUX_TOKEN: '' } });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /token/);
    await withServe(['--scene', 'static', '--region', '320x192', '--token', 's3cret-t0ken'], async (server) => {
      assert.match(server.url, /\?token=s3cret-t0ken$/);
      const base = server.url.replace(/\?.*$/, '');
      const bad = await openViewer(`${base}?token=wrong`);
      assert.equal(bad.response.status(), 403);
      const none = await openViewer(base);
      assert.equal(none.response.status(), 403);
      const good = await openViewer(server.url);
      assert.equal(good.response.status(), 200);
      await waitForFullPicture(good.page);
      // A WebSocket with a wrong token, from an allowed page, never opens.
      const opened = await good.page.evaluate((u) => new Promise((resolve) => {
        const ws = new WebSocket(u);
        ws.onopen = () => resolve(true);
        ws.onclose = () => resolve(false);
      }), base.replace('http:', 'ws:') + 'ws?token=wrong');
      assert.equal(opened, false);
      for (const v of [bad, none, good]) await v.page.close();
    });
    // The printed URL percent-encodes the token: one with URL syntax in it works as printed.
    await withServe(['--scene', 'static', '--region', '320x192', '--token', 'a+b&c d'], async (server) => {
      assert.match(server.url, /\?token=a%2Bb%26c\+d$/);
      const v = await openViewer(server.url);
      assert.equal(v.response.status(), 200);
      await waitForFullPicture(v.page);
      await v.page.close();
    });
  });

  test('the client reconnects after the server restarts, and follows a new capture size', async () => {
    // Port 0, read back: the second server takes over the port the first one was given.
    const first = await startServe(['--listen', '127.0.0.1:0', '--scene', 'static', '--region', REGION]);
    const listen = ['--listen', `127.0.0.1:${new URL(first.url).port}`];
    const v = await openViewer(first.url);
    try {
      await assertMatches(v.page, snapshot(['--scene', 'static', '--region', REGION]), 'before restart');
      await first.stop();
      await v.page.waitForFunction(() => /reconnecting/.test(document.getElementById('overlay').textContent));
      // The disconnected state shows: the picture greys out, the countdown is visible.
      await v.page.waitForFunction(() => document.getElementById('screen').classList.contains('disconnected') &&
        !document.getElementById('overlay').classList.contains('hidden'));
      const second = await startServe([...listen, '--scene', 'static', '--region', '480x272']);
      try {
        await v.page.waitForFunction(() => window.pixelflux.hello && window.pixelflux.hello.width === 480,
          null, { timeout: WAIT_MS });
        await assertMatches(v.page, snapshot(['--scene', 'static', '--region', '480x272']), 'after restart');
        const connects = await v.page.evaluate(() => window.pixelflux.connects);
        assert.ok(connects >= 2);
        assert.equal(await v.page.evaluate(() => document.getElementById('screen').classList.contains('disconnected')), false);
      } finally {
        await second.stop();
      }
    } finally {
      await first.stop();
      await v.page.close();
    }
  });

  test('a stopped server says why and the page keeps reconnecting; a token no longer accepted is named', async () => {
    const first = await startServe(['--listen', '127.0.0.1:0', '--scene', 'static', '--region', '320x192',
      '--token', 'first-token']);
    const listen = ['--listen', `127.0.0.1:${new URL(first.url).port}`];
    const v = await openViewer(first.url);
    let second;
    try {
      await waitForFullPicture(v.page);
      // SIGTERM: every page is closed with a reason, shown above the countdown.
      const { code } = await first.stop();
      assert.equal(code, 0);
      await v.page.waitForFunction(() => window.pixelflux.closeReason !== null, null, { timeout: WAIT_MS });
      assert.equal(await v.page.evaluate(() => window.pixelflux.closeReason), 'the server stopped');
      // It keeps trying (nothing listens: those tries fail without a reason), still saying why.
      await v.page.waitForFunction(() => window.pixelflux.retries >= 3, null, { timeout: WAIT_MS });
      assert.match(await v.page.locator('#overlay').textContent(),
        /^the server stopped\ndisconnected: reconnecting in \d+\.\d s$/);
      assert.equal(await v.page.evaluate(() => window.pixelflux.ended), undefined, 'not ended');
      // Restarted with another token: the page's is refused (403), and the page says so.
      second = await startServe([...listen, '--scene', 'static', '--region', '320x192', '--token', 'second-token']);
      await v.page.waitForFunction(() => window.pixelflux.tokenRefused, null, { timeout: WAIT_MS });
      await v.page.waitForFunction(() => /^the token is not accepted: open the link serve prints\ndisconnected: reconnecting in [4-8]\.\d s$/
        .test(document.getElementById('overlay').textContent), null, { timeout: WAIT_MS, polling: 50 });
      assert.match(second.stderr, /refused a WebSocket with a missing or wrong token/);
      assert.equal(await v.page.evaluate(() => window.pixelflux.connects), 1);
      assert.deepEqual(v.errors, []);
    } finally {
      await second?.stop();
      await first.stop();
      await v.page.close();
    }
  });

  for (const codec of ['jpeg', 'h264']) {
    test(`${codec}: with no X display it starts its own Xvfb, runs the command in it, follows changes, cleans up`, async () => {
      const env = { ...process.env };
      delete env.DISPLAY;
      // Blue, then orange once the test has seen blue (it creates the flag file): for H.264
      // the change arrives as a P picture.
      const flag = path.join(mkdtempSync(path.join(tmpdir(), 'pixelflux-flag-')), 'seen-blue');
      const script = "xsetroot -solid '#3366cc' && while [ ! -e \"$1\" ]; do sleep 0.05; done && " +
        "xsetroot -solid '#cc6633' && exec sleep 60";
      const server = await startServe(['--listen', '127.0.0.1:0', '--size', '320x240', '--codec', codec,
        '--', 'sh', '-c', script, 'sh', flag], { env });
      let display;
      let socketIno;
      let childPid;
      try {
        const v = await openViewer(server.url);
        for (const rgb of [[0x33, 0x66, 0xcc], [0xcc, 0x66, 0x33]]) {
          await v.page.waitForFunction(([r0, g0, b0]) => {
            const c = document.getElementById('screen');
            if (c.width !== 320) return false;
            const [r, g, b] = c.getContext('2d').getImageData(160, 120, 1, 1).data;
            return Math.abs(r - r0) < 8 && Math.abs(g - g0) < 8 && Math.abs(b - b0) < 8;
          }, rgb, { timeout: WAIT_MS, polling: 100 });
          const flat = { width: 320, height: 240, rgb: Buffer.alloc(320 * 240 * 3) };
          for (let i = 0; i < 320 * 240; i++) flat.rgb.set(rgb, i * 3);
          await assertCanvas(v.page, flat, `${codec} ${rgb}`);
          writeFileSync(flag, '');
        }
        const state = await v.page.evaluate(() => ({ errors: window.pixelflux.errors, refreshes: window.pixelflux.refreshes }));
        assert.deepEqual(state, { errors: 0, refreshes: 0 }, 'no decode errors, no refresh needed');
        assert.deepEqual(v.errors, []);
        await v.page.close();
        display = (await serverDisplay(server)).slice(1);
        socketIno = statSync(`/tmp/.X11-unix/X${display}`).ino;
        childPid = +server.stderr.match(/started "sh" \(pid (\d+)\)/)[1];
        assert.ok(processAlive(childPid));
      } finally {
        const { code } = await server.stop();
        assert.equal(code, 0, `clean exit on SIGTERM:\n${server.stderr}`);
      }
      assert.ok(!processAlive(childPid), 'the command was stopped');
      // Started with -displayfd, Xvfb keeps no lock file: its socket is what it removes (told
      // apart by inode from a socket another server may create under the freed number).
      const socket = `/tmp/.X11-unix/X${display}`;
      assert.ok(!existsSync(socket) || statSync(socket).ino !== socketIno, 'Xvfb was stopped and cleaned up');
    });
  }

  test('with no X display and no Xvfb it streams the synthetic typing scene', async () => {
    const env = { ...process.env, PATH: '/nonexistent' };
    delete env.DISPLAY;
    await withServe(['--size', '480x272'], async (server) => {
      // stderr may come a moment after the URL on stdout.
      await server.waitForStderr(/Xvfb is not installed: streaming the built-in synthetic `typing` scene/);
      const v = await openViewer(server.url);
      await waitForFullPicture(v.page);
      const hello = await v.page.evaluate(() => window.pixelflux.hello);
      assert.deepEqual([hello.width, hello.height], [480, 272]);
      await v.page.close();
    }, { env });
  });

  test('the overlay reports fps, kbit/s and capture-to-paint latency', async () => {
    await withServe(['--scene', 'typing', '--region', '640x360', '--fps', '30'], async (server) => {
      const v = await openViewer(server.url);
      await waitForFullPicture(v.page);
      await v.page.waitForFunction(() => window.pixelflux.live.latency !== null &&
        /fps .* kbit\/s .* capture→paint \d+ ms/.test(document.getElementById('overlay').textContent),
      null, { timeout: WAIT_MS });
      const live = await v.page.evaluate(() => window.pixelflux.live);
      assert.ok(live.fps > 0 && live.kbps > 0, JSON.stringify(live));
      // Same machine, same clock: a latency below zero would mean the offset is wrong.
      assert.ok(live.latency > -5 && Number.isFinite(live.latencyMax), JSON.stringify(live));
      console.log(`overlay: ${await v.page.textContent('#overlay')}`);
      await v.page.close();
    });
  });
});
