// pixelflux web client: draws the stripes `pixelflux serve` streams over a WebSocket.
//
// Server → client: JSON text ({"type":"hello"|"frame"|"pong", ...}) and binary stripes:
//   JPEG  0x03 0x00 frame_id:u16 y:u16 <JFIF>
//   H.264 0x04 type frame_id:u16 y:u16 width:u16 height:u16 <Annex-B access unit>  (type 1 = IDR)
// Client → server: {"type":"refresh"}, {"type":"ping","t":<ms>}; input.js sends input events.
'use strict';

(() => {
  const canvas = document.getElementById('screen');
  const ctx = canvas.getContext('2d', { alpha: false });
  const overlay = document.getElementById('overlay');

  const token = new URLSearchParams(location.search).get('token');
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
    codec: null, // the WebCodecs codec string of the last H.264 decoder configured
    clockOffset: 0, // server clock minus ours, in ms, from the best ping
    bestRtt: Infinity,
    live: { fps: 0, kbps: 0, latency: null, latencyMax: null },
    notice: null, // a problem to show in the overlay above the figures
    connected: false, // the WebSocket is open
  };
  window.pixelflux = state;

  let ws = null;
  let backoff = RECONNECT_MIN_MS;
  let pingTimer = null;
  let seq = 0; // arrival order, so a late JPEG decode never paints over a newer one
  const drawnSeq = new Map(); // y -> seq of what is on the canvas there
  const decoders = new Map(); // y -> { decoder, width, height }
  const frameTimes = new Map(); // frame_id -> capture time (server clock, ms)
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

  let lastRefresh = 0;
  function requestRefresh() {
    const t = performance.now();
    if (t - lastRefresh < 500) return;
    lastRefresh = t;
    state.refreshes++;
    send({ type: 'refresh' });
  }

  function closeDecoders() {
    for (const { decoder } of decoders.values()) {
      if (decoder.state !== 'closed') decoder.close();
    }
    decoders.clear();
  }

  function onHello(h) {
    const changed = !state.hello || h.width !== state.hello.width ||
      h.height !== state.hello.height || h.codec !== state.hello.codec;
    state.hello = h;
    state.generation++;
    state.paintedYs = new Set();
    drawnSeq.clear();
    frameTimes.clear();
    closeDecoders();
    if (changed) {
      canvas.width = h.width;
      canvas.height = h.height;
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, h.width, h.height);
    }
    backoff = RECONNECT_MIN_MS;
  }

  function painted(frameId, y) {
    state.painted++;
    state.paintedYs.add(y);
    secFrames.add(frameId);
    const t = frameTimes.get(frameId);
    if (t !== undefined) secLatency.push(now() + state.clockOffset - t);
  }

  function onJpeg(buf) {
    const frameId = (buf[2] << 8) | buf[3];
    const y = (buf[4] << 8) | buf[5];
    const mySeq = ++seq;
    const gen = state.generation;
    // createImageBitmap decodes off the main thread.
    createImageBitmap(new Blob([buf.subarray(6)], { type: 'image/jpeg' })).then((bmp) => {
      if (gen === state.generation && (drawnSeq.get(y) ?? -1) < mySeq) {
        ctx.drawImage(bmp, 0, y);
        drawnSeq.set(y, mySeq);
        painted(frameId, y);
      }
      bmp.close();
    }, () => {
      state.errors++;
      requestRefresh();
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

  function newDecoder(y, width, height, codec, gen) {
    const decoder = new VideoDecoder({
      output: (frame) => {
        if (gen === state.generation) {
          ctx.drawImage(frame, 0, y);
          painted(frame.timestamp % 65536, y);
        }
        frame.close();
      },
      error: (e) => {
        state.errors++;
        console.warn(`decoder for stripe y=${y}: ${e.message}`);
        if (decoders.get(y)?.decoder === decoder) decoders.delete(y);
        requestRefresh();
      },
    });
    decoder.configure({ codec, codedWidth: width, codedHeight: height, optimizeForLatency: true });
    state.codec = codec;
    return { decoder, width, height };
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
    if (!entry || entry.decoder.state === 'closed' || entry.width !== width || entry.height !== height) {
      if (!key) {
        // Nothing to decode against: wait for the IDR a refresh brings.
        requestRefresh();
        return;
      }
      if (entry && entry.decoder.state !== 'closed') entry.decoder.close();
      const fallback = state.hello && state.hello.fullcolor ? 'avc1.F4001F' : 'avc1.42E01F';
      entry = newDecoder(y, width, height, codecFromSps(data) || fallback, state.generation);
      decoders.set(y, entry);
    }
    // Timestamps only need to be unique per decoder; the low 16 bits carry the frame id.
    const timestamp = ++seq * 65536 + frameId;
    try {
      entry.decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp, data }));
    } catch (e) {
      state.errors++;
      entry.decoder.close();
      decoders.delete(y);
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
      if (frameTimes.size > 256) frameTimes.delete(frameTimes.keys().next().value);
    } else if (msg.type === 'pong') {
      const t = now();
      const rtt = t - msg.t;
      if (rtt <= state.bestRtt) {
        state.bestRtt = rtt;
        state.clockOffset = msg.server - (msg.t + rtt / 2);
      }
    } else if (state.onMessage) {
      state.onMessage(msg);
    }
  }

  function onBinary(buf) {
    secBytes += buf.length;
    state.stripes++;
    if (!state.hello || buf.length < 6) return;
    if (buf[0] === 0x03) onJpeg(buf);
    else if (buf[0] === 0x04 && buf.length >= 10) onH264(buf);
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
    socket.onopen = () => {
      state.connects++;
      state.connected = true;
      state.bestRtt = Infinity;
      send({ type: 'ping', t: now() });
      pingTimer = setInterval(() => send({ type: 'ping', t: now() }), PING_EVERY_MS);
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data === 'string') onText(ev.data);
      else onBinary(new Uint8Array(ev.data));
    };
    socket.onclose = () => {
      if (ws === socket) state.connected = false;
      clearInterval(pingTimer);
      closeDecoders();
      if (ws !== socket) return;
      ws = null;
      const wait = backoff;
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
      // A countdown until the next try.
      const at = performance.now() + wait;
      const show = () => {
        const left = Math.max(0, at - performance.now()) / 1000;
        overlay.textContent = `disconnected: reconnecting in ${left.toFixed(1)} s`;
      };
      show();
      const countdown = setInterval(show, 100);
      setTimeout(() => {
        clearInterval(countdown);
        connect();
      }, wait);
    };
  }

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
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.hello) return;
    const h = state.hello;
    const lat = state.live.latency === null ? '–'
      : `${state.live.latency.toFixed(0)} ms (max ${state.live.latencyMax.toFixed(0)})`;
    overlay.textContent = (state.notice ? `${state.notice}\n` : '') +
      `${h.codec} ${h.width}x${h.height}  ${state.live.fps} fps  ` +
      `${state.live.kbps} kbit/s  capture→paint ${lat}`;
  }, 1000);

  connect();
})();
