"""Documented behaviour of the capture loop seen from Python: a slow callback delays frames but
never causes a burst to catch up (README, "Pacing"; docs/python.md, "Threads and the GIL"), and
a screen whose pixel format cannot be captured is refused at start (README: start checks the
pixel format), and a change X DAMAGE never reported is still sent by the once-a-second check
of every stripe (README, "Change detection")."""

import mmap
import os
import struct
import tempfile
import threading
import time

import pytest

from conftest import start_xvfb, stop_xvfb, wait_until
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback


def test_a_slow_callback_delays_frames_without_a_catch_up_burst():
    fps = 20
    # One 64-row stripe a frame, every frame changed: one callback per frame.
    s = CaptureSettings(capture_width=64, capture_height=64, stripe_height=64, scene="full",
                        target_fps=float(fps))
    arrivals, resumed = [], []

    def on_stripe(result, user_data):
        arrivals.append(time.monotonic())
        if len(arrivals) == 5:
            time.sleep(1.0)  # 20 frame periods
            resumed.append(time.monotonic())

    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(on_stripe))
    try:
        assert wait_until(lambda: len(arrivals) >= 5 + 2 * fps, timeout=60), len(arrivals)
    finally:
        cap.stop_capture()
    later = [t for t in arrivals[5:] if t >= resumed[0]]
    assert len(later) == len(arrivals) - 5, "a callback ran while the slow one was running"
    # No second of the capture after the slow callback holds more than a second's frames (+2
    # for where the window falls). Catching up would deliver the 20 missed frames at once, 40
    # or so in the first second; queueing would deliver frames taken during the slow call.
    # Only an upper bound: a loaded machine delivers fewer, never more.
    busiest = max(sum(1 for u in later if t <= u < t + 1.0) for t in later)
    assert busiest <= fps + 2, f"{busiest} callbacks within one second at {fps} fps"


def test_a_16_bit_screen_is_refused_at_start_naming_its_depth():
    proc, display = start_xvfb("64x64x16")
    try:
        s = CaptureSettings(display=display, capture_width=64, capture_height=64)
        cap = ScreenCapture()
        with pytest.raises(OSError, match="depth 16") as raised:
            cap.start_capture(s, StripeCallback(lambda r, u: None))
        assert not isinstance(raised.value, ConnectionError), raised.value
        assert not cap.is_running
    finally:
        stop_xvfb(proc)


def test_a_callback_never_runs_twice_at_once():
    """Callbacks for one capture come one at a time (docs/python.md)."""
    s = CaptureSettings(capture_width=128, capture_height=128, stripe_height=16, scene="full",
                        target_fps=200.0)
    inside, overlaps, calls = [0], [], []
    lock = threading.Lock()

    def on_stripe(result, user_data):
        with lock:
            inside[0] += 1
            if inside[0] > 1:
                overlaps.append(result.frame_id)
        time.sleep(0.001)  # lets another thread in, were there one
        calls.append((result.frame_id, result.stripe_y_start))
        with lock:
            inside[0] -= 1

    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(on_stripe))
    try:
        assert wait_until(lambda: len(calls) >= 200, timeout=60), len(calls)
    finally:
        cap.stop_capture()
    assert overlaps == []
    # In stripe order within each frame, frames in order.
    assert calls == sorted(calls), calls[:20]


def test_a_change_damage_never_reported_is_sent_by_the_once_a_second_check():
    # Xvfb -fbdir keeps the screen in a memory-mapped XWD file: writing the file changes the
    # pixels with no X request, so X DAMAGE reports nothing.
    with tempfile.TemporaryDirectory() as fbdir:
        proc, display = start_xvfb("320x240x24", "-fbdir", fbdir)
        try:
            fps = 60  # once a second = every 60th frame
            s = CaptureSettings(display=display, capture_width=320, capture_height=240,
                                target_fps=float(fps), paint_over_trigger_frames=1_000_000)
            got = []
            cond = threading.Condition()

            def on_stripe(result, user_data):
                with cond:
                    got.append((result.frame_id, result.stripe_y_start))
                    cond.notify_all()

            cap = ScreenCapture()
            cap.start_capture(s, StripeCallback(on_stripe))
            try:
                with cond:
                    assert cond.wait_for(lambda: len(got) >= 4, 20), got  # frame 0: 4 stripes
                    before = len(got)
                with open(os.path.join(fbdir, "Xvfb_screen0"), "r+b") as f, \
                        mmap.mmap(f.fileno(), 0) as fb:
                    header_size, = struct.unpack(">I", fb[0:4])
                    bytes_per_line, = struct.unpack(">I", fb[48:52])
                    ncolors, = struct.unpack(">I", fb[76:80])
                    pixels = header_size + ncolors * 12
                    # Rows 70..80 (in the second 64-row stripe) turn white behind X's back.
                    for row in range(70, 80):
                        start = pixels + row * bytes_per_line
                        fb[start:start + 320 * 4] = b"\xff" * (320 * 4)
                    fb.flush()
                with cond:
                    assert cond.wait_for(lambda: len(got) > before, 20), \
                        "the change was never sent"
                    later = got[before:]
            finally:
                cap.stop_capture()
        finally:
            stop_xvfb(proc)
    frame_id, y = later[0]
    assert y == 64, later
    # Sent by the full check, not by DAMAGE: on a frame that is a multiple of 60.
    assert frame_id > 0 and frame_id % fps == 0, later
