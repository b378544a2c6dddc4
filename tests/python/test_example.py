"""examples/screen_to_browser.py serves its page and streams 1.2.2-format H.264 stripes over
WebSocket; the stripes a viewer receives decode (ffmpeg) to what is on the screen, and Ctrl-C
stops it cleanly."""

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import websockets
from PIL import Image
from Xlib import display as xdisplay

from conftest import H264_HEADER, decode_h264, pattern_image, psnr
from expect import x264_reference

def headers(rows):
    """1.2.2's H.264 header, byte for byte after the frame counter: stripe_y_start, width 640,
    height, for `rows`-row stripes of the 480-row region (the last one what is left)."""
    return {y: y.to_bytes(2, "big") + (640).to_bytes(2, "big")
            + min(rows, 480 - y).to_bytes(2, "big") for y in range(0, 480, rows)}


# The H.264 default: one stripe per core, at least 256 rows, a multiple of 16 (README); a
# 480-row region is two stripes (256 and 224 rows) on 2 cores and more, one on a single core.
assert headers(256) == {0: b"\x00\x00\x02\x80\x01\x00", 256: b"\x01\x00\x02\x80\x00\xe0"}


def default_rows(height):
    cores = len(os.sched_getaffinity(0))
    return min(height, max(256, -(-(-(-height // cores)) // 16) * 16))


HEADERS = headers(default_rows(480))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screen_to_browser.py"


class Output:
    """Reads a child's stdout on a thread of its own, so no wait on it can block the test."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.text = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.text.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, timeout=20):
        """The first match of `pattern` in a line printed before `timeout` s, or a failure
        that shows what was printed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r}; output:\n{self.all()}")
            m = re.search(pattern, line)
            if m:
                return m

    def all(self):
        return "".join(self.text)


async def connect(url, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await websockets.connect(url, max_size=None)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def receive(url, rows):
    """The hello, then stripes until every y in `rows` has come twice: the IDR a new viewer
    asks for, then the paint-over IDR that follows once the screen has been still for
    `paint_over_trigger_frames` (10) frames."""
    async with await connect(url) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        stripes, seen = [], {y: 0 for y in rows}
        while min(seen.values()) < 2:
            data = await asyncio.wait_for(ws.recv(), 10)
            stripes.append(data)
            y = int.from_bytes(data[4:6], "big")
            assert y in seen, data[:H264_HEADER]
            seen[y] += 1
    return hello, stripes


def test_screen_to_browser_streams_the_screen(xvfb_720p):
    xvfb = xvfb_720p
    picture = pattern_image(640, 480, seed=5)
    xvfb.draw(picture)
    # The example draws the pointer: park it outside the 640x480 region it captures.
    conn = xdisplay.Display(xvfb.display)
    conn.screen().root.warp_pointer(1200, 700)
    conn.sync()
    conn.close()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLE), "--display", xvfb.display, "--width", "640",
         "--height", "480", "--http-port", "0", "--ws-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Background jobs of a non-interactive shell ignore SIGINT; Ctrl-C must reach it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = Output(proc.stdout)
    try:
        # Ports 0: the example prints the page's port and names the stream's in the page.
        http_port = int(output.wait_for(r"open http://localhost:(\d+)/").group(1))
        page = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10).read()
        assert b"VideoDecoder" in page
        named = re.search(rb"ws://\$\{location\.hostname\}:\$\{(\d+)\}/", page)
        assert named, page
        ws_port = int(named.group(1))
        hello, stripes = asyncio.run(receive(f"ws://127.0.0.1:{ws_port}/", HEADERS))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the example did not stop on SIGINT:\n{output.all()}")
    output.wait_for(r"^Capture stopped\.$", timeout=10)
    out = output.all()
    assert proc.returncode == 0, out
    assert "Capture stopped." in out
    assert hello == {"mode": "h264", "width": 640, "height": 480}

    # The screen is static: first an IDR per stripe the new viewer asked for, then (10 still
    # frames later) a paint-over IDR per stripe, each a whole picture of its stripe.
    assert len(stripes) == 2 * len(HEADERS), [s[:H264_HEADER].hex() for s in stripes]
    canvas = Image.new("RGB", (640, 480))
    reference = Image.new("RGB", (640, 480))
    for data in stripes:
        assert data[:2] == b"\x04\x01", data[:H264_HEADER]  # an IDR
        y = int.from_bytes(data[4:6], "big")
        assert data[4:H264_HEADER] == HEADERS[y], data[:H264_HEADER]
        height = int.from_bytes(data[8:10], "big")
        (frame,) = decode_h264(data[H264_HEADER:], 640, height)
        canvas.paste(frame, (0, y))  # the later (paint-over) stripe of each y wins
    for y, header in HEADERS.items():
        height = int.from_bytes(header[4:6], "big")
        source = picture.crop((0, y, 640, y + height))
        reference.paste(x264_reference(source, None, False, qp=10), (0, y))
    quality, standard = psnr(canvas, picture), psnr(reference, picture)
    print(f"PSNR {quality:.2f} dB; ffmpeg's libx264 at QP 10 {standard:.2f} dB")
    # A paint-over IDR is sent with its quantizer forced to min(h264_crf, 10) = 10 (README):
    # measured 47.95 dB, the reference 48.43 dB. The reference is x264 at QP 10 on the same stripes, so another
    # x264 or ffmpeg moves both; 1 dB below it means a broken conversion or paint-over.
    assert quality >= standard - 1.0, f"PSNR {quality:.2f} dB vs {standard:.2f} dB"
