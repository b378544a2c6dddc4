// `pixelflux serve` as a remote desktop: headless Chromium drives the real page against a
// private Xvfb, and what arrives at the X server is checked by real X clients: a shell in an
// xterm (its effect on disk) and xev (the events it records).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import {
  WAIT_MS, headless, launchBrowser, openPage as open, runBin, serverDisplay, sleep, startServe,
  waitForFile, waitForFullPicture, waitForQuiet, waitForRole, waitForWindow, withServe,
} from './support.mjs';

let browser;
let dir;
before(async () => {
  browser = await launchBrowser();
  dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-remote-'));
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Serves `args` on a private display (no $DISPLAY), runs `fn(server)`. */
const serve = (args, fn) => withServe(args, fn, { env: headless() });

/** A page at a viewport whose shape differs from the capture's, so the picture is letterboxed. */
const openPage = (url) => open(browser, url, { viewport: { width: 1000, height: 700 } });

/** Page coordinates of capture pixel (x, y), through the page's scaling and letterboxing. */
async function pageXY(page, x, y) {
  return page.evaluate(([x, y]) => {
    const h = window.pixelflux.hello;
    const r = document.getElementById('screen').getBoundingClientRect();
    const s = Math.min(r.width / h.width, r.height / h.height);
    return {
      x: r.left + (r.width - h.width * s) / 2 + (x + 0.5) * s,
      y: r.top + (r.height - h.height * s) / 2 + (y + 0.5) * s,
    };
  }, [x, y]);
}

/**
 * Presses and releases a key that produces `ch` on a layout Playwright does not know (it only
 * knows US keys), through the DevTools protocol, as a Russian or French keyboard would.
 */
async function pressChar(page, ch) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', key: ch, text: ch, unmodifiedText: ch });
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: ch });
  await cdp.detach();
}

/** xev's ButtonPress/ButtonRelease records: [{ kind, button, x, y, state }]. */
function buttons(log) {
  const out = [];
  const re = /(ButtonPress|ButtonRelease) event,[^\n]*\n[^\n]*\((-?\d+),(-?\d+)\), root:\((-?\d+),(-?\d+)\),\n\s*state (0x[0-9a-f]+), button (\d+)/g;
  for (const m of log.matchAll(re)) {
    out.push({ kind: m[1], x: +m[4], y: +m[5], state: parseInt(m[6], 16), button: +m[7] });
  }
  return out;
}

/** xev's MotionNotify records: [{ x, y, state }]. */
function motions(log) {
  const re = /MotionNotify event,[^\n]*\n[^\n]*root:\((-?\d+),(-?\d+)\),\n\s*state (0x[0-9a-f]+)/g;
  return [...log.matchAll(re)].map((m) => ({ x: +m[1], y: +m[2], state: parseInt(m[3], 16) }));
}

/**
 * What `xclip -o` reads from an X selection, polled until it is `want` or a deadline (a new
 * owner takes a moment to be asked); the last reading either way.
 */
async function xSelection(env, selection, want) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const got = spawnSync('xclip', ['-o', '-selection', selection], { env, encoding: 'utf8', timeout: 10000 }).stdout;
    if (got === want || Date.now() > deadline) return got;
    await sleep(100);
  }
}

const xevCommand = (log) => ['--', 'sh', '-c', `exec xev -geometry 640x360+0+0 -event mouse -event button -event keyboard > ${log}`];

describe('pixelflux serve: input from the page reaches the X server', () => {
  test('keys typed into the page run a shell command in an xterm, Unicode included', async () => {
    const out = path.join(dir, 'typed.txt');
    await serve(['--size', '640x360', '--', 'xterm', '-geometry', '80x20+0+0', '-e', 'sh'], async (server) => {
      const { page, errors } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      assert.match(await page.title(), /^:\d+ 640x360 · pixelflux$/, 'the title names the display');
      // xterm gets keys when the pointer is over it (no window manager: PointerRoot focus):
      // once its window is up, which may be well after serve's first picture.
      await waitForWindow(page, 100, 100);
      const at = await pageXY(page, 100, 100);
      await page.mouse.move(at.x, at.y);
      await page.mouse.click(at.x, at.y);
      // '>' and the capitals need Shift on a US map, and Playwright sends them without:
      // they arrive through a spare keycode. 'ж' and 'é' have no keycode on a US map at all.
      await page.keyboard.type(`echo Typed-OK `);
      await pressChar(page, 'ж');
      await pressChar(page, 'é');
      await page.keyboard.type(` > ${out}`);
      await page.keyboard.press('Enter');
      const text = await waitForFile(out, (t) => t.endsWith('\n'), 'the typed command');
      assert.equal(text, 'Typed-OK жé\n');
      // A held modifier: Ctrl+U (kill line) then a new command.
      await page.keyboard.type('echo never');
      await page.keyboard.down('Control');
      await page.keyboard.press('u');
      await page.keyboard.up('Control');
      await page.keyboard.type(`echo second >> ${out}`);
      await page.keyboard.press('Enter');
      const both = await waitForFile(out, (t) => t.split('\n').length >= 3, 'the second command');
      assert.equal(both, 'Typed-OK жé\nsecond\n');
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  test('clicks, drags and wheels land at the right place with the right buttons (xev)', async () => {
    const log = path.join(dir, 'xev-mouse.log');
    await serve(['--size', '640x360', ...xevCommand(log)], async (server) => {
      const { page, errors } = await openPage(server.url);
      await waitForWindow(page);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      const p = async (x, y) => pageXY(page, x, y);
      // Left click at (100, 50).
      let a = await p(100, 50);
      await page.mouse.click(a.x, a.y);
      let text = await waitForFile(log, (t) => buttons(t).some((b) => b.kind === 'ButtonRelease' && b.button === 1), 'left click');
      let bs = buttons(text);
      assert.deepEqual(bs.map((b) => [b.kind, b.button, b.x, b.y]),
        [['ButtonPress', 1, 100, 50], ['ButtonRelease', 1, 100, 50]]);
      // Right and middle clicks.
      a = await p(200, 120);
      await page.mouse.click(a.x, a.y, { button: 'right' });
      await page.mouse.click(a.x, a.y, { button: 'middle' });
      text = await waitForFile(log, (t) => buttons(t).length >= 6, 'right and middle clicks');
      assert.deepEqual(buttons(text).slice(2).map((b) => [b.kind, b.button, b.x, b.y]), [
        ['ButtonPress', 3, 200, 120], ['ButtonRelease', 3, 200, 120],
        ['ButtonPress', 2, 200, 120], ['ButtonRelease', 2, 200, 120],
      ]);
      // A drag from (300, 60) to (500, 300): motion with Button1 held, release at the end.
      const from = await p(300, 60);
      const to = await p(500, 300);
      await page.mouse.move(from.x, from.y);
      await page.mouse.down();
      await page.mouse.move(to.x, to.y, { steps: 10 });
      await page.mouse.up();
      text = await waitForFile(log, (t) => buttons(t).length >= 8, 'drag');
      bs = buttons(text).slice(6);
      assert.deepEqual(bs.map((b) => [b.kind, b.button, b.x, b.y]),
        [['ButtonPress', 1, 300, 60], ['ButtonRelease', 1, 500, 300]]);
      const dragged = motions(text).filter((m) => m.state & 0x100);
      assert.ok(dragged.length >= 5, `motion with Button1 held: ${dragged.length}`);
      assert.deepEqual(dragged.at(-1), { x: 500, y: 300, state: 0x100 });
      // Wheel: one notch each way on both axes, then smooth deltas that add up to a click.
      a = await p(320, 180);
      await page.mouse.move(a.x, a.y);
      for (const [dx, dy] of [[0, 100], [0, -100], [100, 0], [-100, 0], [0, 30], [0, 30], [0, 30], [0, 30]]) {
        await page.mouse.wheel(dx, dy);
        await sleep(50);
      }
      text = await waitForFile(log, (t) => buttons(t).length >= 18, 'wheel clicks');
      const wheel = buttons(text).slice(8).filter((b) => b.kind === 'ButtonPress').map((b) => b.button);
      assert.deepEqual(wheel, [5, 4, 7, 6, 5], 'down, up, right, left, then 4 × 30 px = one click down');
      assert.ok(buttons(text).slice(8).every((b) => b.x === 320 && b.y === 180));
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  test('a view token watches but its input is refused and counted; the control token controls', async () => {
    const log = path.join(dir, 'xev-roles.log');
    const server = await serve(['--size', '640x360', '--token', 'ctl-tok', '--view-token', 'see/tok&',
      ...xevCommand(log)], async (server) => {
      // Both URLs printed, the view token percent-encoded.
      await server.waitForStdout(/view only: /);
      assert.match(server.stdout, /view only: http:\/\/127\.0\.0\.1:\d+\/\?token=see%2Ftok%26/);
      const viewUrl = server.stdout.match(/view only: (\S+)/)[1];
      const viewer = await openPage(viewUrl);
      await waitForWindow(viewer.page);
      await waitForRole(viewer.page);
      assert.equal(await viewer.page.evaluate(() => window.pixelflux.input.control), false);
      // The page itself sends nothing without control: force messages through its socket.
      await viewer.page.evaluate(() => {
        const s = window.pixelflux;
        s.send({ type: 'clipboard', text: 'not from a viewer' });
        s.send({ type: 'resize', width: 800, height: 600 });
        s.send({ type: 'pointer', x: 10, y: 10, buttons: 1 });
        s.send({ type: 'pointer', x: 10, y: 10, buttons: 0 });
        s.send({ type: 'key', key: 'q', code: 'KeyQ', down: true });
        s.send({ type: 'key', key: 'q', code: 'KeyQ', down: false });
      });
      // The server took them (and refused the first) before the controller connects: a
      // viewer's input it let through would reach xev before the controller's click.
      // Every kind of input goes through the same counted log: the first refusal is logged
      // (then every 100th), whatever its kind.
      await server.waitForStderr(/refused input \(paste\) from a viewer without control \(1 refused so far\)/);
      const ctl = await openPage(server.url);
      await ctl.page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      const a = await pageXY(ctl.page, 60, 70);
      await ctl.page.mouse.click(a.x, a.y);
      const text = await waitForFile(log, (t) => buttons(t).length >= 2, 'the controller\'s click');
      // Only the controller's click arrived (the viewer's came first, so it would show first).
      assert.deepEqual(buttons(text).map((b) => [b.kind, b.button, b.x, b.y]),
        [['ButtonPress', 1, 60, 70], ['ButtonRelease', 1, 60, 70]]);
      assert.doesNotMatch(text, /KeyPress event/);
      await viewer.page.close();
      await ctl.page.close();
      return server;
    });
    // The six refusals were counted, paste and resize included; only the first was logged.
    await server.waitForStderr(/6 input messages refused \(from viewers without control/);
    assert.equal(server.stderr.match(/refused input \(/g).length, 1, server.stderr);
  });

  test('clipboard text goes both ways between the page and the X clipboard', async () => {
    await serve(['--size', '320x240', '--', 'sleep', '60'], async (server) => {
      const env = { ...headless(), DISPLAY: await serverDisplay(server) };
      const { page } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      // X → page: xclip takes the CLIPBOARD (it forks, and its child owns and serves it until
      // another client takes it; it may take it after spawnSync returns: waited for below).
      const fromX = `copied in X: ünïcødé ✓ ${Date.now()}`;
      const put = spawnSync('xclip', ['-selection', 'clipboard', '-i'], { input: fromX, env, stdio: ['pipe', 'ignore', 'ignore'], timeout: 10000 });
      assert.equal(put.status, 0);
      await page.waitForFunction((t) => window.pixelflux.input.clipboard === t, fromX, { timeout: WAIT_MS });
      // Page → X: text on the browser's clipboard, pasted with Ctrl+V into the canvas.
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write']);
      const fromPage = `pasted in the page: жé ✓ ${Date.now()}`;
      await page.evaluate((t) => navigator.clipboard.writeText(t), fromPage);
      await page.focus('#screen');
      await page.keyboard.press('Control+V');
      // Each selection polled on its own: serve need not take both at the same moment.
      assert.equal(await xSelection(env, 'clipboard', fromPage), fromPage, 'the X clipboard holds the pasted text');
      assert.equal(await xSelection(env, 'primary', fromPage), fromPage, 'and so does PRIMARY (middle-click paste)');
      // Windows and old Mac line breaks arrive as LF (a terminal would paste CRLF as two).
      // The page sends them so (serve also converts what other clients send).
      await page.evaluate(() => {
        const s = window.pixelflux;
        const send = s.send;
        s.pastesSent = [];
        s.send = (m) => { if (m.type === 'clipboard') s.pastesSent.push(m.text); send(m); };
      });
      const crlf = `one\r\ntwo\rthree\n${Date.now()}`;
      await page.evaluate((t) => navigator.clipboard.writeText(t), crlf);
      await page.keyboard.press('Control+V');
      const lf = crlf.replace(/\r\n?/g, '\n');
      assert.equal(await xSelection(env, 'clipboard', lf), lf);
      assert.deepEqual(await page.evaluate(() => window.pixelflux.pastesSent), [lf]);
      await page.close();
    });
  });

  test('in the default terminal Ctrl+Shift+V pastes the page\'s clipboard and Ctrl+Shift+C copies the selection', async () => {
    const out = path.join(dir, 'pasted.txt');
    // No command: serve's own xterm, with its clipboard keys.
    await serve(['--size', '640x360'], async (server) => {
      await server.waitForStderr(/started "xterm"/);
      const { page } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write']);
      // The xterm fills the screen and gets keys while the pointer is over it (once it is up).
      await waitForWindow(page, 320, 180);
      const at = await pageXY(page, 320, 180);
      await page.mouse.move(at.x, at.y);
      await page.mouse.click(at.x, at.y);
      await page.focus('#screen');
      // Page → xterm: the page's clipboard pasted with Ctrl+Shift+V runs as a command. Its
      // own line break ends it (an Enter typed after it could overtake the paste, which xterm
      // fetches from the selection owner while later keys are already queued).
      await page.evaluate((t) => navigator.clipboard.writeText(t), `echo Pasted-OK > ${out}\n`);
      await page.keyboard.press('Control+Shift+V');
      assert.equal(await waitForFile(out, (t) => t.endsWith('\n'), 'the pasted command'), 'Pasted-OK\n');
      // xterm → page: the top line selected, copied with Ctrl+Shift+C.
      const word = `Copy-Me-${Date.now() % 100000}`;
      await page.keyboard.type(`clear; echo ${word}`);
      await page.keyboard.press('Enter');
      // Selected once the screen shows it: the top text line is the word alone (13 characters;
      // before the clear it held the prompt and the pasted command, far wider).
      await page.waitForFunction(() => {
        const c = document.getElementById('screen');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const dark = (x, y) => {
          const i = (y * c.width + x) * 4;
          return d[i] < 100 && d[i + 1] < 100 && d[i + 2] < 100;
        };
        // Inside xterm's 1-pixel border.
        let right = -1;
        let inLine = false;
        for (let y = 2; y < 40; y++) {
          let rowRight = -1;
          for (let x = 2; x < c.width - 2; x++) if (dark(x, y)) rowRight = x;
          if (rowRight < 0 && inLine) break;
          if (rowRight >= 0) inLine = true;
          right = Math.max(right, rowRight);
        }
        return right > 60 && right < 200;
      }, null, { timeout: WAIT_MS, polling: 100 });
      // Selected by a drag along it, past its end: a triple click depends on its clicks
      // reaching xterm within its multi-click time (250 ms), which a loaded machine missed.
      const from = await pageXY(page, 2, 5);
      const to = await pageXY(page, 400, 5);
      // xterm sometimes extended the drag from the click that focused it (the middle of the
      // screen) instead of starting at the press, with the page's messages in the right
      // order: a click at the start first makes that the anchor, and the drag begins after
      // xterm's multi-click time (250 ms), so it is not taken for a double click.
      await page.mouse.click(from.x, from.y);
      await sleep(400);
      await page.mouse.move(from.x, from.y);
      await page.mouse.down();
      await page.mouse.move(to.x, to.y, { steps: 8 });
      await page.mouse.up();
      await sleep(300);
      assert.notEqual(await page.evaluate(() => window.pixelflux.input.clipboard), word,
        'a selection alone does not set the CLIPBOARD');
      await page.keyboard.press('Control+Shift+C');
      await page.waitForFunction((t) => (window.pixelflux.input.clipboard ?? '').trim() === t, word, { timeout: WAIT_MS });
      await page.close();
    });
  });

  test('a paste over the limit is refused with a visible notice and its key is not sent; 100 KiB pastes', async () => {
    await serve(['--size', '320x240', '--', 'sleep', '60'], async (server) => {
      const env = { ...headless(), DISPLAY: await serverDisplay(server) };
      const { page } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write']);
      const xClipboard = () => spawnSync('xclip', ['-o', '-selection', 'clipboard'], { env, encoding: 'utf8', timeout: 5000 }).stdout;
      // The messages the paste sent: once `expect` of them are out (the paste key waits for
      // the browser's paste event), and nothing more for a moment.
      const paste = async (text, expect) => {
        await page.evaluate((t) => navigator.clipboard.writeText(t), text);
        await page.focus('#screen');
        const before = await page.evaluate(() => window.pixelflux.input.sent);
        await page.keyboard.press('Control+V');
        await page.waitForFunction(([b, n]) => window.pixelflux.input.sent - b >= n, [before, expect],
          { timeout: WAIT_MS, polling: 50 }).catch(() => {});
        await sleep(300);
        return (await page.evaluate(() => window.pixelflux.input.sent)) - before;
      };
      // 100 KiB (over the old 4 KiB limit) arrives whole.
      const medium = `${'0123456789abcdef'.repeat(6400)}${Date.now()}`;
      assert.equal(await paste(medium, 5), 5, 'Control down, the paste, V down and up, Control up');
      assert.equal(await xSelection(env, 'clipboard', medium), medium, 'the X clipboard holds the 100 KiB paste');
      // 300 KiB: refused, shown in the page, and the V key is not sent (the application
      // would paste the previous clipboard): only Control's press and release went out.
      const huge = 'x'.repeat(300 * 1024);
      assert.equal(await paste(huge, 2), 2, 'only Control went out');
      assert.equal(await page.evaluate(() => window.pixelflux.input.pasteTooLarge), 1);
      const notice = page.locator('#notice');
      assert.equal(await notice.isVisible(), true, 'a notice is shown');
      assert.match(await notice.textContent(), /Paste not sent: 300 KiB of text is over the 256 KiB limit/);
      assert.equal(xClipboard(), medium, 'the X clipboard is unchanged');
      // The connection stayed up (the page did not send what the server would close it for).
      assert.equal(await page.evaluate(() => window.pixelflux.connects), 1);
      await page.close();
    });
  });

  test('when the command exits the page says the session has ended and stops reconnecting', async () => {
    // The command ends once the page shows the picture (the test creates the flag file), not
    // after a fixed time that a loaded machine may spend starting serve and the page.
    const flag = path.join(dir, 'end-session');
    await serve(['--size', '320x240', '--', 'sh', '-c', 'until [ -e "$1" ]; do sleep 0.05; done', 'sh', flag], async (server) => {
      const { page } = await openPage(server.url);
      await waitForRole(page);
      writeFileSync(flag, '');
      await page.waitForFunction(() => window.pixelflux.ended === true, null, { timeout: WAIT_MS });
      assert.equal(await page.locator('#overlay').textContent(), 'the session has ended');
      assert.equal(await page.locator('#overlay').isVisible(), true);
      await sleep(3000);
      assert.equal(await page.evaluate(() => window.pixelflux.connects), 1, 'no reconnect');
      assert.equal(await page.locator('#overlay').textContent(), 'the session has ended');
      await page.close();
    });
  });

  test('when the capture fails (its X server went away) the page shows why and keeps reconnecting', async () => {
    // A user's display: our own Xvfb, which numbers itself (-displayfd) and is then killed.
    const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '320x240x24', '-nolisten', 'tcp'],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    try {
      const display = await new Promise((resolve, reject) => {
        let got = '';
        xvfb.stdio[3].on('data', (d) => {
          got += d;
          if (got.includes('\n')) resolve(`:${got.trim()}`);
        });
        xvfb.on('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
      });
      const server = await startServe(['--listen', '127.0.0.1:0', '--display', display],
        { env: { ...headless(), DISPLAY: display } });
      try {
        const { page, errors } = await openPage(server.url);
        await waitForRole(page);
        xvfb.kill('SIGKILL');
        const { code } = await server.exited;
        assert.notEqual(code, 0);
        const reason = server.stderr.match(/capture ended: [^\n]*/)?.[0];
        assert.ok(reason, server.stderr);
        await page.waitForFunction(() => window.pixelflux.closeReason !== null, null, { timeout: WAIT_MS });
        // The reason the capture gave is the page's (minus serve's own log decoration).
        assert.ok(reason.startsWith(await page.evaluate(() => window.pixelflux.closeReason)));
        assert.match(await page.evaluate(() => window.pixelflux.closeReason), /^capture ended: the X server went away/);
        // Nothing answers now: the reason stays above the countdown while it retries.
        await page.waitForFunction(() => window.pixelflux.retries >= 3, null, { timeout: WAIT_MS });
        assert.match(await page.locator('#overlay').textContent(),
          /^capture ended: the X server went away[^\n]*\ndisconnected: reconnecting in \d+\.\d s$/);
        assert.equal(await page.evaluate(() => window.pixelflux.ended), undefined);
        assert.deepEqual(errors, []);
        await page.close();
      } finally {
        await server.stop();
      }
    } finally {
      xvfb.kill('SIGKILL');
    }
  });

  test('the figures badge is clear of the first text line and the full-screen icon is drawn', async () => {
    await serve(['--size', '320x240', '--', 'sleep', '60'], async (server) => {
      const { page } = await openPage(server.url);
      const r = await page.evaluate(() => {
        const box = (el) => el.getBoundingClientRect().toJSON();
        return {
          overlay: box(document.getElementById('overlay')),
          icon: box(document.querySelector('#fullscreen svg')),
          path: document.querySelector('#fullscreen svg path').getTotalLength(),
        };
      });
      // Top right, under the buttons: not over the top-left corner where a terminal starts.
      assert.ok(r.overlay.top >= 28 && r.overlay.left > 500, JSON.stringify(r.overlay));
      assert.ok(r.icon.width >= 10 && r.icon.height >= 10 && r.path > 20, JSON.stringify(r));
      await page.close();
    });
  });

  test('the browser draws the X pointer: its shape follows the window under it; --cursor burns it in instead', async () => {
    await serve(['--size', '640x360', '--', 'xterm', '-geometry', '40x10+0+0'], async (server) => {
      const { page, errors } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control &&
        window.pixelflux.input.cursor);
      const root = await page.evaluate(() => window.pixelflux.input.cursor);
      assert.match(await page.evaluate(() => document.getElementById('screen').style.cursor),
        /^url\("?data:image\/png;base64,[A-Za-z0-9+/=]+"?\) \d+ \d+, default$/);
      // Over the xterm (once it is up) the X server shows xterm's text cursor: a new shape.
      await waitForWindow(page, 30, 30);
      const at = await pageXY(page, 30, 30);
      await page.mouse.move(at.x, at.y);
      await page.waitForFunction((css) => window.pixelflux.input.cursor.css !== css, root.css, { timeout: WAIT_MS });
      // And back over the root window, the root's shape again.
      const out = await pageXY(page, 600, 300);
      await page.mouse.move(out.x, out.y);
      await page.waitForFunction((css) => window.pixelflux.input.cursor.css === css, root.css, { timeout: WAIT_MS });
      assert.deepEqual(errors, []);
      await page.close();
    });
    await serve(['--size', '320x240', '--cursor', '--', 'sleep', '60'], async (server) => {
      const { page } = await openPage(server.url);
      await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
      await sleep(500);
      assert.equal(await page.evaluate(() => window.pixelflux.input.cursor), null);
      await page.close();
    });
  });

  test('--view-only: no page gets control', async () => {
    await serve(['--size', '320x240', '--view-only', '--', 'sleep', '60'], async (server) => {
      // The line follows the URL the harness waited for.
      await server.waitForStdout(/view only/);
      const { page } = await openPage(server.url);
      // The server's word, not the page's initial `control: false`.
      await waitForRole(page);
      assert.equal(await page.evaluate(() => window.pixelflux.input.control), false);
      await page.close();
    });
  });

  test('a page whose input.js loads after the server\'s first messages still gets control (slow network)', async () => {
    await serve(['--size', '320x240', '--', 'sleep', '60'], async (server) => {
      const page = await browser.newPage();
      // client.js is in; input.js, which applies the server's role message, comes 1.5 s later.
      await page.route('**/input.js*', async (route) => { await sleep(1500); await route.continue(); });
      await page.goto(server.url);
      await waitForRole(page);
      assert.equal(await page.evaluate(() => window.pixelflux.input.control), true);
      await page.close();
    });
  });
});

describe('pixelflux serve: displays and commands', () => {
  test('no capture work while no page is visible; a full picture when one shows again', async () => {
    await serve(['--scene', 'typing', '--region', '320x192', '--fps', '30'], async (server) => {
      await server.waitForStderr(/no one is watching: capture paused/);
      const { page } = await openPage(server.url);
      await server.waitForStderr(/capture paused[\s\S]*a viewer is watching: capture resumed/);
      const stripes = () => page.evaluate(() => window.pixelflux.stripes);
      const a = await stripes();
      await page.waitForFunction((n) => window.pixelflux.stripes > n, a, { timeout: WAIT_MS, polling: 50 });
      const setHidden = (hidden) => page.evaluate((h) => {
        Object.defineProperty(document, 'hidden', { value: h, configurable: true });
        Object.defineProperty(document, 'visibilityState', { value: h ? 'hidden' : 'visible', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
      await setHidden(true);
      await server.waitForStderr(/capture resumed[\s\S]*no one is watching: capture paused/);
      // What was captured before the pause has arrived and been drawn.
      await waitForQuiet(page, { quietMs: 500 });
      const b = await stripes();
      await sleep(1500);
      assert.equal(await stripes(), b, 'nothing is captured or sent while the only tab is hidden');
      await setHidden(false);
      await server.waitForStderr(/capture paused[\s\S]*capture resumed[\s\S]*capture paused[\s\S]*capture resumed/);
      await page.waitForFunction((n) => window.pixelflux.stripes > n, b, { timeout: WAIT_MS });
      await page.close();
    });
  });

  test('`serve -- cmd` exits with the command\'s status', () => {
    const r = runBin(['serve', '--listen', '127.0.0.1:0', '--size', '320x240', '--', 'sh', '-c', 'sleep 1; exit 7'],
      { env: headless() });
    assert.equal(r.status, 7, r.stderr);
  });

  test('with $DISPLAY set, a command is refused unless --new-display gives it a private one', () => {
    const env = { ...headless(), DISPLAY: ':4242' };
    const refused = runBin(['serve', '--listen', '127.0.0.1:0', '--', 'sh', '-c', 'exit 0'], { env });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /\$DISPLAY is set \(:4242\).*--new-display/s);
    const own = runBin(['serve', '--listen', '127.0.0.1:0', '--size', '320x240', '--new-display', '--',
      'sh', '-c', 'test "$DISPLAY" != :4242 && xdpyinfo >/dev/null && exit 5'], { env });
    assert.equal(own.status, 5, own.stderr);
    assert.match(own.stderr, /started Xvfb :\d+/);
  });

  test('with no display and no command, the private display gets a terminal', async () => {
    await serve(['--size', '640x360'], async (server) => {
      await server.waitForStderr(/started "xterm"/);
      const { page } = await openPage(server.url);
      // The terminal paints something other than black.
      await page.waitForFunction(() => {
        const c = document.getElementById('screen');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 128 && d[i + 1] > 128 && d[i + 2] > 128) return true;
        return false;
      }, null, { timeout: WAIT_MS, polling: 200 });
      await page.close();
    });
  });
});

/** An IPv4 address of this machine that is not loopback, or null. */
function nonLoopbackIPv4() {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** The SHA-256 fingerprint of the certificate a TLS server presents. */
function peerFingerprint(host, port) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('pixelflux serve over TLS', () => {
  test('https with a self-signed certificate decodes H.264 off loopback; over http the page says why not', async () => {
    const ip = nonLoopbackIPv4();
    // 127.0.0.2 is a secure context in Chromium even over http, so only the https half applies.
    const host = ip ?? '127.0.0.2';
    if (!ip) console.log('no non-loopback address here: testing https on 127.0.0.2 only');
    const scene = ['--scene', 'static', '--region', '320x192', '--codec', 'h264', '--token', 'tls tok'];
    const tlsBrowser = await launchBrowser({ ignoreHTTPSErrors: true });
    const server = await startServe(['--listen', `${host}:0`, '--tls-self-signed', ...scene]);
    try {
      assert.match(server.url, new RegExp(`^https://${host.replace(/\./g, '\\.')}:\\d+/\\?token=tls\\+tok$`));
      // stdout may come in pieces: wait for the line after the URL.
      const fp = (await server.waitForStdout(/fingerprint: ([0-9A-F:]{95})/))[1];
      const { hostname, port } = new URL(server.url);
      assert.equal(await peerFingerprint(hostname, +port), fp, 'the printed fingerprint is the served certificate\'s');
      const page = await tlsBrowser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await waitForFullPicture(page);
      const st = await page.evaluate(() => ({
        secure: window.isSecureContext, codec: window.pixelflux.codec, errors: window.pixelflux.errors,
        proto: location.protocol,
      }));
      assert.deepEqual(st, { secure: true, codec: st.codec, errors: 0, proto: 'https:' });
      assert.match(st.codec, /^avc1\./);
      assert.deepEqual(errors, []);
    } finally {
      await server.stop();
      await tlsBrowser.close();
    }
    if (!ip) return;
    const plain = await startServe(['--listen', `${ip}:0`, ...scene]);
    try {
      const page = await browser.newPage();
      await page.goto(plain.url);
      await page.waitForFunction(() => /H\.264 needs a secure context/.test(document.getElementById('overlay').textContent),
        null, { timeout: WAIT_MS });
      assert.equal(await page.evaluate(() => window.isSecureContext), false);
      await page.close();
    } finally {
      await plain.stop();
    }
  });
});
