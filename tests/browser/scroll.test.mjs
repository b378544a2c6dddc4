// Scroll detection in the page: an xterm in serve's own Xvfb prints lines (the screen scrolls),
// the server sends copy-rows (0x06) and only the exposed rows as JPEG stripes, and the canvas
// the page builds from them is the screen (x11grab) at JPEG fidelity, and the very picture the
// protocol describes (copies applied in order to ffmpeg's decode of the recorded JPEGs); a viewer
// joining mid-scroll gets a full refresh, then copies, and ends at the screen too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WAIT_MS, grabScreen, launchBrowser, openPage, psnr, readSettled, serverDisplay, startServe, waitForFile,
} from './support.mjs';

const W = 480;
const H = 312;

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The picture the tagged stream describes: copy-rows and JPEG stripes applied in order. */
function replay(stripes, width, height) {
  const row = width * 3;
  let rgb = Buffer.alloc(width * height * 3);
  let copies = 0;
  for (const b of stripes) {
    if (b[0] === 0x06) {
      const before = Buffer.from(rgb);
      const count = b.readUInt16BE(4);
      for (let i = 0, at = 6; i < count; i++, at += 6) {
        const [src, dst, h] = [b.readUInt16BE(at), b.readUInt16BE(at + 2), b.readUInt16BE(at + 4)];
        before.copy(rgb, dst * row, src * row, (src + h) * row);
      }
      copies++;
    } else if (b[0] === 0x03) {
      const y = b.readUInt16BE(4);
      const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'jpeg_pipe', '-i', '-', '-f', 'rawvideo',
        '-pix_fmt', 'rgb24', '-'], { input: b.subarray(6), maxBuffer: 1 << 26, timeout: 30000 });
      if (r.status !== 0) throw new Error(`ffmpeg failed on JPEG stripe ${y}: ${r.stderr}`);
      r.stdout.copy(rgb, y * row, 0, Math.min(r.stdout.length, (height - y) * row));
    }
  }
  return { picture: { width, height, rgb }, copies };
}

test('JPEG scrolling: copy-rows on the canvas, then the exposed rows; the canvas is the screen', async () => {
  const env = { ...process.env };
  delete env.DISPLAY;
  const dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-scroll-'));
  const done = path.join(dir, 'done');
  // The test's cues: `start` once the first viewer has its picture, `finish` once the late
  // viewer joined mid-scroll and got copies (so neither depends on how fast a loaded machine
  // starts serve, xterm and the pages).
  const start = path.join(dir, 'start');
  const finish = path.join(dir, 'finish');
  // A line every 20 ms from `start` until 40 lines after `finish` (at most 3000), then still
  // (no cursor blink in xterm by default).
  const script = `until [ -e '${start}' ]; do sleep 0.05; done; ` +
    'i=0; n=3000; while [ $i -lt $n ]; do i=$((i+1)); ' +
    `if [ $n -eq 3000 ] && [ -e '${finish}' ]; then n=$((i+40)); fi; ` +
    'echo "line $i: compiling crate-$i v0.$((i % 7)).$((i % 13)) ... ok"; sleep 0.02; done; ' +
    `touch '${done}'; exec sleep 600`;
  const server = await startServe(['--listen', '127.0.0.1:0', '--size', `${W}x${H}`, '--codec', 'jpeg',
    '--no-paint-over', '--', 'xterm', '-geometry', `${W / 6}x${H / 13}+0+0`, '-e', 'sh', '-c', script], { env });
  try {
    const display = await serverDisplay(server);
    const first = await openPage(browser, server.url, { record: true });
    const page = first.page;
    writeFileSync(start, '');
    // A second viewer joins while the terminal scrolls: a full refresh, then copies.
    await page.waitForFunction(() => window.pixelflux.copies >= 10, null, { timeout: WAIT_MS, polling: 50 });
    const second = await openPage(browser, server.url);
    const late = second.page;
    await late.waitForFunction(() => window.pixelflux.copies > 0, null, { timeout: WAIT_MS, polling: 50 });
    writeFileSync(finish, '');
    await waitForFile(done, () => true, 'the terminal finishing its output');
    // The last frames of the scroll reach the pages, then nothing changes: the screen, then
    // each canvas with what it received until then.
    const settled = await readSettled(page, { quietMs: 1000 });
    const screen = grabScreen(display, W, H);
    const { canvas, counts: state } = settled;
    state.rows = await page.evaluate(() => window.pixelflux.rowsCopied);
    const { picture, copies } = replay(settled.recorded, W, H);
    const dbScreen = psnr(canvas, screen);
    const { canvas: lateCanvas, counts: { copies: lateCopies } } = await readSettled(late, { quietMs: 1000 });
    const dbLate = psnr(lateCanvas, screen);
    const dbReplay = psnr(canvas, picture);
    console.log(`scroll: ${state.copies} copies (${state.rows} rows) of ${state.stripes} messages; ` +
      `canvas vs screen ${dbScreen.toFixed(2)} dB, vs the replayed stream ${dbReplay.toFixed(2)} dB; ` +
      `late viewer: ${lateCopies} copies, ${dbLate.toFixed(2)} dB`);
    assert.ok(state.copies >= 20, `${state.copies} copies: the scroll was not sent as copies`);
    assert.equal(copies, state.copies, 'every recorded copy-rows was applied');
    // The same threshold as the JPEG fidelity tests (a stripe decoded against its source).
    assert.ok(dbScreen >= 30, `canvas vs screen: ${dbScreen.toFixed(2)} dB`);
    assert.ok(lateCopies > 0, 'the late viewer got no copies');
    assert.ok(dbLate >= 30, `late viewer vs screen: ${dbLate.toFixed(2)} dB`);
    // The page applies the stream as specified: what ffmpeg's decode plus the copies give.
    assert.ok(dbReplay >= 40, `canvas vs replayed stream: ${dbReplay.toFixed(2)} dB`);
    assert.equal(state.errors, 0);
    assert.deepEqual([...first.errors, ...second.errors], []);
    await page.close();
    await late.close();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
