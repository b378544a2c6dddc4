// Benchmark of `pixelflux serve` fan-out: CPU and memory of the server with 1, 4 and 16
// viewers. Each viewer is a raw WebSocket connection that reads and discards everything (no
// browser: the figures are the server's). Run: `node bench.mjs [seconds]` after
// `cargo build --release -p pixelflux-cli`.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { sleep, startServe } from './support.mjs';

const SECONDS = +(process.argv[2] || 10);
const CLK_TCK = 100;

const cases = [
  { label: 'typing 1920x1080 @60 JPEG', args: ['--scene', 'typing', '--region', '1920x1080', '--fps', '60'] },
  { label: 'full 1280x720 @30 JPEG q85', args: ['--scene', 'full', '--region', '1280x720', '--fps', '30'] },
  { label: 'full 1280x720 @30 H.264', args: ['--scene', 'full', '--region', '1280x720', '--fps', '30', '--codec', 'h264'] },
];

function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (+fields[11] + +fields[12]) / CLK_TCK;
}

function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
  return +m[1] / 1024;
}

function reader(url) {
  const { hostname, port } = new URL(url);
  const viewer = { bytes: 0, sock: null };
  return new Promise((resolve, reject) => {
    const sock = net.connect(+port, hostname, () => {
      sock.write(`GET /ws HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version: 13\r\n\r\n');
    });
    viewer.sock = sock;
    sock.on('data', (d) => {
      if (viewer.bytes === 0 && !d.toString('latin1').startsWith('HTTP/1.1 101')) reject(new Error('refused'));
      viewer.bytes += d.length;
      resolve(viewer);
    });
    sock.on('error', reject);
  });
}

const rows = [];
for (const c of cases) {
  for (const n of [1, 4, 16]) {
    const server = await startServe(['--listen', '127.0.0.1:0', ...c.args]);
    const viewers = [];
    for (let i = 0; i < n; i++) viewers.push(await reader(server.url));
    await sleep(2000);
    const b0 = viewers.map((v) => v.bytes);
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    let rssMax = 0;
    while (performance.now() - t0 < SECONDS * 1000) {
      await sleep(250);
      rssMax = Math.max(rssMax, rssMiB(server.pid));
    }
    const dt = (performance.now() - t0) / 1000;
    const cpu = (cpuSeconds(server.pid) - cpu0) / dt;
    const perViewer = viewers.map((v, i) => (v.bytes - b0[i]) / dt / 1e6);
    const minMBps = Math.min(...perViewer);
    const row = {
      case: c.label, viewers: n,
      'server CPU (% of a core)': (cpu * 100).toFixed(0),
      'RSS max (MiB)': rssMax.toFixed(1),
      'per viewer MB/s (min)': minMBps.toFixed(2),
      'total MB/s': perViewer.reduce((a, b) => a + b, 0).toFixed(1),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
    for (const v of viewers) v.sock.destroy();
    await server.stop();
  }
}
console.table(rows);
