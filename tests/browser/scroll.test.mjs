// Scroll detection in the page: an xterm in serve's own Xvfb prints lines (the screen scrolls),
// the server sends copy-rows (0x06) and only the exposed rows as JPEG stripes, and the canvas
// the page builds from them is the screen (x11grab) at JPEG fidelity, and the very picture the
// protocol describes (copies applied in order to ffmpeg's decode of the recorded JPEGs); a viewer
// joining mid-scroll gets a full refresh, then copies, and ends at the screen too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  launchBrowser, psnr, readCanvas, recordAllStripes, recordedStripes, sleep, startServe,
  waitForFullPicture,
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
  // 240 lines, one every 20 ms, then still (no cursor blink in xterm by default).
  const script = 'i=0; while [ $i -lt 240 ]; do i=$((i+1)); ' +
    'echo "line $i: compiling crate-$i v0.$((i % 7)).$((i % 13)) ... ok"; sleep 0.02; done; ' +
    `touch '${done}'; exec sleep 600`;
  const server = await startServe(['--listen', '127.0.0.1:0', '--size', `${W}x${H}`, '--codec', 'jpeg',
    '--no-paint-over', '--', 'xterm', '-geometry', `${W / 6}x${H / 13}+0+0`, '-e', 'sh', '-c', script], { env });
  try {
    const display = server.stderr.match(/started Xvfb (:\d+)/)[1];
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await recordAllStripes(page);
    await page.goto(server.url);
    await waitForFullPicture(page);
    // A second viewer joins while the terminal scrolls: a full refresh, then copies.
    await sleep(1500);
    const late = await browser.newPage();
    late.on('pageerror', (e) => errors.push(e.message));
    await late.goto(server.url);
    await waitForFullPicture(late);
    const deadline = Date.now() + 30000;
    while (!existsSync(done)) {
      assert.ok(Date.now() < deadline, 'the terminal did not finish printing');
      await sleep(100);
    }
    // The last frames of the scroll reach the page, then nothing changes.
    await sleep(1500);
    const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-video_size', `${W}x${H}`,
      '-i', display, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    { timeout: 20000, maxBuffer: 1 << 24 });
    assert.equal(r.status, 0, `x11grab: ${r.stderr}`);
    const screen = { width: W, height: H, rgb: r.stdout };
    const canvas = await readCanvas(page);
    const state = await page.evaluate(() => ({
      copies: window.pixelflux.copies, rows: window.pixelflux.rowsCopied,
      errors: window.pixelflux.errors, stripes: window.pixelflux.stripes,
    }));
    const { picture, copies } = replay(await recordedStripes(page), W, H);
    const dbScreen = psnr(canvas, screen);
    const lateCanvas = await readCanvas(late);
    const lateCopies = await late.evaluate(() => window.pixelflux.copies);
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
    assert.deepEqual(errors, []);
    await page.close();
    await late.close();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
