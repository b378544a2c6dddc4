// Input latency of `pixelflux serve` on this machine (not a test: figures for docs/serve.md).
//   node latency.mjs [samples] [codec]
// 1. key press in the page → the X server delivers it: xev (line-buffered) in a private Xvfb
//    prints each KeyPress to serve's stdout, which this script timestamps on arrival.
// 2. key press in the page → the changed pixels painted on the canvas: `cat` in an xterm
//    echoes each key; the first stripe painted after the key press ends the interval.
// Both start at the page's keydown (event.timeStamp on the page's clock, which shares the
// system clock's origin with this script's performance.timeOrigin).
import { launchBrowser, sleep, startServe, waitForFullPicture } from './support.mjs';

const samples = +(process.argv[2] || 100);
const codec = process.argv[3] || 'jpeg';
const env = { ...process.env };
delete env.DISPLAY;
const wall = () => performance.timeOrigin + performance.now();

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function openPage(browser, url) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  await page.goto(url);
  await waitForFullPicture(page);
  await page.waitForFunction(() => window.pixelflux.input && window.pixelflux.input.control);
  await page.evaluate(() => {
    const s = window.pixelflux;
    window.__keys = [];
    window.__paints = [];
    document.getElementById('screen').addEventListener('keydown', (ev) => {
      window.__keys.push(performance.timeOrigin + ev.timeStamp);
    }, true);
    // Every stripe painted bumps `painted`: note when.
    let painted = s.painted;
    Object.defineProperty(s, 'painted', {
      get: () => painted,
      set: (v) => { painted = v; window.__paints.push(performance.timeOrigin + performance.now()); },
    });
  });
  await page.mouse.move(300, 300);
  return page;
}

async function xSeesIt(browser) {
  const server = await startServe(['--listen', '127.0.0.1:0', '--size', '640x360', '--codec', codec,
    '--', 'stdbuf', '-oL', 'xev', '-geometry', '640x360+0+0', '-event', 'keyboard'], { env });
  const arrivals = [];
  server.proc.stdout.on('data', (d) => {
    const t = wall();
    for (const _ of String(d).matchAll(/KeyPress event/g)) arrivals.push(t);
  });
  try {
    const page = await openPage(browser, server.url);
    await sleep(500);
    for (let i = 0; i < samples; i++) {
      await page.keyboard.press('a');
      await sleep(50);
    }
    await sleep(500);
    const keys = await page.evaluate(() => window.__keys);
    if (arrivals.length !== keys.length) throw new Error(`${keys.length} keys, ${arrivals.length} KeyPress`);
    return keys.map((k, i) => arrivals[i] - k);
  } finally {
    await server.stop();
  }
}

async function pixels(browser) {
  const server = await startServe(['--listen', '127.0.0.1:0', '--size', '640x360', '--codec', codec,
    '--', 'xterm', '-geometry', '80x24+0+0', '-e', 'cat'], { env });
  try {
    const page = await openPage(browser, server.url);
    await sleep(1000);
    for (let i = 0; i < samples; i++) {
      await page.keyboard.press(i % 70 === 69 ? 'Enter' : 'x');
      await sleep(100);
    }
    await sleep(500);
    return page.evaluate(() => window.__keys.map((k) => {
      const p = window.__paints.find((t) => t > k);
      return p === undefined ? null : p - k;
    }).filter((v) => v !== null));
  } finally {
    await server.stop();
  }
}

const browser = await launchBrowser();
try {
  const a = await xSeesIt(browser);
  const b = await pixels(browser);
  const fmt = (xs) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms (n=${xs.length})`;
  console.log(`${codec}: key press → X server sees it: ${fmt(a)}`);
  console.log(`${codec}: key press → pixels on the canvas: ${fmt(b)}`);
} finally {
  await browser.close();
}
