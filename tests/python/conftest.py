"""Fixtures for the Python API tests: a private Xvfb with known pixels drawn into it, and
helpers to decode stripes (Pillow for JPEG, ffmpeg for H.264) and compare them with what was
drawn."""

import select
import shutil
import subprocess
import threading
import time

import pytest
from PIL import Image, ImageChops, ImageStat
from Xlib import X
from Xlib import display as xdisplay

JPEG_HEADER = 4
H264_HEADER = 10


XVFB_START_TIMEOUT = 20


def start_xvfb(screen, *extra):
    """Starts `Xvfb -screen 0 <screen>` (`WxHxD`) with `extra` arguments; returns the process
    and its display name.

    The Python tests' one launcher. Started with -displayfd, as the Rust launcher
    (crates/pixelflux-xvfb) does: the server picks a free display number itself and writes it
    to our pipe once it accepts connections, so there is no lock-file scanning and no
    polling."""
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", screen, "-nolisten", "tcp", "-noreset",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    ready, _, _ = select.select([proc.stdout], [], [], XVFB_START_TIMEOUT)
    number = proc.stdout.readline().strip() if ready else b""
    proc.stdout.close()
    if not number.isdigit():
        stop_xvfb(proc)
        raise RuntimeError(f"Xvfb reported no display number within {XVFB_START_TIMEOUT} s "
                           f"(said {number!r}, exit status {proc.returncode})")
    return proc, f":{int(number)}"


def stop_xvfb(proc):
    """SIGTERM, so Xvfb removes its socket; SIGKILL only if it has not exited within 2 s."""
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Xvfb:
    """An Xvfb server of our own (`start_xvfb`) with a 24-bit screen; `draw` puts RGB images
    on it."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.proc, self.display = start_xvfb(f"{width}x{height}x24")
        try:
            self._conn = xdisplay.Display(self.display)
        except BaseException:
            stop_xvfb(self.proc)
            raise

    def draw(self, image, x=0, y=0):
        """Puts a Pillow RGB image at (x, y) of the root window, in bands that fit a request."""
        screen = self._conn.screen()
        root = screen.root
        gc = root.create_gc()
        bgrx = image.convert("RGB").tobytes("raw", "BGRX")
        stride = image.width * 4
        band = max(1, 200_000 // stride)
        for row in range(0, image.height, band):
            h = min(band, image.height - row)
            root.put_image(gc, x, y + row, image.width, h, X.ZPixmap, screen.root_depth, 0,
                           bgrx[row * stride:(row + h) * stride])
        gc.free()
        self._conn.sync()

    def fill(self, rgb, x=0, y=0, width=None, height=None):
        width = self.width - x if width is None else width
        height = self.height - y if height is None else height
        self.draw(Image.new("RGB", (width, height), rgb), x, y)

    def kill(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
        if self.proc is not None:
            stop_xvfb(self.proc)
            self.proc = None


@pytest.fixture
def xvfb():
    """A 640x480 Xvfb for one test."""
    server = Xvfb(640, 480)
    yield server
    server.kill()


@pytest.fixture
def xvfb_720p():
    """A 1280x720 Xvfb (the README example captures 1280x720)."""
    server = Xvfb(1280, 720)
    yield server
    server.kill()


def pattern_image(width, height, seed=0):
    """A deterministic picture with detail: gradients, flat blocks and text-like strokes, on a
    16-pixel grid (so colour edges fall on the 4:2:0 chroma grid, as UI edges mostly do)."""
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            block = ((x // 16) * 7 + (y // 16) * 13 + seed) % 5
            if block == 0:
                px[x, y] = (90, y * 255 // height, x * 255 // width)
            elif block == 1:
                px[x, y] = (230, 230, 230)
            elif block == 2:
                px[x, y] = (200, 120, 40)
            elif block == 3:
                grey = 30 if (x * 7 + y * 3 + seed) % 11 < 3 else 225
                px[x, y] = (grey, grey, grey)
            else:
                px[x, y] = (20, 20, 20)
    return img


def psnr(a, b):
    """PSNR in dB over R, G and B of two same-sized images (inf when identical)."""
    assert a.size == b.size, (a.size, b.size)
    rms = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).rms
    mse = sum(r * r for r in rms) / 3
    if mse == 0:
        return float("inf")
    import math
    return 10 * math.log10(255 * 255 / mse)


def decode_jpeg_stripe(data):
    """Decodes a JPEG stripe's payload (after 1.2.2's 4-byte header) with Pillow."""
    from io import BytesIO
    img = Image.open(BytesIO(data[JPEG_HEADER:]))
    img.load()
    return img.convert("RGB")


def decode_h264(stream, width, height):
    """Decodes an Annex-B H.264 stream with ffmpeg; returns the frames as RGB images."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg must be installed (make test installs it)"
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "h264", "-i", "pipe:0",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        input=stream, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, timeout=60,
    ).stdout
    size = width * height * 3
    assert len(out) % size == 0, (len(out), width, height)
    return [Image.frombytes("RGB", (width, height), out[i:i + size])
            for i in range(0, len(out), size)]


class Collector:
    """A callback that keeps every result (or what `keep` makes of it), thread-safely."""

    def __init__(self, keep=lambda result: result):
        self.items = []
        self.user_data = []
        self.keep = keep
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)

    def __call__(self, result, user_data):
        item = self.keep(result)
        with self.cond:
            self.items.append(item)
            self.user_data.append(user_data)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.items), timeout)


def wait_until(predicate, timeout=10, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def rss_bytes():
    """Resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# No silent skips: a skipped test (a missing tool or feature) fails the run.
_skipped = []


def pytest_runtest_logreport(report):
    # An expected failure (xfail, strict, with its reason) is reported, not skipped silently.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _skipped:
        terminalreporter.section("skipped tests count as failures")
        for nodeid in _skipped:
            terminalreporter.write_line(nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _skipped and exitstatus == 0:
        session.exitstatus = 1
