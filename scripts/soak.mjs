// Soak test of `pixelflux serve`: full motion for a long time with a normal viewer (reads
// everything) and a slow one (reads 64 KiB/s, far below the stream), both answering the
// server's keepalive pings. The server's RSS, open fds and threads are sampled every 5 s;
// after a warm-up (a tenth of the run, at least 30 s) they must stay flat, and the normal
// viewer must receive data in every sampling window.
//
// Run: `make soak` (SOAK_SECONDS, default 600) or
// `node scripts/soak.mjs [seconds] [path/to/pixelflux]` after a release build.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = +(process.argv[2] || process.env.SOAK_SECONDS || 600);
const BIN = process.argv[3] || path.join(ROOT, 'target/release/pixelflux');
const SAMPLE_MS = 5000;
const SLOW_BYTES_PER_S = 64 * 1024;
// Allowed growth after the warm-up: RSS (the viewer queues are bounded at 8 MiB each).
const RSS_SLACK_MIB = 24;
const FD_SLACK = 4;
const THREAD_SLACK = 2;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startServe() {
  const args = ['serve', '--listen', '127.0.0.1:0', '--scene', 'full', '--region', '1280x720',
    '--fps', '30'];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('serve printed no URL within 20 s')), 20000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^open (http:\/\/\S+)$/m);
      if (m) { clearTimeout(timer); resolve({ proc, url: new URL(m[1]) }); }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited (${code}) before printing a URL`)));
  });
}

/** Masked client frame (pong answers to the server's pings). */
function clientFrame(opcode, payload) {
  const mask = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, body]);
}

/**
 * A raw WebSocket viewer. `rate` bytes/s (null: as fast as possible). Parses frames only to
 * answer pings; counts payload bytes of stripes and notices a close frame.
 */
function viewer(url, rate) {
  const v = { bytes: 0, closed: null, sock: null };
  let buf = Buffer.alloc(0);
  let upgraded = false;
  return new Promise((resolve, reject) => {
    const sock = net.connect(+url.port, url.hostname, () => {
      sock.write(`GET /ws HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version: 13\r\n\r\n');
    });
    v.sock = sock;
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) return reject(new Error('refused'));
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve(v);
      }
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1] & 0x7f;
        let hdr = 2;
        if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); hdr = 4; }
        else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); hdr = 10; }
        if (buf.length < hdr + len) break;
        const opcode = buf[0] & 0x0f;
        const payload = buf.subarray(hdr, hdr + len);
        if (opcode === 0x9) sock.write(clientFrame(0xA, [...payload]));
        if (opcode === 0x8) v.closed = payload.length >= 2 ? payload.readUInt16BE(0) : 'no code';
        v.bytes += len;
        buf = buf.subarray(hdr + len);
      }
      if (rate) {
        // Read at most `rate` bytes/s: pause for as long as this chunk "should" have taken.
        sock.pause();
        setTimeout(() => sock.resume(), Math.ceil((d.length / rate) * 1000));
      }
    });
    sock.on('close', () => { if (v.closed === null) v.closed = 'dropped'; });
    sock.on('error', () => {});
  });
}

function sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rssMiB: +status.match(/^VmRSS:\s+(\d+)/m)[1] / 1024,
    threads: +status.match(/^Threads:\s+(\d+)/m)[1],
    fds: readdirSync(`/proc/${pid}/fd`).length,
  };
}

const { proc, url } = await startServe();
const failures = [];
try {
  const normal = await viewer(url, null);
  const slow = await viewer(url, SLOW_BYTES_PER_S);
  const warmup = Math.max(30, SECONDS / 10);
  const samples = [];
  let lastBytes = 0;
  const t0 = Date.now();
  while ((Date.now() - t0) / 1000 < SECONDS) {
    await sleep(SAMPLE_MS);
    const s = { t: (Date.now() - t0) / 1000, ...sample(proc.pid), normal: normal.bytes - lastBytes, slow: slow.bytes };
    lastBytes = normal.bytes;
    samples.push(s);
    console.log(`${s.t.toFixed(0).padStart(5)} s  RSS ${s.rssMiB.toFixed(1)} MiB  fds ${s.fds}  ` +
      `threads ${s.threads}  normal +${(s.normal / 1e6).toFixed(1)} MB  slow ${(s.slow / 1e6).toFixed(1)} MB total`);
    if (s.normal === 0) failures.push(`the normal viewer received nothing in the window ending at ${s.t.toFixed(0)} s`);
    if (normal.closed !== null) { failures.push(`the normal viewer was closed (${normal.closed})`); break; }
  }
  const base = samples.filter((s) => s.t >= warmup);
  if (base.length < 2) {
    failures.push(`run longer than the ${warmup} s warm-up`);
  } else {
    const ref = base[0];
    const max = (k) => Math.max(...base.map((s) => s[k]));
    if (max('rssMiB') > ref.rssMiB + RSS_SLACK_MIB) failures.push(`RSS grew from ${ref.rssMiB.toFixed(1)} to ${max('rssMiB').toFixed(1)} MiB`);
    if (max('fds') > ref.fds + FD_SLACK) failures.push(`fds grew from ${ref.fds} to ${max('fds')}`);
    if (max('threads') > ref.threads + THREAD_SLACK) failures.push(`threads grew from ${ref.threads} to ${max('threads')}`);
    console.log(`after warm-up (${warmup} s): RSS ${ref.rssMiB.toFixed(1)} -> max ${max('rssMiB').toFixed(1)} MiB, ` +
      `fds ${ref.fds} -> max ${max('fds')}, threads ${ref.threads} -> max ${max('threads')}; ` +
      `slow viewer ${slow.closed === null ? 'still connected' : `closed (${slow.closed})`}`);
  }
  normal.sock.destroy();
  slow.sock.destroy();
} finally {
  proc.kill('SIGTERM');
}
if (failures.length) {
  console.error(`soak FAILED:\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log(`soak passed: ${SECONDS} s`);
