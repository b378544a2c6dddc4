// Helpers for the browser tests: start `pixelflux serve`, take reference snapshots, drive
// headless Chromium (Debian's /usr/bin/chromium through playwright-core), compare pixels.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
export const BIN = process.env.PIXELFLUX_BIN || path.join(ROOT, 'target/release/pixelflux');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * How long a test waits for something that should happen (a page painting, a process
 * starting, a file appearing): long enough for a 2-core machine under full load (debug builds,
 * Chromium, ffmpeg beside the test). Waits end as soon as their condition holds; only a
 * failing test waits this long.
 */
export const WAIT_MS = 30000;

/**
 * An empty home for the programs serve starts in the tests. Their terminals run bash, which
 * first runs the user's startup files: those can take a minute (this machine's `.bashrc` runs
 * `pyenv rehash`, which waits 60 s on a lock an interrupted rehash left behind), and the keys
 * typed meanwhile wait with them.
 */
const HOME = mkdtempSync(path.join(tmpdir(), 'pixelflux-home-'));
// Pasted text runs at its own line break, as the paste tests expect (bash 5.2's readline
// would otherwise hold a bracketed paste for an Enter).
writeFileSync(path.join(HOME, '.inputrc'), 'set enable-bracketed-paste off\n');

/**
 * The environment of a machine with no display (so serve starts its own Xvfb), in UTF-8, with
 * bash as the shell and an empty home (see `HOME`).
 */
export function headless() {
  const env = { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', SHELL: '/bin/bash', HOME };
  for (const name of ['DISPLAY', 'ENV', 'BASH_ENV']) delete env[name];
  return env;
}

/** Serves `args` on a free loopback port, runs `fn(server)`, always stops the server. */
export async function withServe(args, fn, opts) {
  const server = await startServe(['--listen', '127.0.0.1:0', ...args], opts);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/**
 * Opens `url` in a new page of `browser` (from `launchBrowser`) and waits for its whole first
 * picture. `record`: keep every stripe (see `recordAllStripes`); `viewport`: the page's size.
 * Returns { page, errors } (errors: the page's uncaught exceptions).
 */
export async function openPage(browser, url, { record = false, viewport, wait = true } = {}) {
  const page = await browser.newPage();
  // The persistent context's pages take no options: the size is set on the page.
  if (viewport) await page.setViewportSize(viewport);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (record) await recordAllStripes(page);
  await page.goto(url);
  if (wait) await waitForFullPicture(page);
  return { page, errors };
}

/** The private display serve started (`:N`), once its log says so (it may follow the URL). */
export async function serverDisplay(server) {
  return (await server.waitForStderr(/started Xvfb (:\d+)/))[1];
}

/** Waits (with a deadline) until `file` exists and `check(text)` is true; returns the text. */
export async function waitForFile(file, check, what, timeoutMs = WAIT_MS) {
  const t0 = Date.now();
  let text = '';
  while (Date.now() - t0 < timeoutMs) {
    if (existsSync(file)) {
      text = readFileSync(file, 'utf8');
      if (check(text)) return text;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not seen within ${timeoutMs} ms; ${file} has:\n${text.slice(-3000)}`);
}

/**
 * Waits until the canvas shows a light (white) pixel at capture pixel (x, y): an X client's
 * window (xev, xterm) is mapped there, so input sent there has a window to go to.
 */
export async function waitForWindow(page, x = 320, y = 180) {
  await page.waitForFunction(([x, y]) => {
    const c = document.getElementById('screen');
    if (x >= c.width || y >= c.height) return false;
    const [r, g, b] = c.getContext('2d').getImageData(x, y, 1, 1).data;
    return r > 200 && g > 200 && b > 200;
  }, [x, y], { timeout: WAIT_MS, polling: 100 });
}

/**
 * Waits until the page has the server's role message (`input.control` is its word, not the
 * initial false): on a private display its title then names the display (`:N ...`).
 */
export async function waitForRole(page) {
  await page.waitForFunction(() => window.pixelflux.input && /^:\d+ /.test(document.title), null,
    { timeout: WAIT_MS, polling: 50 });
}

/**
 * Waits until the page has received and painted nothing for `quietMs`: the stripes that were
 * on their way (a lossless still or a paint-over seconds after a change, an H.264 refresh for a
 * joining viewer) have arrived and been drawn. Fails after `timeout` if the stream never rests.
 */
export async function waitForQuiet(page, { quietMs = 500, timeout = WAIT_MS } = {}) {
  await page.waitForFunction((quietMs) => {
    const s = window.pixelflux;
    if (!s) return false;
    const key = [s.stripes, s.painted, s.errors, s.copies].join('/');
    const now = performance.now();
    const q = window.__quiet;
    if (!q || q.key !== key) {
      window.__quiet = { key, since: now };
      return false;
    }
    return now - q.since >= quietMs;
  }, quietMs, { timeout, polling: 50 });
}

/**
 * Once the stream rests (`waitForQuiet`), reads the canvas with the page's counters in one
 * go (nothing arrives within one evaluate), again if a stripe came meanwhile. Returns
 * { canvas, counts: { stripes, painted, stills, copies, errors, refreshes }, recorded }: with
 * `recordAllStripes`, `recorded` is the stripes received up to that moment (Buffers).
 */
export async function readSettled(page, { quietMs = 500, timeout = WAIT_MS } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    await waitForQuiet(page, { quietMs, timeout: Math.max(1000, deadline - Date.now()) });
    const r = await page.evaluate(() => {
      const s = window.pixelflux;
      const c = document.getElementById('screen');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let bin = '';
      for (let i = 0; i < d.length; i += 0x8000) bin += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
      return {
        width: c.width, height: c.height, b64: btoa(bin), quiet: window.__quiet.key,
        key: [s.stripes, s.painted, s.errors, s.copies].join('/'),
        counts: {
          stripes: s.stripes, painted: s.painted, stills: s.stills, copies: s.copies,
          errors: s.errors, refreshes: s.refreshes,
        },
        recorded: s.record ? s.record.length : 0,
      };
    });
    if (r.key !== r.quiet) {
      if (Date.now() > deadline) throw new Error(`the stream did not rest within ${timeout} ms`);
      continue;
    }
    const canvas = { width: r.width, height: r.height, rgba: Buffer.from(r.b64, 'base64') };
    const recorded = r.recorded ? (await recordedStripes(page)).slice(0, r.recorded) : [];
    return { canvas, counts: r.counts, recorded };
  }
}

/** Starts `pixelflux serve` with `args`; resolves once it prints its URL. */
export function startServe(args, { env = process.env, timeoutMs = WAIT_MS } = {}) {
  const proc = spawn(BIN, ['serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const server = {
    proc,
    pid: proc.pid,
    exited,
    /** What it logged, without colour codes. */
    get stderr() { return stderr.replace(/\x1b\[[0-9;]*m/g, ''); },
    get stdout() { return stdout; },
    url: null,
    /**
     * Resolves with the match once stderr matches `re`; fails after `timeoutMs`, showing what
     * came.
     */
    async waitForStderr(re, timeoutMs = WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      let m;
      while (!(m = this.stderr.match(re))) {
        if (Date.now() > deadline) throw new Error(`no ${re} in stderr within ${timeoutMs} ms:\n${this.stderr}`);
        await sleep(20);
      }
      return m;
    },
    /** Like `waitForStderr`, for stdout (lines printed after the URL may come later). */
    async waitForStdout(re, timeoutMs = WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      let m;
      while (!(m = stdout.match(re))) {
        if (Date.now() > deadline) throw new Error(`no ${re} in stdout within ${timeoutMs} ms:\n${stdout}`);
        await sleep(20);
      }
      return m;
    },
    /** SIGTERM, then waits for the exit; returns { code, signal }. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const result = await exited;
      clearTimeout(t);
      return result;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve printed no URL within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/^open (https?:\/\/\S+)$/m);
      if (m && !server.url) {
        server.url = m[1];
        clearTimeout(timer);
        resolve(server);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (!server.url) reject(new Error(`serve exited (${code ?? signal}) before printing a URL:\n${stderr}`));
    });
  });
}

/** Runs the binary to completion. */
export function runBin(args, { env = process.env } = {}) {
  return spawnSync(BIN, args, { env, encoding: 'utf8', timeout: 30000 });
}

/** The first frame of a source, via `pixelflux snapshot`: { width, height, rgb }. */
export function snapshot(args) {
  const dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-snap-'));
  const out = path.join(dir, 'frame.ppm');
  try {
    const r = runBin(['snapshot', ...args, '--out', out]);
    if (r.status !== 0) throw new Error(`snapshot failed: ${r.stderr}`);
    return readPpm(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readPpm(buf) {
  // "P6\n<w> <h>\n255\n" then RGB.
  const header = buf.subarray(0, 64).toString('latin1');
  const m = header.match(/^P6\s+(\d+)\s+(\d+)\s+255\s/);
  if (!m) throw new Error('not a P6 PPM');
  return { width: +m[1], height: +m[2], rgb: buf.subarray(m[0].length) };
}

/**
 * Headless Chromium with a fresh profile; `close()` removes the profile too. `options` go to
 * Playwright (e.g. `ignoreHTTPSErrors` for a self-signed certificate).
 */
export async function launchBrowser(options = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), 'pixelflux-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    ...options,
  });
  return {
    context,
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Waits until the page has painted every stripe of the current picture (since its hello). */
export async function waitForFullPicture(page, { timeout = WAIT_MS } = {}) {
  await page.waitForFunction(() => {
    const s = window.pixelflux;
    if (!s || !s.hello) return false;
    const stripes = Math.ceil(s.hello.height / s.hello.stripe_height);
    return s.paintedYs.size >= stripes;
  }, null, { timeout, polling: 50 });
}

/** The canvas pixels: { width, height, rgba: Buffer }. */
export async function readCanvas(page) {
  const { width, height, b64 } = await page.evaluate(() => {
    const c = document.getElementById('screen');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let bin = '';
    for (let i = 0; i < d.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
    }
    return { width: c.width, height: c.height, b64: btoa(bin) };
  });
  return { width, height, rgba: Buffer.from(b64, 'base64') };
}

/** PSNR (dB) of the canvas against a reference RGB picture of the same size. */
export function psnr(canvas, ref) {
  if (canvas.width !== ref.width || canvas.height !== ref.height) {
    throw new Error(`size differs: canvas ${canvas.width}x${canvas.height}, source ${ref.width}x${ref.height}`);
  }
  let se = 0;
  const n = ref.width * ref.height;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const d = canvas.rgba[i * 4 + c] - ref.rgb[i * 3 + c];
      se += d * d;
    }
  }
  if (se === 0) return Infinity;
  return 10 * Math.log10((255 * 255) / (se / (n * 3)));
}

/** Resident memory of a process in KiB (VmRSS), or null once it is gone. */
export function rssKiB(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
    return m ? +m[1] : null;
  } catch {
    return null;
  }
}

/**
 * A WebSocket client that completes the handshake and then never reads: the server's writes
 * back up into the kernel buffers and then into its queue for this viewer.
 */
export function stalledViewer(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(+port, hostname, () => {
      sock.write(
        'GET /ws HTTP/1.1\r\n' +
        `Host: ${hostname}:${port}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    // Small receive buffer so the backlog reaches the server's queue quickly.
    sock.setNoDelay(true);
    sock.once('data', (d) => {
      if (!d.toString('latin1').startsWith('HTTP/1.1 101')) {
        reject(new Error(`upgrade refused: ${d.toString('latin1').split('\r\n')[0]}`));
        return;
      }
      sock.pause();
      resolve(sock);
    });
    sock.on('error', reject);
  });
}

/** Whether a process exists and is not a zombie. */
export function processAlive(pid) {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Makes the page keep a copy of every binary stripe it receives (window.pixelflux.record),
 * from the first: armed as the page's script publishes its state, before it can connect (on
 * DOMContentLoaded, as before, the first picture could already be in and go unrecorded).
 */
export async function recordAllStripes(page) {
  await page.addInitScript(() => {
    let state;
    Object.defineProperty(window, 'pixelflux', {
      configurable: true,
      get: () => state,
      set: (v) => {
        if (v && typeof v === 'object' && !Array.isArray(v.record)) v.record = [];
        state = v;
      },
    });
  });
}

/** The stripes the page recorded, as Buffers. */
export async function recordedStripes(page) {
  const list = await page.evaluate(() => window.pixelflux.record.map((b) => {
    let bin = '';
    for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(bin);
  }));
  return list.map((b64) => Buffer.from(b64, 'base64'));
}

/**
 * The picture a reference decoder makes of recorded H.264 stripes: each stripe position's
 * stream decoded by ffmpeg (its own BT.709-aware conversion to RGB), the last picture of each
 * placed at its y. Returns { width, height, rgb } like `snapshot`.
 */
export function ffmpegPicture(stripes, width, height) {
  const byY = new Map();
  for (const b of stripes) {
    if (b[0] !== 0x04) continue;
    const y = b.readUInt16BE(4);
    const h = b.readUInt16BE(8);
    if (!byY.has(y)) byY.set(y, { h, chunks: [] });
    byY.get(y).chunks.push(b.subarray(10));
  }
  const rgb = Buffer.alloc(width * height * 3);
  const dir = mkdtempSync(path.join(tmpdir(), 'pixelflux-h264-'));
  try {
    for (const [y, { h, chunks }] of byY) {
      const file = path.join(dir, `s${y}.h264`);
      writeFileSync(file, Buffer.concat(chunks));
      const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'h264', '-i', file, '-f', 'rawvideo',
        '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 30, timeout: 30000 });
      if (r.status !== 0) throw new Error(`ffmpeg failed on stripe ${y}: ${r.stderr}`);
      const size = width * h * 3;
      if (r.stdout.length < size) throw new Error(`ffmpeg gave no picture for stripe ${y}`);
      r.stdout.copy(rgb, y * width * 3, r.stdout.length - size);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { width, height, rgb };
}

/**
 * Makes `page` keep, from its next navigation on, the stripes its WebSocket receives: for each
 * stripe row y, the last stripe (a JPEG 0x03, an H.264 0x04 or a still image 0x05) and the
 * H.264 stripes since that row's last IDR (what its decoder holds). `receivedStripes(page)`
 * hands them over. Installed before the page's own script runs.
 */
export async function recordStripes(page) {
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__stripes = {};
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (ev) => {
          if (typeof ev.data === 'string') {
            try {
              if (JSON.parse(ev.data).type === 'hello') window.__stripes = {};
            } catch { /* not JSON: not ours to check */ }
            return;
          }
          const b = new Uint8Array(ev.data.slice(0));
          if (b.length < 6 || ![0x03, 0x04, 0x05].includes(b[0])) return;
          const y = (b[4] << 8) | b[5];
          let bin = '';
          for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
          const row = window.__stripes[y] || (window.__stripes[y] = { last: null, h264: [] });
          row.last = btoa(bin);
          if (b[0] === 0x04) {
            if (b[1] === 0x01) row.h264 = [];
            row.h264.push(row.last);
          }
        });
      }
    };
  });
}

/** What `recordStripes` kept: { y: { last: Buffer, h264: [Buffer, ...] } }. */
export async function receivedStripes(page) {
  const kept = await page.evaluate(() => window.__stripes);
  const buf = (s) => Buffer.from(s, 'base64');
  return Object.fromEntries(Object.entries(kept).map(([y, row]) => [y, { last: buf(row.last), h264: row.h264.map(buf) }]));
}

/**
 * The picture a standard decoder (ffmpeg: its JPEG, PNG and H.264 decoders and its RGB
 * conversion) makes of the stripes `recordStripes` kept, as { width, height, rgb }: the
 * reference for what the page's own decoding and painting should show.
 */
export function decodeWithFfmpeg(stripes, width, height) {
  const rgb = Buffer.alloc(width * height * 3);
  for (const [yText, row] of Object.entries(stripes)) {
    const y = +yText;
    const h264 = row.last[0] === 0x04;
    const input = h264 ? Buffer.concat(row.h264.map((b) => b.subarray(10))) : row.last.subarray(6);
    const format = { 3: 'mjpeg', 4: 'h264', 5: 'png_pipe' }[row.last[0]];
    const r = spawnSync('ffmpeg', ['-v', 'error', '-f', format, '-i', 'pipe:0', '-f', 'rawvideo',
      '-pix_fmt', 'rgb24', 'pipe:1'], { input, timeout: 30000, maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`ffmpeg could not decode the stripe at y=${y}: ${r.stderr}`);
    // The last picture ffmpeg produced is what the row shows.
    const rows = h264 ? ((row.last[8] << 8) | row.last[9]) : r.stdout.length / (width * 3);
    const picture = width * 3 * rows;
    if (picture === 0 || r.stdout.length % picture !== 0) {
      throw new Error(`ffmpeg gave ${r.stdout.length} bytes for the stripe at y=${y}`);
    }
    r.stdout.copy(rgb, y * width * 3, r.stdout.length - picture);
  }
  return { width, height, rgb };
}

/** PSNR (dB) between two RGB pictures of the same size ({ width, height, rgb }). */
export function psnrRgb(a, b) {
  return psnr({ width: a.width, height: a.height, rgba: toRgba(a.rgb) }, b);
}

function toRgba(rgb) {
  const out = Buffer.alloc((rgb.length / 3) * 4);
  for (let i = 0, o = 0; i < rgb.length; i += 3, o += 4) {
    out[o] = rgb[i]; out[o + 1] = rgb[i + 1]; out[o + 2] = rgb[i + 2]; out[o + 3] = 255;
  }
  return out;
}

/** The last JPEG of each stripe position in recorded tagged stripes: Map y -> JPEG bytes. */
export function lastJpegs(stripes) {
  const last = new Map();
  for (const b of stripes) if (b[0] === 0x03) last.set(b.readUInt16BE(4), b.subarray(6));
  return last;
}

/** The top-left WxH of an X display's screen now, without the pointer (ffmpeg's x11grab). */
export function grabScreen(display, width, height) {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-video_size', `${width}x${height}`,
    '-i', display, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
  { timeout: 20000, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`x11grab of ${display}: ${r.stderr}`);
  return { width, height, rgb: r.stdout };
}

/**
 * The picture a reference decoder makes of recorded tagged JPEG stripes: the last JPEG of each
 * stripe position decoded by ffmpeg. Returns { width, height, rgb } like `snapshot`.
 */
export function ffmpegJpegPicture(stripes, width, height) {
  const rgb = Buffer.alloc(width * height * 3);
  for (const [y, jpeg] of lastJpegs(stripes)) {
    const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'jpeg_pipe', '-i', '-', '-f', 'rawvideo',
      '-pix_fmt', 'rgb24', '-'], { input: jpeg, maxBuffer: 1 << 28, timeout: 30000 });
    if (r.status !== 0) throw new Error(`ffmpeg failed on JPEG stripe ${y}: ${r.stderr}`);
    r.stdout.copy(rgb, y * width * 3, 0, Math.min(r.stdout.length, (height - y) * width * 3));
  }
  return { width, height, rgb };
}
