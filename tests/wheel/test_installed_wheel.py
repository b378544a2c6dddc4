"""Run by scripts/test-wheel.sh on a built wheel in a clean venv, with the system's libx264
hidden: the module is the installed one, and H.264 uses the libx264 inside the wheel (or, in a
NO_GPL wheel, is refused with an error naming the feature while JPEG works)."""

import os
import sys
import threading
from pathlib import Path

import pytest

import pixelflux

NO_GPL = os.environ.get("PIXELFLUX_WHEEL_NOGPL") == "1"


class Collector:
    def __init__(self):
        self.types = []
        self.got = threading.Event()

    def __call__(self, result, user_data):
        self.types.append(result.type)
        self.got.set()


def _libx264_in_maps():
    return {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
            if "libx264" in line}


def test_the_installed_wheel_is_imported():
    assert Path(pixelflux.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), \
        pixelflux.__file__


def test_wheel_encodes_with_its_own_libx264():
    settings = pixelflux.CaptureSettings(capture_width=64, capture_height=64, scene="static",
                                         output_mode=pixelflux.OUTPUT_MODE_H264)
    capture = pixelflux.ScreenCapture()
    if NO_GPL:
        with pytest.raises(RuntimeError, match="`x264` feature"):
            capture.start_capture(settings, pixelflux.StripeCallback(Collector()))
        assert _libx264_in_maps() == set()
        settings.output_mode = pixelflux.OUTPUT_MODE_JPEG
    collect = Collector()
    capture.start_capture(settings, pixelflux.StripeCallback(collect))
    try:
        assert collect.got.wait(20), "no stripes within 20 s"
    finally:
        capture.stop_capture()
    expected = pixelflux.STRIPE_TYPE_JPEG if NO_GPL else pixelflux.STRIPE_TYPE_H264
    assert set(collect.types) == {expected}
    if not NO_GPL:
        loaded = _libx264_in_maps()
        assert loaded and all("pixelflux.libs" in p for p in loaded), loaded
