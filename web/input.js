// pixelflux input: keyboard, pointer, wheel and touch from the page to the X server.
//
// Loaded after client.js; uses window.pixelflux.send and .onMessage. Sends only when the
// server said this page has control ({"type":"role","control":true}).
//   {"type":"key","key":KeyboardEvent.key,"code":KeyboardEvent.code,"down":bool}
//   {"type":"pointer","x":px,"y":px,"buttons":MouseEvent.buttons}   (capture pixels)
//   {"type":"wheel","x":px,"y":px,"dx":clicks,"dy":clicks}
//   {"type":"clipboard","text":str}   (pasted into the page, line breaks as LF: becomes the
//   X clipboard)
// Server → page: {"type":"clipboard","text":str} when the X clipboard changes;
//   {"type":"cursor","w","h","x","y","rgba":base64} when the X pointer's shape changes
//   (drawn by the browser as the canvas's CSS cursor, hotspot x,y).
// Keys go out only while the page's keyboard sink has focus: a hidden textarea that takes the
// focus whenever the canvas would (a click; canvas.focus()). It is there because only an
// editable element gets IME composition and text from on-screen keyboards: composed text
// (compositionend) and text inserted without key events (`input`, inputType insertText) are
// sent as characters, each a key press of its Unicode keysym, like a typed `ж`. Dead keys
// (`key: "Dead"`) send nothing: the character they compose arrives as its own key or text.
// Touch: one finger is the left button (a tap clicks, a drag drags); two fingers scroll (wheel
// clicks, vertical and horizontal); pinching does nothing (the page does not zoom).
'use strict';

(() => {
  const px = window.pixelflux;
  const canvas = document.getElementById('screen');
  canvas.tabIndex = 0;
  canvas.style.outline = 'none';
  canvas.style.touchAction = 'none';
  // The keyboard sink: invisible, takes no clicks; focusing the canvas focuses it.
  const keys = document.createElement('textarea');
  keys.id = 'keys';
  keys.setAttribute('aria-label', 'keyboard input to the remote desktop');
  keys.autocomplete = 'off';
  keys.spellcheck = false;
  keys.setAttribute('autocapitalize', 'off');
  keys.setAttribute('autocorrect', 'off');
  Object.assign(keys.style, {
    position: 'fixed', left: '0', top: '0', width: '1px', height: '1px', opacity: '0',
    border: '0', padding: '0', resize: 'none', pointerEvents: 'none', caretColor: 'transparent',
  });
  document.body.appendChild(keys);
  const focusKeys = () => keys.focus({ preventScroll: true });
  canvas.addEventListener('focus', focusKeys);

  const MAX_KEY_NAME = 32;
  const MAX_CLICKS = 32;
  // Browser shortcuts left to the browser: fullscreen and developer tools.
  const PASS_THROUGH = new Set(['F11', 'F12']);

  // A paste of up to MAX_PASTE bytes of text (serve's MAX_CLIPBOARD), at most
  // MAX_PASTE_MESSAGE bytes as JSON (serve's MAX_PASTE_MESSAGE); the server closes a
  // connection that sends more, so a larger paste is refused here, with a notice.
  const MAX_PASTE = 256 * 1024;
  const MAX_PASTE_MESSAGE = 2 * MAX_PASTE;
  const NOTICE_MS = 6000;
  const input = {
    control: false, sent: 0, held: new Map(), clipboard: null, pasteTooLarge: 0,
    cursor: null, // { w, h, x, y, css } of the X pointer, once the server sent one
    texts: 0, // texts sent as characters (IME, on-screen keyboards)
    touchScrolls: 0, // wheel messages from two-finger scrolls
  };

  function applyCursor() {
    canvas.style.cursor = input.cursor ? input.cursor.css : (input.control ? '' : 'default');
  }

  function onCursor(msg) {
    const w = msg.w | 0;
    const h = msg.h | 0;
    if (w <= 0 || h <= 0 || w > 128 || h > 128) return;
    const bytes = Uint8ClampedArray.from(atob(msg.rgba), (c) => c.charCodeAt(0));
    if (bytes.length !== w * h * 4) return;
    // An application hid the pointer with an invisible cursor: every pixel transparent.
    let visible = false;
    for (let i = 3; i < bytes.length && !visible; i += 4) visible = bytes[i] !== 0;
    if (!visible) {
      input.cursor = { w, h, x: msg.x | 0, y: msg.y | 0, css: 'none' };
      applyCursor();
      return;
    }
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    c.getContext('2d').putImageData(new ImageData(bytes, w, h), 0, 0);
    input.cursor = { w, h, x: msg.x | 0, y: msg.y | 0, css: `url(${c.toDataURL()}) ${msg.x | 0} ${msg.y | 0}, default` };
    applyCursor();
  }
  px.input = input;

  function send(obj) {
    if (!input.control) return;
    input.sent++;
    px.send(obj);
  }

  const overlay = document.getElementById('overlay');
  let hideTimer = null;
  const prevOnMessage = px.onMessage;
  px.onMessage = (msg) => {
    if (msg.type === 'role') {
      input.control = !!msg.control; // (client.js puts the display in the title)
      canvas.classList.remove('disconnected');
      // The figures step aside a few seconds after connecting, unless something is wrong.
      clearTimeout(hideTimer);
      overlay.classList.remove('hidden');
      hideTimer = setTimeout(() => { if (!px.notice) overlay.classList.add('hidden'); }, 5000);
      if (document.hidden) px.send({ type: 'visibility', hidden: true });
      input.held.clear();
      applyCursor();
    } else if (msg.type === 'cursor') {
      onCursor(msg);
    } else if (msg.type === 'clipboard' && typeof msg.text === 'string') {
      // X → page: kept here, and put on the system clipboard where the browser allows it.
      input.clipboard = msg.text;
      if (navigator.clipboard && document.hasFocus()) navigator.clipboard.writeText(msg.text).catch(() => {});
    }
    if (prevOnMessage) prevOnMessage(msg);
  };

  // Page coordinates → capture pixels, through the letterboxing of `object-fit: contain`.
  function toCapture(ev) {
    const h = px.hello;
    if (!h) return null;
    const r = canvas.getBoundingClientRect();
    const scale = Math.min(r.width / h.width, r.height / h.height);
    if (!(scale > 0)) return null;
    const left = r.left + (r.width - h.width * scale) / 2;
    const top = r.top + (r.height - h.height * scale) / 2;
    const clamp = (v, max) => Math.min(Math.max(v, 0), max);
    return {
      x: clamp(Math.floor((ev.clientX - left) / scale), h.width - 1),
      y: clamp(Math.floor((ev.clientY - top) / scale), h.height - 1),
    };
  }

  // Paste: Ctrl+V / Shift+Insert are left to the browser so it fires a `paste` event with
  // the text; key messages wait (at most PASTE_WAIT_MS) so the X clipboard holds the text
  // before the application sees the keys.
  const PASTE_WAIT_MS = 200;
  let deferred = null;
  function sendKey(msg) {
    if (deferred) deferred.push(msg);
    else send(msg);
  }
  function flushKeys() {
    const q = deferred;
    deferred = null;
    if (q) for (const m of q) send(m);
  }
  // The paste key's messages, dropped with a refused paste (the application would paste the
  // previous clipboard instead); its release is then not sent either.
  function dropKeys() {
    const q = deferred;
    deferred = null;
    if (q) for (const m of q) if (m.type === 'key' && m.down) input.held.delete(m.code || m.key);
  }
  // A notice shown in the page for a few seconds (e.g. a paste that was not sent).
  let noticeTimer = null;
  function notify(text) {
    let el = document.getElementById('notice');
    if (!el) {
      el = document.createElement('div');
      el.id = 'notice';
      el.setAttribute('role', 'alert');
      document.body.appendChild(el);
    }
    el.textContent = text;
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.hidden = true; }, NOTICE_MS);
  }
  // Windows (CRLF) and old Mac (lone CR) line breaks as LF, as X applications expect: a
  // terminal turns a pasted CR into Enter, so "a\r\nb" would paste two line breaks.
  const unixLines = (text) => text.replace(/\r\n?/g, '\n');
  // Sends a paste (line breaks as LF); false (and a notice) when it is too large to send.
  function sendClipboard(pasted) {
    const text = unixLines(pasted);
    const msg = { type: 'clipboard', text };
    const enc = new TextEncoder();
    const bytes = enc.encode(text).length;
    if (bytes > MAX_PASTE || enc.encode(JSON.stringify(msg)).length > MAX_PASTE_MESSAGE) {
      input.pasteTooLarge++;
      const kib = (n) => `${Math.ceil(n / 1024)} KiB`;
      notify(`Paste not sent: ${kib(bytes)} of text is over the ${kib(MAX_PASTE)} limit.`);
      return false;
    }
    send(msg);
    return true;
  }
  document.addEventListener('paste', (ev) => {
    if (!input.control) return;
    ev.preventDefault();
    const text = ev.clipboardData ? ev.clipboardData.getData('text/plain') : '';
    if (text && !sendClipboard(text)) dropKeys();
    else flushKeys();
  });
  const isPaste = (ev) => ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'v') ||
    (ev.shiftKey && ev.key === 'Insert');

  // Characters that came as text (an IME's composition, an on-screen keyboard, a dictation),
  // not as keys: a press and release of each one's keysym. Line breaks and tabs are keys.
  function sendText(text) {
    if (!input.control || !text) return;
    for (const ch of unixLines(text)) {
      const key = ch === '\n' ? 'Enter' : ch === '\t' ? 'Tab' : ch;
      if (key.length === 1 && key.charCodeAt(0) < 0x20) continue;
      sendKey({ type: 'key', key, code: '', down: true });
      sendKey({ type: 'key', key, code: '', down: false });
    }
    input.texts++;
  }
  keys.addEventListener('compositionend', (ev) => {
    sendText(ev.data);
    keys.value = '';
  });
  keys.addEventListener('input', (ev) => {
    if (ev.isComposing) return; // compositionend sends it
    if (ev.inputType === 'insertText' || ev.inputType === 'insertReplacementText') sendText(ev.data);
    keys.value = '';
  });

  // Keyboard: only events aimed at the focused sink arrive here.
  keys.addEventListener('keydown', (ev) => {
    if (!input.control || PASS_THROUGH.has(ev.key) || ev.isComposing) return;
    // A dead key or an IME's key: the browser composes; the result comes as a key or text.
    if (ev.key === 'Dead' || ev.key === 'Process' || ev.keyCode === 229) return;
    if (ev.key.length > MAX_KEY_NAME || ev.code.length > MAX_KEY_NAME) return;
    if (isPaste(ev) && !ev.repeat) {
      if (!deferred) {
        deferred = [];
        setTimeout(flushKeys, PASTE_WAIT_MS);
      }
    } else {
      ev.preventDefault();
    }
    const id = ev.code || ev.key;
    input.held.set(id, { key: ev.key, code: ev.code });
    sendKey({ type: 'key', key: ev.key, code: ev.code, down: true });
  });
  keys.addEventListener('keyup', (ev) => {
    if (!input.control) return;
    const id = ev.code || ev.key;
    const down = input.held.get(id);
    if (!down) return;
    ev.preventDefault();
    input.held.delete(id);
    sendKey({ type: 'key', key: down.key, code: down.code, down: false });
  });
  // Focus gone (another window, a tab switch): let go of everything still held.
  keys.addEventListener('blur', () => {
    for (const { key, code } of input.held.values()) send({ type: 'key', key, code, down: false });
    input.held.clear();
  });

  // Pointer (mouse, pen, touch: a touch is the left button held).
  function pointer(ev) {
    const at = toCapture(ev);
    if (!at) return;
    let buttons = ev.buttons;
    if (ev.pointerType === 'touch') buttons = ev.type === 'pointerup' || ev.type === 'pointercancel' ? 0 : 1;
    send({ type: 'pointer', x: at.x, y: at.y, buttons: buttons & 31 });
  }
  canvas.addEventListener('pointerdown', (ev) => {
    // Not for touch: focusing a textarea would bring up an on-screen keyboard at every tap.
    if (ev.pointerType !== 'touch') focusKeys();
    if (!input.control) return;
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    if (ev.pointerType === 'touch') touchDown(ev);
    else pointer(ev);
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!input.control) return;
    if (ev.pointerType === 'touch') touchMove(ev);
    else pointer(ev);
  });
  const pointerEnd = (ev) => {
    if (!input.control) return;
    if (ev.pointerType === 'touch') touchUp(ev);
    else pointer(ev);
  };
  canvas.addEventListener('pointerup', pointerEnd);
  canvas.addEventListener('pointercancel', pointerEnd);

  // Touch. The first finger's press waits until it is a tap (lifted), a drag (moved past
  // TOUCH_SLOP) or a hold (TOUCH_HOLD_MS), so a second finger landing first turns the gesture
  // into a two-finger scroll without a click. Two fingers: their mean movement scrolls,
  // TOUCH_CLICK_PX (CSS px) per wheel click, the content following the fingers.
  const TOUCH_SLOP = 8;
  const TOUCH_HOLD_MS = 150;
  const TOUCH_CLICK_PX = 30;
  const touches = new Map(); // pointerId -> { x, y } (client px)
  const touch = { mode: null, first: null, firstId: null, timer: null, acc: { x: 0, y: 0 }, last: null };
  const mean = () => {
    let x = 0;
    let y = 0;
    for (const t of touches.values()) { x += t.x; y += t.y; }
    return { x: x / touches.size, y: y / touches.size };
  };
  function press(ev) {
    clearTimeout(touch.timer);
    touch.mode = 'drag';
    const at = toCapture(touch.first);
    if (at) send({ type: 'pointer', x: at.x, y: at.y, buttons: 1 });
    if (ev) pointer(ev);
  }
  function touchDown(ev) {
    touches.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
    if (touches.size === 1) {
      touch.mode = 'pending';
      touch.first = { clientX: ev.clientX, clientY: ev.clientY };
      touch.firstId = ev.pointerId;
      const at = toCapture(ev);
      if (at) send({ type: 'pointer', x: at.x, y: at.y, buttons: 0 });
      touch.timer = setTimeout(() => { if (touch.mode === 'pending') press(null); }, TOUCH_HOLD_MS);
    } else if (touches.size === 2 && touch.mode === 'pending') {
      clearTimeout(touch.timer);
      touch.mode = 'scroll';
      touch.acc = { x: 0, y: 0 };
      touch.last = mean();
    }
  }
  function touchMove(ev) {
    const t = touches.get(ev.pointerId);
    if (!t) return;
    t.x = ev.clientX;
    t.y = ev.clientY;
    if (ev.pointerId !== touch.firstId && touch.mode !== 'scroll') return;
    if (touch.mode === 'pending') {
      if (Math.hypot(ev.clientX - touch.first.clientX, ev.clientY - touch.first.clientY) > TOUCH_SLOP) press(ev);
    } else if (touch.mode === 'drag') {
      pointer(ev);
    } else if (touch.mode === 'scroll' && touches.size === 2) {
      const m = mean();
      // Fingers moving up scroll the content up: further down the document (wheel down).
      touch.acc.x += (touch.last.x - m.x) / TOUCH_CLICK_PX;
      touch.acc.y += (touch.last.y - m.y) / TOUCH_CLICK_PX;
      touch.last = m;
      const dx = Math.trunc(touch.acc.x);
      const dy = Math.trunc(touch.acc.y);
      if (!dx && !dy) return;
      touch.acc.x -= dx;
      touch.acc.y -= dy;
      const at = toCapture({ clientX: m.x, clientY: m.y });
      if (!at) return;
      const cap = (v) => Math.max(-MAX_CLICKS, Math.min(MAX_CLICKS, v));
      input.touchScrolls++;
      send({ type: 'wheel', x: at.x, y: at.y, dx: cap(dx), dy: cap(dy) });
    }
  }
  function touchUp(ev) {
    if (!touches.delete(ev.pointerId)) return;
    if (touch.mode === 'pending') press(null); // a tap: press here, release below
    if (touch.mode === 'drag' && ev.pointerId === touch.firstId) {
      const at = toCapture(ev);
      if (at) send({ type: 'pointer', x: at.x, y: at.y, buttons: 0 });
      touch.mode = touches.size ? 'done' : null;
    }
    if (touches.size === 0) {
      clearTimeout(touch.timer);
      touch.mode = null;
    }
  }
  canvas.addEventListener('contextmenu', (ev) => { if (input.control) ev.preventDefault(); });

  // Wheel: smooth (pixel) deltas add up to whole clicks of 100 px, lines 3 to a click.
  const acc = { x: 0, y: 0 };
  canvas.addEventListener('wheel', (ev) => {
    if (!input.control) return;
    ev.preventDefault();
    const unit = ev.deltaMode === 1 ? 1 / 3 : ev.deltaMode === 2 ? 1 : 1 / 100;
    acc.x += ev.deltaX * unit;
    acc.y += ev.deltaY * unit;
    const dx = Math.trunc(acc.x);
    const dy = Math.trunc(acc.y);
    if (!dx && !dy) return;
    acc.x -= dx;
    acc.y -= dy;
    const at = toCapture(ev);
    if (!at) return;
    const cap = (v) => Math.max(-MAX_CLICKS, Math.min(MAX_CLICKS, v));
    send({ type: 'wheel', x: at.x, y: at.y, dx: cap(dx), dy: cap(dy) });
  }, { passive: false });

  // A hidden tab stops the capture when it was the only one watching.
  document.addEventListener('visibilitychange', () => px.send({ type: 'visibility', hidden: document.hidden }));

  document.getElementById('stats')?.addEventListener('click', () => {
    clearTimeout(hideTimer);
    overlay.classList.toggle('hidden');
    focusKeys();
  });
  // A dropped connection shows: the picture greys out until the next role message.
  setInterval(() => {
    if (!px.connected && px.connects > 0) {
      canvas.classList.add('disconnected');
      overlay.classList.remove('hidden');
    }
  }, 250);

  const fullscreen = document.getElementById('fullscreen');
  if (fullscreen) {
    fullscreen.addEventListener('click', () => {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else document.documentElement.requestFullscreen().catch(() => {});
      focusKeys();
    });
  }

  focusKeys();
})();
