// pixelflux web client: converts H.264 pictures to RGB off the page's main thread.
// The page transfers a VideoFrame ({ id, frame, gl }); this worker copies its planes out,
// converts them (WebGL2 when `gl` and available here, else JavaScript: both exact, see
// yuv.js), closes the frame and transfers back an ImageBitmap the page draws with drawImage:
//   { id, bitmap, ms, path }   ms: conversion time here; path: 'worker-gl' | 'worker'
//   { id, error }
'use strict';

importScripts('yuv.js');

const { tablesFor, yuvToRgba, GlConverter } = self.pixelfluxYuv;
let gl; // undefined: not tried yet; null: no WebGL2 here
const images = new Map(); // `${w}x${h}` -> { data: ImageData, words } for the JS path, reused

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
    let bitmap;
    let path = 'worker';
    if (wantGl && gl === undefined) gl = GlConverter.create();
    if (wantGl && gl && gl.convert(buf, layout, format, w, h, t)) {
      bitmap = gl.canvas.transferToImageBitmap();
      path = 'worker-gl';
    } else {
      const key = `${w}x${h}`;
      let img = images.get(key);
      if (!img) {
        const data = new ImageData(w, h);
        img = { data, words: new Uint32Array(data.data.buffer) };
        images.set(key, img);
      }
      yuvToRgba(buf, layout, format, w, h, t, img.words);
      // Measured against putImageData into an OffscreenCanvas and transferToImageBitmap, and
      // against handing the RGBA buffer to the page for its putImageData: no slower, and the
      // least work for the page.
      bitmap = await createImageBitmap(img.data);
    }
    self.postMessage({ id, bitmap, ms: performance.now() - t0, path }, [bitmap]);
  } catch (e) {
    try {
      frame.close();
    } catch { /* already closed */ }
    self.postMessage({ id, error: String(e && e.message ? e.message : e) });
  }
};
