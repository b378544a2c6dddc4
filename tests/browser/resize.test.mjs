// `pixelflux serve`'s private display follows the page's window: headless Chromium resizes
// its viewport, the page sends its size, serve resizes the Xvfb through RandR, the capture
// follows the screen, and the page shows the new size without ever showing a black frame
// (canvas pixels sampled on every animation frame during the change). With --size the
// screen stays as given.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { WAIT_MS, headless, launchBrowser, sleep, startServe, waitForFullPicture } from './support.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** The root window painted one colour (RGB 51,102,204), so no part of the screen is black. */
const BLUE = [51, 102, 204];
const paintRoot = ['--', 'sh', '-c', 'xsetroot -solid "#3366cc" && exec sleep 600'];

/** The X screen's size, as xdpyinfo reports it. */
function xScreen(display) {
  const r = spawnSync('xdpyinfo', ['-display', display], { encoding: 'utf8' });
  const m = r.stdout.match(/dimensions:\s+(\d+)x(\d+) pixels/);
  assert.ok(m, `xdpyinfo -display ${display}: ${r.stderr}`);
  return { width: +m[1], height: +m[2] };
}

/** The display the page shows, from its title (`:N WxH · pixelflux`). */
async function displayOf(page) {
  await page.waitForFunction(() => /^:\d+/.test(document.title), null, { timeout: WAIT_MS });
  return (await page.title()).match(/^(:\d+)/)[1];
}

/** Starts sampling the canvas on every animation frame: a 5x5 grid of pixels. */
async function startSampling(page) {
  await page.evaluate(() => {
    const c = document.getElementById('screen');
    const g = c.getContext('2d');
    const samples = [];
    window.__samples = samples;
    window.__sampling = true;
    window.__resizedAt = null;
    window.addEventListener('resize', () => { window.__resizedAt ??= performance.now(); }, { once: true });
    const step = () => {
      if (!window.__sampling) return;
      const frame = { t: performance.now(), width: c.width, height: c.height, black: 0, points: 0 };
      for (let i = 1; i <= 5; i++) {
        for (let j = 1; j <= 5; j++) {
          const x = Math.floor((c.width * i) / 6);
          const y = Math.floor((c.height * j) / 6);
          const [r, gr, b] = g.getImageData(x, y, 1, 1).data;
          frame.points++;
          if (r < 16 && gr < 16 && b < 16) frame.black++;
        }
      }
      samples.push(frame);
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
}

async function stopSampling(page) {
  return page.evaluate(() => {
    window.__sampling = false;
    return { samples: window.__samples, resizedAt: window.__resizedAt };
  });
}

/** Waits until the page shows a complete `width` x `height` picture on its canvas. */
async function waitForSize(page, width, height) {
  await page.waitForFunction(([w, h]) => {
    const s = window.pixelflux;
    const c = document.getElementById('screen');
    return s.hello && s.hello.width === w && s.hello.height === h &&
      c.width === w && c.height === h &&
      s.paintedYs.size >= Math.ceil(h / s.hello.stripe_height);
  }, [width, height], { timeout: WAIT_MS, polling: 50 });
}

/** The canvas pixel at the centre. */
async function centre(page) {
  return page.evaluate(() => {
    const c = document.getElementById('screen');
    return [...c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data.slice(0, 3)];
  });
}

const near = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 12);

describe('pixelflux serve: the private display follows the page', () => {
  for (const codec of ['jpeg', 'h264']) {
    test(`a viewport resize resizes the display and the canvas, with no black frame (${codec})`, async (t) => {
      const server = await startServe(['--listen', '127.0.0.1:0', '--codec', codec, ...paintRoot], { env: headless() });
      const page = await browser.newPage();
      try {
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.setViewportSize({ width: 1000, height: 700 });
        await page.goto(server.url);
        await waitForFullPicture(page);
        // On connect the page sends its size: the 1280x720 screen becomes 1000x700.
        await waitForSize(page, 1000, 700);
        const display = await displayOf(page);
        assert.deepEqual(xScreen(display), { width: 1000, height: 700 });
        // The title follows the size streamed (not the size when the page connected).
        assert.equal(await page.title(), `${display} 1000x700 · pixelflux`);
        await page.waitForFunction((blue) => {
          const c = document.getElementById('screen');
          const [r, g, b] = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
          return Math.abs(r - blue[0]) + Math.abs(g - blue[1]) + Math.abs(b - blue[2]) < 36;
        }, BLUE, { timeout: WAIT_MS });
        // Smaller, then larger than at start (odd sizes: H.264 gets them rounded to even).
        for (const [w, h] of [[801, 501], [1200, 800]]) {
          const want = codec === 'h264' ? [w & ~1, h & ~1] : [w, h];
          const resizesBefore = await page.evaluate(() => window.pixelflux.resizes);
          await startSampling(page);
          await page.setViewportSize({ width: w, height: h });
          await waitForSize(page, want[0], want[1]);
          await sleep(300);
          const { samples, resizedAt } = await stopSampling(page);
          // Not asserted (timing): window resize → first animation frame showing the new size,
          // the page's 300 ms debounce included.
          const shown = samples.find((f) => f.width === want[0] && f.height === want[1]);
          if (shown && resizedAt !== null) {
            t.diagnostic(`${codec} ${want[0]}x${want[1]}: shown ${(shown.t - resizedAt).toFixed(0)} ms after the window resize (300 ms of it debounce)`);
          }
          assert.deepEqual(xScreen(display), { width: want[0], height: want[1] });
          assert.equal(await page.title(), `${display} ${want[0]}x${want[1]} · pixelflux`);
          assert.ok(near(await centre(page), BLUE), `the canvas shows the screen at ${want}`);
          const resizes = await page.evaluate(() => window.pixelflux.resizes);
          assert.equal(resizes, resizesBefore + 1, 'one size change shown');
          assert.ok(samples.length >= 3, `sampled ${samples.length} animation frames`);
          const dark = samples.filter((f) => f.black > 0);
          assert.deepEqual(dark, [], `black pixels shown during the change to ${want}`);
          // Old size, then new size: never anything in between.
          const sizes = [...new Set(samples.map((f) => `${f.width}x${f.height}`))];
          assert.ok(sizes.length <= 2 && sizes.at(-1) === `${want[0]}x${want[1]}`, `canvas sizes seen: ${sizes}`);
        }
        assert.deepEqual(errors, []);
        assert.match(server.stderr, /resized :\d+ to 1200x800 for the page/);
      } finally {
        await page.close();
        await server.stop();
      }
    });
  }

  test('the default terminal fills the screen after a resize: a command\'s last line is visible', async () => {
    // No command: serve's own `xterm -maximized` (white, black text), started at 1280x720.
    const server = await startServe(['--listen', '127.0.0.1:0'], { env: headless() });
    const page = await browser.newPage();
    try {
      await page.setViewportSize({ width: 800, height: 500 });
      await page.goto(server.url);
      await waitForSize(page, 800, 500);
      const display = await displayOf(page);
      // The terminal's window follows the screen (no window manager: serve resizes it).
      const t0 = Date.now();
      let tree = '';
      while (Date.now() - t0 < WAIT_MS) {
        tree = spawnSync('xwininfo', ['-display', display, '-root', '-children'], { encoding: 'utf8' }).stdout;
        if (/"xterm"[^\n]*\s800x500\+0\+0/.test(tree)) break;
        await sleep(100);
      }
      assert.match(tree, /"xterm"[^\n]*\s800x500\+0\+0/, 'the xterm fills the 800x500 screen');
      await page.mouse.click(400, 250);
      await page.focus('#screen');
      // Blank lines push the output to the terminal's bottom rows: on the screen only if the
      // terminal is no taller than it.
      const textAtBottom = () => {
        const c = document.getElementById('screen');
        // Off the left edge, where the terminal's border shows.
        const d = c.getContext('2d').getImageData(8, c.height - 60, 200, 56).data;
        let dark = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 100 && d[i + 1] < 100 && d[i + 2] < 100) dark++;
        return dark > 30;
      };
      assert.equal(await page.evaluate(textAtBottom), false, 'no text at the bottom yet');
      await page.keyboard.type('clear; for i in $(seq 80); do echo; done; echo Bottom-OK');
      await page.keyboard.press('Enter');
      await page.waitForFunction(textAtBottom, null, { timeout: WAIT_MS, polling: 200 });
    } finally {
      await page.close();
      await server.stop();
    }
  });

  test('on a HiDPI screen the display gets the window size in device pixels', async () => {
    const hidpi = await launchBrowser({ deviceScaleFactor: 2, viewport: { width: 500, height: 350 } });
    const server = await startServe(['--listen', '127.0.0.1:0', ...paintRoot], { env: headless() });
    try {
      const page = await hidpi.newPage();
      assert.equal(await page.evaluate(() => window.devicePixelRatio), 2);
      await page.goto(server.url);
      await waitForSize(page, 1000, 700);
      assert.deepEqual(xScreen(await displayOf(page)), { width: 1000, height: 700 });
      assert.deepEqual(await page.evaluate(() => window.pixelflux.sizeSent), { width: 1000, height: 700 });
    } finally {
      await server.stop();
      await hidpi.close();
    }
  });

  test('with --size the display keeps its size and the page is not asked for its own', async () => {
    const server = await startServe(['--listen', '127.0.0.1:0', '--size', '640x360', ...paintRoot], { env: headless() });
    const page = await browser.newPage();
    try {
      await page.setViewportSize({ width: 1000, height: 700 });
      await page.goto(server.url);
      await waitForFullPicture(page);
      const display = await displayOf(page);
      await page.evaluate(() => window.addEventListener('resize', () => { window.__resizedAt = performance.now(); }, { once: true }));
      await page.setViewportSize({ width: 900, height: 600 });
      // Past the page's 300 ms debounce after the resize event (not after a fixed time a
      // loaded machine may spend before delivering it): a size would have gone out by now.
      await page.waitForFunction(() => window.__resizedAt !== undefined && performance.now() - window.__resizedAt > 1000,
        null, { timeout: WAIT_MS, polling: 100 });
      const s = await page.evaluate(() => ({
        canResize: window.pixelflux.canResize,
        sent: window.pixelflux.sizeSent,
        hello: [window.pixelflux.hello.width, window.pixelflux.hello.height],
      }));
      assert.deepEqual(s, { canResize: false, sent: null, hello: [640, 360] });
      assert.deepEqual(xScreen(display), { width: 640, height: 360 });
    } finally {
      await page.close();
      await server.stop();
    }
  });
});
