#!/usr/bin/env python3
"""Stream this X screen to a browser: pixelflux captures and encodes changed stripes (H.264 by
default, JPEG with --jpeg), a WebSocket server sends them to every viewer, and a small page
decodes them with WebCodecs (H.264) or createImageBitmap (JPEG) and draws them on a canvas.

The pattern of pixelflux 1.2.2's example/screen_to_browser.py, on this package:
  pip install websockets        # the example's only dependency
  python3 examples/screen_to_browser.py [--display :0] [--width 1280 --height 720] [--jpeg]
then open http://localhost:9001/ (WebCodecs needs localhost or HTTPS).

Threads: the capture callback runs on pixelflux's capture thread; it only hands the bytes to the
asyncio loop with call_soon_threadsafe. stop_capture() blocks until that thread has exited, so
it runs in an executor, not on the loop (a callback waiting for the loop must not wait forever).
"""

import argparse
import asyncio
import http.server
import json
import logging
import socket
import threading

import websockets

from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pixelflux</title>
<style>body{margin:0;background:#222;color:#ccc;font:13px sans-serif}
canvas{display:block;margin:0 auto;max-width:100%}#s{position:fixed;top:0;left:0}</style>
</head><body><div id="s">connecting…</div><canvas id="c"></canvas><script>
const canvas = document.getElementById('c'), ctx = canvas.getContext('2d');
const status = document.getElementById('s');
let mode = null;
const decoders = new Map();  // one H.264 decoder per stripe, keyed by its y

function h264Decoder(y, width, height) {
  const d = new VideoDecoder({
    output: frame => { ctx.drawImage(frame, 0, y); frame.close(); },
    error: e => { console.error(e); decoders.delete(y); },
  });
  d.configure({codec: 'avc1.42E01E', codedWidth: width, codedHeight: height,
               optimizeForLatency: true});
  return d;
}

function onH264(buf) {
  // 10-byte header: 0x04, frame type (1 = IDR), frame_id, y, width, height (big-endian u16).
  const v = new DataView(buf);
  const key = v.getUint8(1) === 1, frameId = v.getUint16(2), y = v.getUint16(4);
  const width = v.getUint16(6), height = v.getUint16(8);
  let d = decoders.get(y);
  if (!d || d.state === 'closed') {
    if (!key) return;  // wait for this stripe's next IDR
    d = h264Decoder(y, width, height);
    decoders.set(y, d);
  }
  d.decode(new EncodedVideoChunk({type: key ? 'key' : 'delta', timestamp: frameId,
                                  data: new Uint8Array(buf, 10)}));
}

async function onJpeg(buf) {
  // 1.2.2's 4-byte header: frame_id, y (big-endian u16), then the JPEG.
  const y = new DataView(buf).getUint16(2);
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(buf, 4)],
                                                  {type: 'image/jpeg'}));
  ctx.drawImage(bitmap, 0, y);
  bitmap.close();
}

const ws = new WebSocket(`ws://${location.hostname}:${WS_PORT}/`);
ws.binaryType = 'arraybuffer';
ws.onmessage = e => {
  if (typeof e.data === 'string') {  // the hello: mode and size
    const hello = JSON.parse(e.data);
    mode = hello.mode; canvas.width = hello.width; canvas.height = hello.height;
    status.textContent = `${mode} ${hello.width}x${hello.height}`;
    return;
  }
  if (mode === 'h264') onH264(e.data); else onJpeg(e.data);
};
ws.onclose = () => { status.textContent = 'disconnected'; };
</script></body></html>
"""


class Viewers:
    """The connected WebSocket clients; stripes go to all of them."""

    def __init__(self):
        self.clients = set()

    async def broadcast(self, data):
        for ws in list(self.clients):
            try:
                await ws.send(data)
            except websockets.ConnectionClosed:
                self.clients.discard(ws)


def serve_page(port, ws_port):
    body = PAGE.replace("WS_PORT", str(ws_port)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def main(args):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(maxsize=512)
    viewers = Viewers()

    settings = CaptureSettings()
    settings.capture_width, settings.capture_height = args.width, args.height
    settings.capture_x, settings.capture_y = args.x, args.y
    settings.target_fps = args.fps
    settings.output_mode = 0 if args.jpeg else 1
    settings.h264_crf = 25
    settings.jpeg_quality = 75
    settings.use_paint_over_quality = True
    settings.capture_cursor = True
    if args.display:
        settings.display = args.display  # ours; 1.2.2 always used $DISPLAY

    capture = ScreenCapture()

    def put(data):
        if queue.full():  # a slow network: drop, then ask for a full refresh
            capture.request_idr()
            return
        queue.put_nowait(data)

    def on_stripe(result, user_data):
        # The capture thread: hand the bytes to the loop and return at once.
        loop.call_soon_threadsafe(put, result.data)

    async def handler(ws, path=None):  # `path` for websockets < 10.1
        await ws.send(json.dumps({"mode": "jpeg" if args.jpeg else "h264",
                                  "width": args.width, "height": args.height}))
        viewers.clients.add(ws)
        capture.request_idr()  # the newcomer needs key frames for every stripe
        try:
            await ws.wait_closed()
        finally:
            viewers.clients.discard(ws)

    async def pump():
        while True:
            data = await queue.get()
            await viewers.broadcast(data)

    async with websockets.serve(handler, "", args.ws_port, max_size=None) as server:
        # Port 0 picks a free port (per address family): the page names the IPv4 one.
        ws_port = next((s.getsockname()[1] for s in server.sockets
                        if s.family == socket.AF_INET), server.sockets[0].getsockname()[1])
        page = serve_page(args.http_port, ws_port)
        capture.start_capture(settings, StripeCallback(on_stripe))
        print(f"Streaming; open http://localhost:{page.server_address[1]}/  (Ctrl-C to stop)")
        try:
            await pump()
        finally:
            # stop_capture() joins the capture thread: never block the loop on it.
            await loop.run_in_executor(None, capture.stop_capture)
            page.shutdown()
            print("Capture stopped.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--display", help="X display (default: $DISPLAY)")
    parser.add_argument("--x", type=int, default=0)
    parser.add_argument("--y", type=int, default=0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--jpeg", action="store_true", help="JPEG stripes instead of H.264")
    parser.add_argument("--http-port", type=int, default=9001, help="0: any free port")
    parser.add_argument("--ws-port", type=int, default=9000, help="0: any free port")
    logging.basicConfig(level=logging.INFO)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
