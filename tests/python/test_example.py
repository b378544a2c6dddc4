"""examples/screen_to_browser.py serves its page and streams 1.2.2-format H.264 stripes over
WebSocket; the stripes a viewer receives decode (ffmpeg) to what is on the screen, and Ctrl-C
stops it cleanly."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websockets
from PIL import Image

from conftest import H264_HEADER, decode_h264, pattern_image, psnr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screen_to_browser.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect(url, timeout=20):
    """The page is served a moment before the WebSocket server listens: retry until then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await websockets.connect(url, max_size=None)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def receive(url, count):
    async with await connect(url) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        stripes = [await asyncio.wait_for(ws.recv(), 10) for _ in range(count)]
    return hello, stripes


def test_screen_to_browser_streams_the_screen(xvfb):
    picture = pattern_image(640, 480, seed=5)
    xvfb.draw(picture)
    http_port, ws_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLE), "--display", xvfb.display, "--width", "640",
         "--height", "480", "--http-port", str(http_port), "--ws-port", str(ws_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Background jobs of a non-interactive shell ignore SIGINT; Ctrl-C must reach it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.1)
        assert b"VideoDecoder" in page and str(ws_port).encode() in page
        # The screen is static: the 4 stripes a new viewer gets are the IDRs it asked for.
        hello, stripes = asyncio.run(receive(f"ws://127.0.0.1:{ws_port}/", 4))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Capture stopped." in out
    assert hello == {"mode": "h264", "width": 640, "height": 480}

    canvas = Image.new("RGB", (640, 480))
    rows = set()
    for data in stripes:
        assert data[0] == 0x04 and data[1] == 0x01  # 1.2.2's H.264 header, an IDR
        y = int.from_bytes(data[4:6], "big")
        width, height = int.from_bytes(data[6:8], "big"), int.from_bytes(data[8:10], "big")
        (frame,) = decode_h264(data[H264_HEADER:], width, height)
        canvas.paste(frame, (0, y))
        rows.add(y)
    assert rows == {0, 128, 256, 384}  # H.264 stripes are 128 rows by default (the last 96)
    # H.264 4:2:0 key frames at CRF 25 on this colour-block pattern: 29.1 dB in 128-row
    # stripes (the H.264 default), 30.0 dB in 64-row ones; deterministic for a still screen.
    assert psnr(canvas, picture) >= 29
