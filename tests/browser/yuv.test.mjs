// The H.264 picture's conversion to RGB, on each path the page can use (web/yuv.js,
// web/yuv-worker.js, client.js drawFrame): the WebGL2 shader and the worker make the same
// pixels as the JavaScript converter, bit for bit, on every colour description and layout;
// and forced through the real page, every path paints the picture the JavaScript path does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ffmpegPicture, launchBrowser, psnr, readSettled, recordAllStripes, waitForFullPicture, withServe,
} from './support.mjs';

const REGION = '640x360';
const PATHS = ['js', 'gl', 'worker', 'worker-gl'];

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

describe('YUV to RGB', () => {
  test('WebGL2 and the worker (JavaScript and WebGL2) match the JavaScript converter exactly', async () => {
    await withServe(['--scene', 'desktop', '--region', '64x64', '--codec', 'jpeg'], async (server) => {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForFunction(() => window.pixelfluxYuv && window.pixelflux);
      const results = await page.evaluate(async () => {
        const { tablesFor, yuvToRgba, GlConverter } = window.pixelfluxYuv;
        const gl = GlConverter.create();
        if (!gl) return { error: 'no WebGL2 converter' };
        const worker = new Worker('yuv-worker.js');
        let next = 0;
        const inWorker = (frame, useGl) => new Promise((resolve) => {
          const id = ++next;
          worker.onmessage = (ev) => { if (ev.data.id === id) resolve(ev.data); };
          worker.postMessage({ id, frame, gl: useGl }, [frame]);
        });
        const pixels = (source, w, h) => {
          const c = new OffscreenCanvas(w, h);
          const ctx = c.getContext('2d');
          ctx.drawImage(source, 0, 0);
          return ctx.getImageData(0, 0, w, h).data;
        };
        // Every Y, U and V value appears (a ramp plus noise), odd sizes included.
        let seed = 7;
        const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 24; };
        const out = [];
        for (const format of ['I420', 'I444', 'NV12']) {
          for (const [w, h] of [[64, 48], [37, 21]]) {
            for (const colorSpace of [
              { matrix: 'bt709', fullRange: false }, { matrix: 'bt709', fullRange: true },
              { matrix: 'smpte170m', fullRange: false }, { matrix: 'bt470bg', fullRange: true },
            ]) {
              const cw = format === 'I444' ? w : (w + 1) >> 1;
              const ch = format === 'I444' ? h : (h + 1) >> 1;
              const chroma = cw * ch * 2;
              const buf = new Uint8Array(w * h + chroma);
              for (let i = 0; i < buf.length; i++) buf[i] = i % 3 === 0 ? i & 255 : rand();
              const layout = format === 'NV12'
                ? [{ offset: 0, stride: w }, { offset: w * h, stride: cw * 2 }]
                : [{ offset: 0, stride: w }, { offset: w * h, stride: cw }, { offset: w * h + cw * ch, stride: cw }];
              const t = tablesFor(colorSpace);
              const ref = new Uint32Array(w * h);
              yuvToRgba(buf, layout, format, w, h, t, ref);
              const refBytes = new Uint8Array(ref.buffer);
              const diff = (got) => {
                let max = 0;
                for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - refBytes[i]));
                return max;
              };
              gl.convert(buf, layout, format, w, h, t);
              const row = { format, w, h, cs: `${colorSpace.matrix}/${colorSpace.fullRange}`, gl: diff(pixels(gl.canvas, w, h)) };
              for (const useGl of [false, true]) {
                const frame = new VideoFrame(buf, {
                  format, codedWidth: w, codedHeight: h, timestamp: 0, layout, colorSpace,
                });
                const r = await inWorker(frame, useGl);
                if (r.error) {
                  row[useGl ? 'workerGl' : 'worker'] = r.error;
                  continue;
                }
                // JavaScript in the worker sends RGBA bytes, WebGL2 an ImageBitmap.
                const got = r.rgba ? new Uint8Array(r.rgba) : pixels(r.bitmap, w, h);
                row[useGl ? 'workerGl' : 'worker'] = diff(got);
                row[useGl ? 'workerGlPath' : 'workerPath'] = r.path;
                if (r.bitmap) r.bitmap.close();
              }
              out.push(row);
            }
          }
        }
        worker.terminate();
        return out;
      });
      assert.ok(Array.isArray(results), JSON.stringify(results));
      for (const r of results) {
        const what = `${r.format} ${r.w}x${r.h} ${r.cs}`;
        assert.equal(r.gl, 0, `${what}: WebGL2 differs from JavaScript by up to ${r.gl}`);
        assert.equal(r.worker, 0, `${what}: the worker differs from JavaScript by up to ${r.worker}`);
        assert.equal(r.workerPath, 'worker');
        assert.equal(r.workerGl, 0, `${what}: WebGL2 in the worker differs from JavaScript by up to ${r.workerGl}`);
        assert.equal(r.workerGlPath, 'worker-gl');
      }
      assert.equal(results.length, 24);
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  for (const fullcolor of [false, true]) {
    const label = fullcolor ? 'H.264 4:4:4' : 'H.264 4:2:0';
    test(`${label}: every path, forced in the page, paints the JavaScript path's picture`, async () => {
      const extra = fullcolor ? ['--h264-fullcolor'] : [];
      await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'h264', '--no-paint-over', ...extra],
        async (server) => {
          const db = {};
          for (const path of [...PATHS, 'default']) {
            const page = await browser.newPage();
            const errors = [];
            page.on('pageerror', (e) => errors.push(e.message));
            await recordAllStripes(page);
            await page.goto(path === 'default' ? server.url : `${server.url}?yuv=${path}`);
            await waitForFullPicture(page);
            // The canvas and the stripes it shows, read at one moment once the stream rests.
            const { canvas, recorded } = await readSettled(page);
            const decoded = ffmpegPicture(recorded, 640, 360);
            db[path] = psnr(canvas, decoded);
            const used = await page.evaluate(() => window.pixelflux.yuvPath);
            const counts = await page.evaluate(() => [window.pixelflux.yuvPictures, window.pixelflux.errors]);
            console.log(`${label} ${path} (${used}): canvas vs ffmpeg ${db[path].toFixed(2)} dB, ` +
              `${counts[0]} pictures converted`);
            if (path === 'default') assert.equal(used, 'worker', 'the default path');
            else assert.equal(used, path, `?yuv=${path} ran on ${used}`);
            assert.ok(counts[0] > 0, 'no picture went through the conversion');
            assert.equal(counts[1], 0, 'errors counted by the page');
            assert.deepEqual(errors, []);
            await page.close();
          }
          for (const path of [...PATHS, 'default']) {
            assert.ok(Math.abs(db[path] - db.js) <= 0.1,
              `${path}: ${db[path].toFixed(2)} dB against ffmpeg, the JavaScript path ${db.js.toFixed(2)} dB`);
          }
        });
    });
  }

  // What a browser without a part gets: the next path that works, and the same picture.
  const fallbacks = [
    { label: 'no Worker: WebGL2 on the page', expect: 'gl', noWorker: true },
    { label: 'no Worker and no WebGL2: JavaScript on the page', expect: 'js', noWorker: true, noGl: true },
    { label: 'the worker script fails to load: the page converts from then on', expect: 'gl', brokenWorker: true },
    // Not a fallback: more cores, more workers (stripe rows spread over them).
    { label: 'eight cores: four workers', expect: 'worker', cores: 8, workers: 4 },
  ];
  test('a missing part falls back to the next path, and more cores use more workers, with the same picture', async () => {
    await withServe(['--scene', 'desktop', '--region', REGION, '--codec', 'h264', '--no-paint-over'],
      async (server) => {
        let reference;
        for (const f of [{ label: 'JavaScript, forced', expect: 'js', query: '?yuv=js' }, ...fallbacks]) {
          const page = await browser.newPage();
          const errors = [];
          page.on('pageerror', (e) => errors.push(e.message));
          await page.addInitScript(({ noWorker, noGl, cores }) => {
            if (noWorker) delete window.Worker;
            if (cores) Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => cores });
            if (noGl) {
              for (const C of [HTMLCanvasElement, OffscreenCanvas]) {
                const get = C.prototype.getContext;
                C.prototype.getContext = function (type, ...rest) {
                  return type === 'webgl2' ? null : get.call(this, type, ...rest);
                };
              }
            }
          }, { noWorker: !!f.noWorker, noGl: !!f.noGl, cores: f.cores || 0 });
          if (f.brokenWorker) await page.route('**/yuv-worker.js', (r) => r.fulfill({ status: 404, body: '' }));
          await recordAllStripes(page);
          await page.goto(server.url + (f.query || ''));
          await waitForFullPicture(page);
          const { canvas, recorded } = await readSettled(page);
          const decoded = ffmpegPicture(recorded, 640, 360);
          const db = psnr(canvas, decoded);
          const used = await page.evaluate(() => window.pixelflux.yuvPath);
          console.log(`${f.label}: ${used}, canvas vs ffmpeg ${db.toFixed(2)} dB`);
          assert.equal(used, f.expect, f.label);
          if (f.workers) assert.equal(await page.evaluate(() => window.pixelflux.yuvWorkers), f.workers);
          if (reference === undefined) reference = db;
          assert.ok(Math.abs(db - reference) <= 0.1, `${f.label}: ${db.toFixed(2)} dB, JavaScript ${reference.toFixed(2)} dB`);
          assert.deepEqual(errors, []);
          await page.close();
        }
      });
  });
});
