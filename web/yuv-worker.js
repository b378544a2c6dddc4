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
const canvases = new Map(); // `${w}x${h}` -> { canvas, ctx, img, words } for the JS path

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
      let c = canvases.get(key);
      if (!c) {
        const canvas = new OffscreenCanvas(w, h);
        const img = new ImageData(w, h);
        c = { canvas, ctx: canvas.getContext('2d', { alpha: false }), img, words: new Uint32Array(img.data.buffer) };
        canvases.set(key, c);
      }
      yuvToRgba(buf, layout, format, w, h, t, c.words);
      c.ctx.putImageData(c.img, 0, 0);
      bitmap = c.canvas.transferToImageBitmap();
    }
    self.postMessage({ id, bitmap, ms: performance.now() - t0, path }, [bitmap]);
  } catch (e) {
    try {
      frame.close();
    } catch { /* already closed */ }
    self.postMessage({ id, error: String(e && e.message ? e.message : e) });
  }
};
