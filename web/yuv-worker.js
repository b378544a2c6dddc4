// pixelflux web client: converts H.264 pictures to RGB off the page's main thread.
// The page transfers a VideoFrame ({ id, frame, gl, spare }); this worker copies its planes
// out, converts them (WebGL2 when `gl` and available here, else JavaScript: both exact, see
// yuv.js), closes the frame and transfers back the picture:
//   { id, rgba, w, h, ms, path: 'worker' }   JavaScript: RGBA bytes (into `spare`, an
//                                            ArrayBuffer the page is done with, when it fits)
//   { id, bitmap, ms, path: 'worker-gl' }    WebGL2: an ImageBitmap
//   { id, error }
// ms: the conversion's time here.
'use strict';

importScripts('yuv.js');

const { tablesFor, yuvToRgba, GlConverter } = self.pixelfluxYuv;
let gl; // undefined: not tried yet; null: no WebGL2 here

self.onmessage = async (ev) => {
  const { id, frame, gl: wantGl } = ev.data;
  try {
    const format = frame.format;
    const w = frame.visibleRect ? frame.visibleRect.width : frame.displayWidth;
    const h = frame.visibleRect ? frame.visibleRect.height : frame.displayHeight;
    const buf = new Uint8Array(frame.allocationSize());
    const layout = await frame.copyTo(buf);
    const t = tablesFor(frame.colorSpace);
    frame.close();
    const t0 = performance.now();
    if (wantGl && gl === undefined) gl = GlConverter.create();
    if (wantGl && gl && gl.convert(buf, layout, format, w, h, t)) {
      const bitmap = gl.canvas.transferToImageBitmap();
      self.postMessage({ id, bitmap, ms: performance.now() - t0, path: 'worker-gl' }, [bitmap]);
      return;
    }
    // The RGBA goes back as bytes for the page's putImageData (about 1 ms per 1080p there):
    // measured against createImageBitmap here, which gave about three quarters of the
    // pictures per second (tests/browser/yuv-bench.mjs's setting), and against putImageData
    // into an OffscreenCanvas and transferToImageBitmap (no better than that).
    const spare = ev.data.spare;
    const rgba = spare && spare.byteLength === w * h * 4 ? spare : new ArrayBuffer(w * h * 4);
    yuvToRgba(buf, layout, format, w, h, t, new Uint32Array(rgba));
    self.postMessage({ id, rgba, w, h, ms: performance.now() - t0, path: 'worker' }, [rgba]);
  } catch (e) {
    try {
      frame.close();
    } catch { /* already closed */ }
    self.postMessage({ id, error: String(e && e.message ? e.message : e) });
  }
};
