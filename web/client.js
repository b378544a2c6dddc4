// pixelflux web client: draws the stripes `pixelflux serve` streams over a WebSocket.
//
// Server → client: JSON text ({"type":"hello"|"frame"|"pong", ...}) and binary stripes:
//   JPEG  0x03 0x00 frame_id:u16 y:u16 <JFIF>
//   H.264 0x04 type frame_id:u16 y:u16 width:u16 height:u16 <Annex-B access unit>  (type 1 = IDR)
//   still 0x05 0x01 frame_id:u16 y:u16 <PNG>  (a lossless refresh of a stripe that stopped changing)
//   copy  0x06 0x00 frame_id:u16 count:u16 then count × (src_y:u16 dst_y:u16 height:u16)
//         (scroll detection: move rows already on the canvas, before the frame's stripes)
// Client → server: {"type":"refresh"}, {"type":"ping","t":<ms>}, {"type":"resize","width",
// "height"} (the canvas area in device pixels, when the role message says "resize": true);
// input.js sends input events.
'use strict';

(() => {
  const canvas = document.getElementById('screen');
  const screenCtx = canvas.getContext('2d', { alpha: false });
  // Where pictures are drawn: the canvas, or during a size change the next picture off
  // screen (see beginResize).
  let ctx = screenCtx;
  const overlay = document.getElementById('overlay');

  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const RECONNECT_MIN_MS = 250;
  const RECONNECT_MAX_MS = 8000;
  const PING_EVERY_MS = 2000;

  // Exposed for the browser tests and for curious users (window.pixelflux in the console).
  const state = {
    hello: null,
    generation: 0, // bumped on every hello: late decodes of an older format are ignored
    connects: 0,
    stripes: 0,
    painted: 0,
    paintedYs: new Set(), // stripes painted since the last hello
    errors: 0,
    refreshes: 0,
    stills: 0, // lossless stills painted
    copies: 0, // copy-rows messages applied (scroll detection), and rows they moved
    rowsCopied: 0,
    yuvPath: null, // where H.264 pictures are converted to RGB (see drawFrame)
    yuvWorkers: 0, // conversion workers started
    yuvMs: 0, // time spent converting H.264 pictures to RGB (ms), wherever it ran
    yuvPixels: 0, // and the pixels converted
    yuvPictures: 0, // H.264 pictures handed to the conversion
    mainMs: 0, // the main thread's time drawing H.264 pictures (ms), conversion included
    codec: null, // the WebCodecs codec string of the last H.264 decoder configured
    // A page slower than its H.264 stream (see onH264): decoded pictures closed unpainted
    // because a newer one of their stripe came (or a still was already newer), chunks not
    // decoded (a decoder reset, or waiting for an IDR), and decoders reset for falling behind.
    // Every H.264 stripe received ends up painted, skipped, dropped or in `errors`.
    skipped: 0,
    dropped: 0,
    decoderResets: 0,
    shownAt: null, // capture time (server clock, ms) of the newest picture painted
    clockOffset: 0, // server clock minus ours, in ms, from the best ping
    bestRtt: Infinity,
    live: { fps: 0, kbps: 0, latency: null, latencyMax: null },
    notice: null, // a problem to show in the overlay above the figures
    connected: false, // the WebSocket is open
    closeReason: null, // why the server last closed the connection (shown until one opens)
    tokenRefused: false, // the last failed connect: the server refuses this page's token
    retries: 0, // reconnects scheduled
    display: null, // the X display shown (role message), for the title
    record: null, // set to an array (tests) to keep a copy of every binary stripe received
    scale: 1, // device pixels per capture pixel on screen (see fitCanvas)
    resizes: 0, // size changes shown (a hello with a new size, its first picture complete)
    canResize: false, // the server's screen follows this page's size (role message)
    sizeSent: null, // the last size sent ({width, height}, device pixels)
  };
  window.pixelflux = state;

  let ws = null;
  let backoff = RECONNECT_MIN_MS;
  let pingTimer = null;
  let seq = 0; // arrival order, so a late JPEG decode never paints over a newer one
  const drawnSeq = new Map(); // y -> seq of what is on the canvas there
  // Copy-rows order (see onCopyRows): images decode in parallel, but one that arrived after a
  // copy draws only once the copy is applied, and a copy waits for the draws before it.
  let barrier = Promise.resolve();
  const pendingDraws = new Set();
  const decoders = new Map(); // y -> { decoder, width, height }
  // frame_id -> capture time (server clock, ms). Frame ids wrap at 65536; the oldest go
  // beyond FRAME_TIMES (over two minutes at 60 fps), so a page far behind still knows when
  // what it paints was captured.
  const frameTimes = new Map();
  const FRAME_TIMES = 8192;
  // Per-second counters for the overlay.
  let secBytes = 0;
  const secFrames = new Set();
  let secLatency = [];

  const now = () => performance.timeOrigin + performance.now();

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }
  // For input.js: send a message; onMessage gets every text message this file does not handle.
  state.send = send;
  state.onMessage = null;

  let lastRefresh = -Infinity; // (0 would refuse refreshes in the page's first 500 ms)
  function requestRefresh() {
    const t = performance.now();
    if (t - lastRefresh < 500) return;
    lastRefresh = t;
    state.refreshes++;
    send({ type: 'refresh' });
  }

  function closeDecoders() {
    for (const [y, entry] of [...decoders]) dropDecoder(y, entry);
    decoders.clear();
  }

  // The title names the display and the size streamed now: `:20 1280x720 · pixelflux`.
  function setTitle() {
    const h = state.hello;
    const size = h ? ` ${h.width}x${h.height}` : '';
    document.title = state.display ? `${state.display}${size} · pixelflux` : `pixelflux${size}`;
  }

  function onHello(h) {
    const changed = !state.hello || h.width !== state.hello.width ||
      h.height !== state.hello.height || h.codec !== state.hello.codec;
    state.hello = h;
    setTitle();
    state.generation++;
    state.paintedYs = new Set();
    drawnSeq.clear();
    barrier = Promise.resolve();
    pendingDraws.clear();
    frameTimes.clear();
    state.shownAt = null;
    closeDecoders();
    if (changed && canvas.width > 1) {
      beginResize(h);
    } else if (changed) {
      cancelResize();
      canvas.width = h.width;
      canvas.height = h.height;
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, h.width, h.height);
      fitCanvas();
    }
    backoff = RECONNECT_MIN_MS;
  }

  // The canvas's backing store is the capture (one canvas pixel per capture pixel); its CSS
  // size decides how many device pixels show each one. One capture pixel per device pixel
  // when that fits the window (crisp text on HiDPI screens), else the largest whole number
  // of device pixels per capture pixel that fits (pixelated: still sharp), and only when
  // even 1:1 is too big, fitted to the window with smooth scaling. Centred, on whole device
  // pixels. input.js maps pointer positions through the canvas's box, so any size works.
  function fitCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.width;
    const h = canvas.height;
    const room = Math.min((window.innerWidth * dpr) / w, (window.innerHeight * dpr) / h);
    // Device pixels per capture pixel.
    const scale = room >= 1 ? Math.floor(room + 1e-9) : room;
    const cssW = (w * scale) / dpr;
    const cssH = (h * scale) / dpr;
    const snap = (v) => Math.round(v * dpr) / dpr;
    const st = canvas.style;
    st.width = `${cssW}px`;
    st.height = `${cssH}px`;
    st.left = `${snap((window.innerWidth - cssW) / 2)}px`;
    st.top = `${snap((window.innerHeight - cssH) / 2)}px`;
    st.imageRendering = scale >= 2 ? 'pixelated' : 'auto';
    state.scale = scale;
  }
  // A window resize, full screen, or the page moving to a screen of another density.
  window.addEventListener('resize', fitCanvas);
  (function watchDensity() {
    const mq = window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    mq.addEventListener('change', () => {
      fitCanvas();
      watchDensity();
    }, { once: true });
  })();
  // A new size while a picture is shown: the old picture stays on the canvas while the new
  // size's stripes are drawn off screen; once every stripe has painted (or after
  // RESIZE_WAIT_MS), the canvas takes the new size and the new picture in one step, so no
  // black or half-drawn frame is ever shown.
  const RESIZE_WAIT_MS = 1000;
  let pendingResize = null; // { canvas, width, height, rows, timer }
  function beginResize(h) {
    cancelResize();
    const next = document.createElement('canvas');
    next.width = h.width;
    next.height = h.height;
    ctx = next.getContext('2d', { alpha: false });
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, h.width, h.height);
    pendingResize = {
      canvas: next,
      width: h.width,
      height: h.height,
      rows: Math.ceil(h.height / Math.max(1, h.stripe_height || h.height)),
      timer: setTimeout(finishResize, RESIZE_WAIT_MS),
    };
  }
  function cancelResize() {
    if (!pendingResize) return;
    clearTimeout(pendingResize.timer);
    pendingResize = null;
    ctx = screenCtx;
  }
  function finishResize() {
    const p = pendingResize;
    if (!p) return;
    cancelResize();
    canvas.width = p.width;
    canvas.height = p.height;
    screenCtx.drawImage(p.canvas, 0, 0);
    fitCanvas();
    state.resizes++;
  }
  // Called for every stripe painted: the new picture is complete when all rows have one.
  function resizeProgress() {
    if (pendingResize && state.paintedYs.size >= pendingResize.rows) finishResize();
  }

  // The page's canvas area in device pixels, rounded down to the codec's alignment (H.264:
  // even), for a server whose screen follows the page: sent on connect and after the window
  // stops changing size for RESIZE_DEBOUNCE_MS.
  const RESIZE_DEBOUNCE_MS = 300;
  let resizeTimer = null;
  function sendSize() {
    if (!state.canResize) return;
    const dpr = window.devicePixelRatio || 1;
    const align = state.hello && state.hello.codec === 'h264' ? 2 : 1;
    const fit = (v) => Math.max(align, Math.floor(Math.round(v * dpr) / align) * align);
    const size = { width: fit(window.innerWidth), height: fit(window.innerHeight) };
    const last = state.sizeSent;
    if (last && last.width === size.width && last.height === size.height) return;
    state.sizeSent = size;
    send({ type: 'resize', ...size });
  }
  function onRoleResize(msg) {
    state.canResize = !!msg.resize;
    state.sizeSent = null; // a new connection: tell it
    sendSize();
  }
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(sendSize, RESIZE_DEBOUNCE_MS);
  });

  function painted(frameId, y) {
    state.painted++;
    state.paintedYs.add(y);
    resizeProgress();
    secFrames.add(frameId);
    const t = frameTimes.get(frameId);
    if (t !== undefined) {
      secLatency.push(now() + state.clockOffset - t);
      if (state.shownAt === null || t > state.shownAt) state.shownAt = t;
    }
  }

  // A self-contained image at the stripe's y: a JPEG stripe (0x03) or a lossless still
  // (0x05, the refresh of a stripe that stopped changing).
  function onImage(buf, type) {
    const frameId = (buf[2] << 8) | buf[3];
    const y = (buf[4] << 8) | buf[5];
    const mySeq = ++seq;
    const gen = state.generation;
    // createImageBitmap decodes off the main thread; the draw waits for earlier copy-rows.
    const decoded = createImageBitmap(new Blob([buf.subarray(6)], { type }));
    const draw = Promise.all([decoded, barrier]).then(([bmp]) => {
      if (gen === state.generation && (drawnSeq.get(y) ?? -1) < mySeq) {
        ctx.drawImage(bmp, 0, y);
        drawnSeq.set(y, mySeq);
        painted(frameId, y);
        if (type === 'image/png') state.stills++;
      }
      bmp.close();
    }, () => {
      state.errors++;
      requestRefresh();
    });
    pendingDraws.add(draw);
    draw.finally(() => pendingDraws.delete(draw));
  }

  // Copy-rows (scroll detection, JPEG): every run copies rows of the canvas as it was before
  // the message (after every image that arrived before it is drawn, before any that came
  // after), so a scroll costs the server only the rows it exposed.
  let scratch = null;
  function onCopyRows(buf) {
    const frameId = (buf[2] << 8) | buf[3];
    const count = (buf[4] << 8) | buf[5];
    if (buf.length !== 6 + 6 * count) return;
    const runs = [];
    for (let i = 0, at = 6; i < count; i++, at += 6) {
      runs.push([(buf[at] << 8) | buf[at + 1], (buf[at + 2] << 8) | buf[at + 3],
        (buf[at + 4] << 8) | buf[at + 5]]);
    }
    const gen = state.generation;
    barrier = Promise.allSettled([barrier, ...pendingDraws]).then(() => {
      if (gen !== state.generation) return;
      // The picture being drawn: the canvas, or the next size's while it is off screen.
      const picture = ctx.canvas;
      const w = picture.width;
      let from = picture;
      if (runs.length > 1) {
        // Several runs read the same picture: copy it aside first.
        if (!scratch) scratch = document.createElement('canvas');
        if (scratch.width !== w || scratch.height !== picture.height) {
          scratch.width = w;
          scratch.height = picture.height;
        }
        scratch.getContext('2d', { alpha: false }).drawImage(picture, 0, 0);
        from = scratch;
      }
      // A canvas drawn onto itself is copied first (HTML spec), so overlapping rows are fine.
      for (const [src, dst, h] of runs) {
        ctx.drawImage(from, 0, src, w, h, 0, dst, w, h);
        state.rowsCopied += h;
      }
      state.copies++;
      secFrames.add(frameId);
    });
  }

  // The codec string of the stream, from its SPS (profile, constraint flags, level).
  function codecFromSps(data) {
    for (let i = 0; i + 4 < data.length; i++) {
      if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
        const hex = (v) => v.toString(16).padStart(2, '0').toUpperCase();
        return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
      }
    }
    return null;
  }

  // H.264 pictures to RGB, exactly as a reference decoder does (the arithmetic is in yuv.js).
  // Where it runs, best first (`?yuv=` forces one, for comparing; a missing part falls back
  // to the next that works, `pixelflux.yuvPath` says which one is in use):
  //   worker     a worker converts in JavaScript and hands back the RGBA bytes: the main
  //              thread only transfers the VideoFrame and puts the bytes on the canvas
  //   worker-gl  the same worker with a WebGL2 shader (OffscreenCanvas in the worker)
  //   gl         a WebGL2 shader on the main thread, its canvas drawn into the page's
  //   js         JavaScript on the main thread, putImageData
  //   browser    Chromium's own conversion (drawImage of the VideoFrame): 1.4 dB (4:2:0) to
  //              6 dB (4:4:4) below a reference decode, kept for comparison
  // docs/PERFORMANCE.md has what each costs the main thread (pixelflux.mainMs).
  const YUV_PATHS = ['worker', 'worker-gl', 'gl', 'js', 'browser'];
  const yuv = window.pixelfluxYuv; // yuv.js
  const scriptUrl = document.currentScript ? document.currentScript.src : location.href;
  let canWork = typeof Worker !== 'undefined' && typeof OffscreenCanvas !== 'undefined' &&
    typeof VideoFrame !== 'undefined';
  let glMain = null;
  // The path that works, starting from `path`.
  function usablePath(path) {
    if (!yuv) return 'browser';
    if ((path === 'worker' || path === 'worker-gl') && !canWork) path = 'gl';
    if (path === 'gl' && !glMain && !(glMain = yuv.GlConverter.create())) path = 'js';
    return path;
  }
  let yuvPath = usablePath(YUV_PATHS.includes(params.get('yuv')) ? params.get('yuv') : YUV_PATHS[0]);
  state.yuvPath = yuvPath;

  // Conversion workers: one per core but the page's own, at most 4; a stripe row always goes to
  // the same one, so its pictures come back in order.
  let workers = null;
  let workerSeq = 0;
  const spares = [];
  // Whether the workers started (a refused one, e.g. by a Content-Security-Policy, throws here
  // or fails later through onerror: either way the page converts from then on).
  function startWorkers() {
    const n = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
    state.yuvWorkers = n;
    workers = [];
    for (let i = 0; i < n; i++) {
      let worker;
      try {
        worker = new Worker(new URL('yuv-worker.js', scriptUrl));
      } catch (e) {
        stopWorkers(`no conversion worker (${e.message})`);
        return false;
      }
      const entry = { worker, pending: new Map() };
      entry.worker.onmessage = (ev) => {
        const done = entry.pending.get(ev.data.id);
        entry.pending.delete(ev.data.id);
        if (done) done(ev.data);
      };
      // The script did not load (or died): convert on the main thread from now on.
      entry.worker.onerror = (ev) => {
        ev.preventDefault();
        stopWorkers('the conversion worker failed');
      };
      workers.push(entry);
    }
    return true;
  }
  function stopWorkers(why) {
    if (!workers) return;
    const all = workers;
    workers = null;
    canWork = false;
    yuvPath = state.yuvPath = usablePath('gl');
    console.warn(`${why}: converting H.264 pictures with ${yuvPath}`);
    for (const { worker, pending } of all) {
      worker.terminate();
      for (const done of pending.values()) done({ error: why });
    }
  }
  // Resolves with the worker's answer (see yuv-worker.js). RGBA buffers the page is done with
  // go back with the next pictures, so the worker does not allocate one per picture.
  function convertInWorker(frame, y, gl) {
    const row = Math.floor(y / ((state.hello && state.hello.stripe_height) || 64));
    const entry = workers[row % workers.length];
    const id = ++workerSeq;
    return new Promise((resolve) => {
      entry.pending.set(id, resolve);
      const spare = spares.pop();
      entry.worker.postMessage({ id, frame, gl, spare }, spare ? [frame, spare] : [frame]);
    });
  }

  // Draws a decoded picture at row `y` and closes it. Formats other than planar 8-bit YUV
  // (RGB frames from some hardware paths) are drawn by the browser. Resolves to whether the
  // picture was drawn. Counts the main thread's time in here (pixelflux.mainMs), the
  // conversion's wherever it ran (yuvMs) and the pixels converted (yuvPixels).
  const rgbaBuffers = new Map(); // `${w}x${h}` -> ImageData, reused
  async function drawFrame(frame, y, shouldDraw) {
    let t0 = performance.now();
    const lap = () => {
      const t = performance.now();
      state.mainMs += t - t0;
      t0 = t;
    };
    try {
      const format = frame.format;
      let path = yuvPath;
      if ((path === 'worker' || path === 'worker-gl') && !workers && !startWorkers()) path = yuvPath;
      if (path === 'browser' || (format !== 'I420' && format !== 'I444' && format !== 'NV12')) {
        if (!shouldDraw()) return false;
        ctx.drawImage(frame, 0, y);
        return true;
      }
      const w = frame.visibleRect ? frame.visibleRect.width : frame.displayWidth;
      const h = frame.visibleRect ? frame.visibleRect.height : frame.displayHeight;
      state.yuvPictures++;
      if (path === 'worker' || path === 'worker-gl') {
        const answer = convertInWorker(frame, y, path === 'worker-gl');
        lap();
        const r = await answer;
        t0 = performance.now();
        if (r.error) {
          requestRefresh();
          throw new Error(r.error);
        }
        state.yuvMs += r.ms;
        state.yuvPixels += w * h;
        if (r.path !== path && yuvPath === path) yuvPath = state.yuvPath = r.path;
        const draw = shouldDraw();
        if (r.rgba) {
          if (draw) ctx.putImageData(new ImageData(new Uint8ClampedArray(r.rgba), r.w, r.h), 0, y);
          if (spares.length < 8) spares.push(r.rgba);
          return draw;
        }
        if (draw) ctx.drawImage(r.bitmap, 0, y);
        r.bitmap.close();
        return draw;
      }
      const buf = new Uint8Array(frame.allocationSize());
      const copied = frame.copyTo(buf);
      lap();
      const layout = await copied;
      t0 = performance.now();
      if (!shouldDraw()) return false;
      const tables = yuv.tablesFor(frame.colorSpace);
      if (path === 'gl') {
        if (glMain.convert(buf, layout, format, w, h, tables)) {
          ctx.drawImage(glMain.canvas, 0, y);
          state.yuvMs += performance.now() - t0;
          state.yuvPixels += w * h;
          return true;
        }
        // The context was lost: JavaScript from now on.
        yuvPath = state.yuvPath = 'js';
      }
      const key = `${w}x${h}`;
      let img = rgbaBuffers.get(key);
      if (!img) {
        const data = new ImageData(w, h);
        img = { data, words: new Uint32Array(data.data.buffer) };
        rgbaBuffers.set(key, img);
      }
      const tc = performance.now();
      yuv.yuvToRgba(buf, layout, format, w, h, tables, img.words);
      state.yuvMs += performance.now() - tc;
      state.yuvPixels += w * h;
      ctx.putImageData(img.data, 0, y);
      return true;
    } finally {
      lap();
      frame.close();
    }
  }

  // A page slower than its stream (a slow machine, a busy tab, 1080p at 60 fps) must not fall
  // behind without limit: the server only notices a viewer whose socket fills, and H.264's
  // small pictures rarely fill it. So, per stripe:
  // - decoded pictures wait for conversion and paint one at a time: a newer one replaces the
  //   waiting one, which is closed unpainted (`skipped`; a decoded picture can be left
  //   undrawn, the decoder keeps its references);
  // - a decoder that falls behind (more than DECODER_MAX_CHUNKS chunks in it, or one waiting
  //   in it for over DECODER_MAX_WAIT_MS) or a stream that arrives over STREAM_MAX_LATE_MS
  //   later than usual is dropped with what is queued in it (`dropped`, `decoderResets`), and
  //   the stripe waits for its next IDR, asking the server for a refresh: a P picture is never
  //   decoded without its references.
  // "Later than usual": a chunk's age on arrival (our clock plus the ping's offset, minus its
  // capture time) above the lowest age seen in the last 5–10 s. The lowest age is the link's
  // own delay plus any error in the clock offset, which no reset can shorten: a page 2 s away
  // (or with an offset 2 s off, or after the server's clock stepped) stays smooth at that
  // delay; only a page whose own backlog grows is reset.
  const DECODER_MAX_CHUNKS = 30;
  const DECODER_MAX_WAIT_MS = 1000;
  const STREAM_MAX_LATE_MS = 1500;
  const AGE_WINDOW_MS = 5000;
  const ageFloor = { current: Infinity, previous: Infinity, since: -Infinity };
  // Notes a chunk's age on arrival; returns how much later than usual it is (ms).
  function lateness(age) {
    const t = performance.now();
    if (t - ageFloor.since >= AGE_WINDOW_MS) {
      ageFloor.previous = ageFloor.current;
      ageFloor.current = Infinity;
      ageFloor.since = t;
    }
    ageFloor.current = Math.min(ageFloor.current, age);
    return age - Math.min(ageFloor.current, ageFloor.previous);
  }

  function newDecoder(y, width, height, codec, gen) {
    // `queued`: the chunks given to the decoder and not out yet ({ timestamp, at }).
    // `waiting`: the newest decoded picture not yet handed to drawFrame; `busy`: one is there.
    const entry = { decoder: null, width, height, queued: [], waiting: null, busy: false };
    const drawNext = () => {
      const next = entry.waiting;
      if (!next || entry.busy) return;
      entry.waiting = null;
      entry.busy = true;
      const { frame, mySeq, frameId } = next;
      // A picture older than what is on the canvas (a still refresh that came after it) is
      // decoded, not drawn.
      const shouldDraw = () => gen === state.generation && (drawnSeq.get(y) ?? -1) < mySeq;
      drawFrame(frame, y, shouldDraw).then((drawn) => {
        if (drawn) {
          drawnSeq.set(y, mySeq);
          painted(frameId, y);
        } else {
          state.skipped++;
        }
      }, (e) => {
        state.errors++;
        console.warn(`drawing stripe y=${y}: ${e.message}`);
      }).finally(() => {
        entry.busy = false;
        drawNext();
      });
    };
    entry.decoder = new VideoDecoder({
      output: (frame) => {
        // The chunk's arrival order rides in the timestamp (see onH264).
        while (entry.queued.length && entry.queued[0].timestamp !== frame.timestamp) {
          entry.queued.shift();
          state.dropped++; // a chunk the decoder gave no picture for
        }
        entry.queued.shift();
        const mySeq = Math.floor(frame.timestamp / 65536);
        const frameId = frame.timestamp % 65536;
        if (gen !== state.generation) {
          frame.close();
          return;
        }
        if (entry.waiting) {
          entry.waiting.frame.close();
          state.skipped++;
        }
        entry.waiting = { frame, mySeq, frameId };
        drawNext();
      },
      error: (e) => {
        state.errors++;
        console.warn(`decoder for stripe y=${y}: ${e.message}`);
        dropDecoder(y, entry);
        requestRefresh();
      },
    });
    entry.decoder.configure({ codec, codedWidth: width, codedHeight: height, optimizeForLatency: true });
    state.codec = codec;
    return entry;
  }

  // Closes a stripe's decoder: what is queued in it is dropped, a picture waiting for its
  // turn to be drawn is closed, one being drawn finishes.
  function dropDecoder(y, entry) {
    if (entry.decoder.state !== 'closed') entry.decoder.close();
    state.dropped += entry.queued.length;
    entry.queued = [];
    if (entry.waiting) {
      entry.waiting.frame.close();
      entry.waiting = null;
      state.skipped++;
    }
    if (decoders.get(y) === entry) decoders.delete(y);
  }

  // Whether a stripe's decoding is too far behind to catch up picture by picture.
  function fallenBehind(entry, frameId) {
    if (entry.queued.length > DECODER_MAX_CHUNKS) return true;
    if (entry.queued.length && performance.now() - entry.queued[0].at > DECODER_MAX_WAIT_MS) return true;
    // The stream's age as it arrives, against its usual age: the page's main thread may be
    // what is late (known once a pong has set the clock offset).
    const t = frameTimes.get(frameId);
    return t !== undefined && state.bestRtt !== Infinity &&
      lateness(now() + state.clockOffset - t) > STREAM_MAX_LATE_MS;
  }

  function onH264(buf) {
    if (typeof VideoDecoder === 'undefined') {
      // WebCodecs exists only in secure contexts (https:, or http: on localhost).
      state.notice = window.isSecureContext
        ? 'this browser has no WebCodecs VideoDecoder: use --codec jpeg'
        : 'H.264 needs a secure context (WebCodecs): open this page over https:// ' +
          '(serve --tls-self-signed or --tls-cert), or on localhost, or serve --codec jpeg';
      overlay.textContent = state.notice;
      return;
    }
    const key = buf[1] === 0x01;
    const frameId = (buf[2] << 8) | buf[3];
    const y = (buf[4] << 8) | buf[5];
    const width = (buf[6] << 8) | buf[7];
    const height = (buf[8] << 8) | buf[9];
    const data = buf.subarray(10);
    let entry = decoders.get(y);
    if (entry && entry.decoder.state !== 'closed' && fallenBehind(entry, frameId)) {
      // An IDR starts the stripe afresh by itself; before a P picture, ask for one.
      state.decoderResets++;
      dropDecoder(y, entry);
      entry = null;
      if (!key) console.warn(`stripe y=${y} fell behind: waiting for its next IDR`);
    }
    if (!entry || entry.decoder.state === 'closed' || entry.width !== width || entry.height !== height) {
      if (!key) {
        // Nothing to decode against: wait for the IDR a refresh brings.
        state.dropped++;
        requestRefresh();
        return;
      }
      if (entry) dropDecoder(y, entry);
      const fallback = state.hello && state.hello.fullcolor ? 'avc1.F4001F' : 'avc1.42E01F';
      entry = newDecoder(y, width, height, codecFromSps(data) || fallback, state.generation);
      decoders.set(y, entry);
    }
    // Timestamps only need to be unique per decoder; the low 16 bits carry the frame id.
    const timestamp = ++seq * 65536 + frameId;
    try {
      entry.decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp, data }));
      entry.queued.push({ timestamp, at: performance.now() });
    } catch (e) {
      state.errors++;
      dropDecoder(y, entry);
      requestRefresh();
    }
  }

  function onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.type === 'hello') {
      onHello(msg);
    } else if (msg.type === 'frame') {
      frameTimes.set(msg.id, msg.t);
      if (frameTimes.size > FRAME_TIMES) frameTimes.delete(frameTimes.keys().next().value);
    } else if (msg.type === 'pong') {
      const t = now();
      const rtt = t - msg.t;
      if (rtt <= state.bestRtt) {
        state.bestRtt = rtt;
        state.clockOffset = msg.server - (msg.t + rtt / 2);
      }
    } else {
      if (msg.type === 'role') {
        state.display = msg.display || null;
        setTitle();
        onRoleResize(msg);
      }
      if (state.onMessage) state.onMessage(msg);
    }
  }

  function onBinary(buf) {
    secBytes += buf.length;
    state.stripes++;
    if (state.record) state.record.push(buf.slice());
    if (!state.hello || buf.length < 6) return;
    if (buf[0] === 0x03) onImage(buf, 'image/jpeg');
    else if (buf[0] === 0x04 && buf.length >= 10) onH264(buf);
    else if (buf[0] === 0x05 && buf[1] === 0x01) onImage(buf, 'image/png');
    else if (buf[0] === 0x06) onCopyRows(buf);
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    // Relative to the page, so it also works behind a reverse proxy at a sub-path.
    const url = new URL(`ws${query}`, location.href);
    url.protocol = proto;
    const socket = new WebSocket(url.href);
    socket.binaryType = 'arraybuffer';
    ws = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      state.connects++;
      state.connected = true;
      state.closeReason = null;
      state.tokenRefused = false;
      state.bestRtt = Infinity;
      send({ type: 'ping', t: now() });
      pingTimer = setInterval(() => send({ type: 'ping', t: now() }), PING_EVERY_MS);
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data === 'string') onText(ev.data);
      else onBinary(new Uint8Array(ev.data));
    };
    socket.onclose = (ev) => {
      if (ws === socket) state.connected = false;
      clearInterval(pingTimer);
      closeDecoders();
      if (ws !== socket) return;
      ws = null;
      // The server's command exited: nothing to reconnect to (a restart or a network drop
      // closes with another reason, or none, and the page reconnects).
      if (ev.code === 1001 && ev.reason === 'session ended') {
        state.ended = true;
        canvas.classList.add('disconnected');
        overlay.classList.remove('hidden');
        overlay.textContent = 'the session has ended';
        return;
      }
      // Why the server closed (serve stopped: "the server stopped" after a signal, or the
      // error that ended it, e.g. "capture ended: the X server went away"): shown while the
      // page retries (a restart is likely), until a connection opens.
      if (ev.reason) state.closeReason = ev.reason;
      canvas.classList.add('disconnected');
      overlay.classList.remove('hidden');
      if (opened) {
        state.tokenRefused = false;
        retry();
        return;
      }
      // A refused upgrade looks like any failed connect to a WebSocket: ask for the page
      // with the same token over HTTP, which answers 403 to a token no longer accepted
      // (serve restarted with another --token). Then retry slowly: that serve may be
      // replaced by one with this token again.
      fetch(location.href, { cache: 'no-store' })
        .then((r) => r.status === 403 && r.text().then((t) => /token/.test(t)))
        .catch(() => false)
        .then((refused) => {
          state.tokenRefused = !!refused;
          if (refused) backoff = RECONNECT_MAX_MS;
          retry();
        });
    };
  }

  // Reconnects after the backoff, counting down in the overlay under the reason last heard.
  function retry() {
    state.retries++;
    const wait = backoff;
    backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    const why = state.tokenRefused
      ? 'the token is not accepted: open the link serve prints'
      : state.closeReason;
    const at = performance.now() + wait;
    const show = () => {
      const left = Math.max(0, at - performance.now()) / 1000;
      overlay.textContent = (why ? `${why}\n` : '') +
        `disconnected: reconnecting in ${left.toFixed(1)} s`;
    };
    show();
    const countdown = setInterval(show, 100);
    setTimeout(() => {
      clearInterval(countdown);
      connect();
    }, wait);
  }

  let lastSkipped = 0;
  let lastResets = 0;
  setInterval(() => {
    state.live.fps = secFrames.size;
    state.live.kbps = Math.round((secBytes * 8) / 1000);
    if (secLatency.length) {
      state.live.latency = secLatency.reduce((a, b) => a + b, 0) / secLatency.length;
      state.live.latencyMax = Math.max(...secLatency);
    } else {
      state.live.latency = state.live.latencyMax = null;
    }
    secBytes = 0;
    secFrames.clear();
    secLatency = [];
    const skippedNow = state.skipped - lastSkipped;
    const resetsNow = state.decoderResets - lastResets;
    lastSkipped = state.skipped;
    lastResets = state.decoderResets;
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.hello) return;
    const h = state.hello;
    const lat = state.live.latency === null ? '–'
      : `${state.live.latency.toFixed(0)} ms (max ${state.live.latencyMax.toFixed(0)})`;
    overlay.textContent = (state.notice ? `${state.notice}\n` : '') +
      `${h.codec} ${h.width}x${h.height}  ${state.live.fps} fps  ` +
      `${state.live.kbps} kbit/s  capture→paint ${lat}` +
      // A page slower than its stream: what it left out in the last second to keep up (see
      // onH264); a page skipping now and then, as any does, shows nothing for long.
      (skippedNow || resetsNow
        ? `\nkeeping up: ${skippedNow} pictures skipped, ${resetsNow} decoder resets in the last second` : '');
  }, 1000);

  // input.js, the next script, must be listening before the server's first messages (its
  // role message gives control): on a slow network they can arrive while input.js is still
  // loading, so the page connects once every script has run.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', connect, { once: true });
  } else {
    connect();
  }
})();
