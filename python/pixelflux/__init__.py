"""pixelflux: capture a region of an X11 screen, find the horizontal stripes that changed,
encode only those (JPEG or H.264, in parallel) and hand each one to a Python callback.

A drop-in for the pixelflux 1.2.2 API::

    from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

    def on_stripe(result, user_data):
        print(result.type, result.frame_id, result.stripe_y_start, len(result.data))

    settings = CaptureSettings()
    settings.capture_width, settings.capture_height = 1280, 720
    capture = ScreenCapture()
    capture.start_capture(settings, StripeCallback(on_stripe))
    ...
    capture.stop_capture()

The callback runs on a background thread; capturing and encoding never hold the GIL.
See docs/python.md for the details and the differences from 1.2.2.
"""

import atexit as _atexit

from ._pixelflux import (
    OUTPUT_MODE_H264,
    OUTPUT_MODE_JPEG,
    STRIPE_TYPE_H264,
    STRIPE_TYPE_JPEG,
    WATERMARK_ANIMATED,
    WATERMARK_BOTTOM_LEFT,
    WATERMARK_BOTTOM_RIGHT,
    WATERMARK_MIDDLE,
    WATERMARK_NONE,
    WATERMARK_TOP_LEFT,
    WATERMARK_TOP_RIGHT,
    SOFTWARE_ENCODERS,
    SOFTWARE_FORMATS,
    SOFTWARE_FULLCOLOR,
    CaptureSettings,
    ScreenCapture,
    StripeCallback,
    StripeEncodeResult,
    StripeFrame,
    __version__,
    _stop_all,
    ensure_wayland_display,
    get_wayland_display_name,
    hardware_encoders,
    hardware_formats,
    hardware_fullcolor,
    probe_wayland_gpu,
    stripe_frame_from_buffer,
)

# Capture threads call into Python; end them before the interpreter shuts down under them.
_atexit.register(_stop_all)

__all__ = [
    "CaptureSettings",
    "ScreenCapture",
    "StripeCallback",
    "StripeEncodeResult",
    "OUTPUT_MODE_JPEG",
    "OUTPUT_MODE_H264",
    "STRIPE_TYPE_JPEG",
    "STRIPE_TYPE_H264",
    "WATERMARK_NONE",
    "WATERMARK_TOP_LEFT",
    "WATERMARK_TOP_RIGHT",
    "WATERMARK_BOTTOM_LEFT",
    "WATERMARK_BOTTOM_RIGHT",
    "WATERMARK_MIDDLE",
    "WATERMARK_ANIMATED",
    "__version__",
    # pixelflux 2.x names (docs/python.md, "pixelflux 2.x API").
    "StripeFrame",
    "stripe_frame_from_buffer",
    "SOFTWARE_ENCODERS",
    "SOFTWARE_FORMATS",
    "SOFTWARE_FULLCOLOR",
    "hardware_encoders",
    "hardware_formats",
    "hardware_fullcolor",
    "ensure_wayland_display",
    "get_wayland_display_name",
    "probe_wayland_gpu",
]
