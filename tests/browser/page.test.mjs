// The page on a HiDPI touch screen: the canvas at one device pixel per capture pixel (read back
// exact against the source), two-finger scrolling, IME composition and dead keys, checked by
// real X clients (xev's record, a shell in an xterm).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WAIT_MS, headless, launchBrowser, openPage as open, readSettled, sleep, snapshot, waitForFile,
  waitForWindow, withServe,
} from './support.mjs';

// A HiDPI touch screen: 2 device pixels per CSS pixel.
const DPR = 2;
let browser;
let dir;
before(async () => {
  browser = await launchBrowser({ deviceScaleFactor: DPR, viewport: { width: 500, height: 300 }, hasTouch: true });
  dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-page-'));
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Serves `args` on a private display (no $DISPLAY), runs `fn(server)`. */
const serve = (args, fn) => withServe(args, fn, { env: headless() });
const openPage = (url) => open(browser, url);

/** The canvas's box in CSS pixels, the page's scale and the capture's size. */
const geometry = (page) => page.evaluate(() => {
  const c = document.getElementById('screen');
  const r = c.getBoundingClientRect();
  return {
    left: r.left, top: r.top, width: r.width, height: r.height, scale: window.pixelflux.scale,
    rendering: c.style.imageRendering, canvas: [c.width, c.height], dpr: window.devicePixelRatio,
  };
});

/** Page coordinates (CSS px) of the centre of capture pixel (x, y). */
async function pageXY(page, x, y) {
  const g = await geometry(page);
  const s = g.width / g.canvas[0];
  return { x: g.left + (x + 0.5) * s, y: g.top + (y + 0.5) * s };
}

/** xev's ButtonPress/ButtonRelease records: [{ kind, button, x, y }]. */
function buttons(log) {
  const re = /(ButtonPress|ButtonRelease) event,[^\n]*\n[^\n]*\((-?\d+),(-?\d+)\), root:\((-?\d+),(-?\d+)\),\n\s*state (0x[0-9a-f]+), button (\d+)/g;
  return [...log.matchAll(re)].map((m) => ({ kind: m[1], x: +m[4], y: +m[5], button: +m[7] }));
}

/** A PNG (a screenshot) as RGB bytes, decoded by ffmpeg. */
function pngToRgb(png, width, height) {
  const file = path.join(dir, 'shot.png');
  writeFileSync(file, png);
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    { maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, String(r.stderr));
  assert.equal(r.stdout.length, width * height * 3, 'the screenshot has the capture\'s size in device pixels');
  return r.stdout;
}

/** Pixels that differ between two RGB pictures of the same size. */
function differing(a, b) {
  let n = 0;
  for (let i = 0; i < a.length; i += 3) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
  }
  return n;
}

describe('the page on a HiDPI screen', () => {
  test('one capture pixel per device pixel where it fits, whole multiples, else fitted; exact on screen', async () => {
    const [w, h] = [640, 360];
    const ref = snapshot(['--scene', 'desktop', '--region', `${w}x${h}`]);
    await serve(['--scene', 'desktop', '--region', `${w}x${h}`], async (server) => {
      const { page, errors } = await openPage(server.url);
      // 500x300 CSS px = 1000x600 device px: 640x360 fits at 1:1 (and 2:1 does not).
      let g = await geometry(page);
      assert.equal(g.dpr, DPR);
      assert.deepEqual([g.width, g.height, g.scale], [w / DPR, h / DPR, 1]);
      // Centred on whole device pixels.
      assert.deepEqual([g.left * DPR, g.top * DPR], [(1000 - w) / 2, (600 - h) / 2]);
      // Once the lossless stills are in, the screen shows the source exactly: the canvas, and
      // the browser's own picture of it in device pixels.
      await page.waitForFunction(() => {
        const s = window.pixelflux;
        return s.stills >= Math.ceil(s.hello.height / s.hello.stripe_height);
      }, null, { timeout: WAIT_MS, polling: 50 });
      // Read once nothing more is on its way (a still decoding, a refresh).
      const { canvas } = await readSettled(page);
      const rgb = Buffer.alloc(w * h * 3);
      for (let i = 0; i < w * h; i++) canvas.rgba.copy(rgb, i * 3, i * 4, i * 4 + 3);
      assert.equal(differing(rgb, ref.rgb), 0, 'the canvas is the source');
      // The browser's picture may show the canvas a frame or more late on a loaded machine
      // (the lossy picture before the stills): taken again until it is exact, or a deadline.
      const deadline = Date.now() + WAIT_MS;
      let off;
      for (let shots = 1; ; shots++) {
        const shot = await page.screenshot({ clip: { x: g.left, y: g.top, width: g.width, height: g.height }, scale: 'device' });
        off = differing(pngToRgb(shot, w, h), ref.rgb);
        if (off !== 0) console.log(`screenshot ${shots}: ${off} pixels differ`);
        if (off === 0 || Date.now() > deadline) break;
        await sleep(200);
      }
      assert.equal(off, 0, 'the screen shows the source pixel for pixel');

      // A window with room for twice that: two device pixels per capture pixel, pixelated.
      await page.setViewportSize({ width: 700, height: 400 });
      await page.waitForFunction(() => window.pixelflux.scale === 2);
      g = await geometry(page);
      assert.deepEqual([g.width, g.height, g.rendering], [w, h, 'pixelated']);
      // Too small for 1:1: fitted, smoothly.
      await page.setViewportSize({ width: 200, height: 150 });
      await page.waitForFunction(() => window.pixelflux.scale < 1);
      g = await geometry(page);
      assert.equal(g.width, 200);
      assert.ok(Math.abs(g.height - 112.5) < 0.01, `${g.height}`);
      assert.equal(g.rendering, 'auto');
      assert.deepEqual(errors, []);
      await page.close();
    });
  });
});

describe('touch, IME and dead keys reach the X server', () => {
  test('two fingers scroll (wheel clicks, no button press); one finger taps a click', async () => {
    const log = path.join(dir, 'xev-touch.log');
    await serve(['--size', '640x360', '--', 'sh', '-c',
      `exec xev -geometry 640x360+0+0 -event mouse -event button > ${log}`], async (server) => {
      const { page, errors } = await openPage(server.url);
      await page.waitForFunction(() => {
        const s = window.pixelflux;
        const [r, g, b] = document.getElementById('screen').getContext('2d').getImageData(320, 180, 1, 1).data;
        return s.input && s.input.control && r > 200 && g > 200 && b > 200;
      }, null, { timeout: WAIT_MS, polling: 100 });
      const cdp = await page.context().newCDPSession(page);
      const touchAt = (pts) => pts.map(([x, y], id) => ({ x, y, id }));
      // Two fingers around capture pixel (320, 180), moving up 150 CSS px in 10 steps: the
      // content follows the fingers, so that is scrolling down, 30 px a click = 5 clicks.
      const c = await pageXY(page, 320, 180);
      const pair = (dy) => touchAt([[c.x - 20, c.y + 40 + dy], [c.x + 20, c.y + 40 + dy]]);
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pair(0) });
      for (let i = 1; i <= 10; i++) {
        await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pair(-15 * i) });
        await sleep(20);
      }
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
      let text = await waitForFile(log, (t) => buttons(t).length >= 10, 'two-finger scroll');
      await sleep(300);
      text = readFileSync(log, 'utf8');
      const presses = buttons(text).filter((b) => b.kind === 'ButtonPress');
      assert.deepEqual(presses.map((b) => b.button), [5, 5, 5, 5, 5], 'five wheel clicks down, no button 1');
      // At the fingers' midpoint as it moves, in capture pixels (2 per CSS px here): x stays,
      // y climbs from below the start towards the top.
      assert.ok(presses.every((b) => Math.abs(b.x - 320) <= 1), JSON.stringify(presses));
      assert.ok(presses.every((b, i) => i === 0 || b.y < presses[i - 1].y), JSON.stringify(presses));
      assert.ok(presses[0].y <= 260 && presses[0].y >= 180, JSON.stringify(presses));
      // And back up: fingers moving down scroll up (button 4).
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pair(-60) });
      for (let i = 1; i <= 4; i++) {
        await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pair(-60 + 15 * i) });
        await sleep(20);
      }
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
      text = await waitForFile(log, (t) => buttons(t).length >= 14, 'two-finger scroll up');
      assert.deepEqual(buttons(text).slice(10).filter((b) => b.kind === 'ButtonPress').map((b) => b.button), [4, 4]);
      // One finger tapped at capture pixel (100, 50): a left click there.
      const t = await pageXY(page, 100, 50);
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: touchAt([[t.x, t.y]]) });
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
      text = await waitForFile(log, (t) => buttons(t).length >= 16, 'a tap');
      assert.deepEqual(buttons(text).slice(14).map((b) => [b.kind, b.button, b.x, b.y]),
        [['ButtonPress', 1, 100, 50], ['ButtonRelease', 1, 100, 50]]);
      assert.ok(await page.evaluate(() => window.pixelflux.input.touchScrolls) >= 7);
      await cdp.detach();
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  test('IME composition and a dead-key sequence deliver the composed characters to an xterm', async () => {
    const out = path.join(dir, 'ime.txt');
    await serve(['--size', '640x360', '--', 'xterm', '-geometry', '80x20+0+0', '-e', 'sh'], async (server) => {
      const { page, errors } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      // xterm gets keys while the pointer is over it (no window manager), so only once its
      // window is up (it may map well after serve's first picture). A mouse click (not a
      // touch) also gives the page's keyboard sink the focus.
      await waitForWindow(page, 100, 100);
      const at = await pageXY(page, 100, 100);
      await page.mouse.click(at.x, at.y);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'keys');
      await page.keyboard.type('echo ');
      const cdp = await page.context().newCDPSession(page);
      // An IME: a composition shown while typing, then committed as 日本.
      await cdp.send('Input.imeSetComposition', { text: 'にほ', selectionStart: 2, selectionEnd: 2 });
      await cdp.send('Input.imeSetComposition', { text: 'にほん', selectionStart: 3, selectionEnd: 3 });
      await cdp.send('Input.insertText', { text: '日本' });
      // A dead key (´ on a US-International map), then e: the composed é comes as its key.
      await cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', key: 'Dead', code: 'Quote', windowsVirtualKeyCode: 222 });
      await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: 'Dead', code: 'Quote', windowsVirtualKeyCode: 222 });
      await cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', key: 'é', code: 'KeyE', text: 'é', unmodifiedText: 'é', windowsVirtualKeyCode: 69 });
      await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: 'é', code: 'KeyE', windowsVirtualKeyCode: 69 });
      // Text inserted with no composition and no key (an on-screen keyboard, a dictation).
      await cdp.send('Input.insertText', { text: 'ñ' });
      await cdp.detach();
      await page.keyboard.type(` > ${out}`);
      await page.keyboard.press('Enter');
      const text = await waitForFile(out, (t) => t.endsWith('\n'), 'the composed text');
      assert.equal(text, '日本éñ\n');
      assert.equal(await page.evaluate(() => document.getElementById('keys').value), '', 'the sink keeps nothing');
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  test('an application\'s invisible cursor hides the page\'s pointer (CSS cursor: none)', async () => {
    // The application stays connected, as real ones do: X.Org will not show the image of a
    // cursor whose client has gone (BadAccess), so `xsetroot -cursor` cannot stand in for
    // one (the core keeps the last cursor then; crates/pixelflux/tests/overlay.rs). Once
    // the flag file exists it gives the root window a cursor from an all-zero bitmap and
    // mask, which X reports as an image with every pixel transparent.
    const flag = path.join(dir, 'hide-pointer');
    const app = `
import ctypes, os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
x = ctypes.CDLL("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
d = x.XOpenDisplay(None)
if not d:
    sys.exit("cannot open the display")
ul, vp = ctypes.c_ulong, ctypes.c_void_p
x.XDefaultRootWindow.restype = ul
x.XDefaultRootWindow.argtypes = [vp]
root = x.XDefaultRootWindow(d)
x.XCreateBitmapFromData.restype = ul
x.XCreateBitmapFromData.argtypes = [vp, ul, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
bitmap = x.XCreateBitmapFromData(d, root, bytes(32), 16, 16)
color = ctypes.create_string_buffer(16)  # an XColor, all zero
x.XCreatePixmapCursor.restype = ul
x.XCreatePixmapCursor.argtypes = [vp, ul, ul, vp, vp, ctypes.c_uint, ctypes.c_uint]
cursor = x.XCreatePixmapCursor(d, bitmap, bitmap, color, color, 0, 0)
x.XDefineCursor.argtypes = [vp, ul, ul]
x.XDefineCursor(d, root, cursor)
x.XFlush.argtypes = [vp]
x.XFlush(d)
time.sleep(60)
`;
    await serve(['--size', '320x240', '--', 'python3', '-c', app, flag],
      async (server) => {
        const { page, errors } = await openPage(server.url);
        await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.cursor);
        assert.match(await page.evaluate(() => window.pixelflux.input.cursor.css), /^url\(/, 'the server\'s default pointer first');
        // Only once the page shows the default pointer (no race with serve's start on a
        // loaded machine) does the application hide it.
        writeFileSync(flag, '');
        await page.waitForFunction(() => window.pixelflux.input.cursor.css === 'none', null, { timeout: WAIT_MS });
        assert.equal(await page.evaluate(() => document.getElementById('screen').style.cursor), 'none');
        assert.deepEqual(errors, []);
        await page.close();
      });
  });
});
