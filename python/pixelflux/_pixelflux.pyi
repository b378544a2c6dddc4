"""Type stubs for the native module behind the `pixelflux` package."""

import os
from typing import Any, Callable, Dict, Optional, Union, final

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
]

__version__: str

OUTPUT_MODE_JPEG: int
OUTPUT_MODE_H264: int
STRIPE_TYPE_JPEG: int
STRIPE_TYPE_H264: int
WATERMARK_NONE: int
WATERMARK_TOP_LEFT: int
WATERMARK_TOP_RIGHT: int
WATERMARK_BOTTOM_LEFT: int
WATERMARK_BOTTOM_RIGHT: int
WATERMARK_MIDDLE: int
WATERMARK_ANIMATED: int

_PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]", None]

@final
class CaptureSettings:
    """Settings of a capture, with pixelflux 1.2.2's fields and defaults.

    Assigning a value of the wrong type raises TypeError, an out-of-range value ValueError;
    both name the field. Keyword arguments to the constructor set fields (ours).
    """

    def __init__(self, **fields: Any) -> None: ...
    capture_width: int
    """Width of the region, 1..16384 (default 1920)."""
    capture_height: int
    """Height of the region, 1..16384 (default 1080)."""
    capture_x: int
    """Left edge of the region on the screen, >= 0 (default 0)."""
    capture_y: int
    """Top edge of the region on the screen, >= 0 (default 0)."""
    target_fps: float
    """Frames per second, 0.01..1000 (default 60.0)."""
    capture_cursor: bool
    """Draw the pointer into the frames (default False)."""
    output_mode: int
    """0 JPEG, 1 H.264 (default 0)."""
    jpeg_quality: int
    """JPEG quality of changing stripes, 0..100 (default 85; 0 acts as 1)."""
    paint_over_jpeg_quality: int
    """JPEG quality of paint-over refreshes, 0..100 (default 95)."""
    use_paint_over_quality: bool
    """Re-send static stripes once at higher quality (default False)."""
    paint_over_trigger_frames: int
    """Static frames before a paint-over, >= 1 (default 10)."""
    damage_block_threshold: int
    """Consecutive changed frames that make a stripe "damaged" (default 15)."""
    damage_block_duration: int
    """Frames a damaged stripe is sent without hashing (default 30)."""
    h264_crf: int
    """H.264 constant rate factor, 0..51, lower is better (default 25); 0 needs h264_fullcolor."""
    h264_fullcolor: bool
    """H.264 in 4:4:4 (High 4:4:4) instead of 4:2:0 (default False)."""
    h264_fullframe: bool
    """H.264 of whole frames instead of stripes (default False)."""
    @property
    def watermark_path(self) -> Optional[str]:
        """PNG burnt into every frame; str, bytes, os.PathLike or None (default None)."""
    @watermark_path.setter
    def watermark_path(self, value: _PathArg) -> None: ...
    watermark_location_enum: int
    """0 none, 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right, 5 middle, 6 animated."""
    vaapi_render_node_index: int
    """Accepted for compatibility; software encoders are always used (default -1)."""
    stripe_height: int
    """Rows per stripe, even, >= 16; 0 picks per codec: 64 for JPEG, 128 for H.264
    (ours; default 0)."""
    display: Optional[str]
    """X display to capture, such as ":1" (ours; default None = $DISPLAY)."""
    scene: Optional[str]
    """Capture a synthetic scene ("static", "typing", "scroll", "video", "full") instead
    of the X display (ours; default None)."""
    def __copy__(self) -> "CaptureSettings": ...
    def __deepcopy__(self, memo: Any) -> "CaptureSettings": ...

@final
class StripeEncodeResult:
    """One encoded stripe. Read-only; supports the buffer protocol (memoryview, no copy)."""

    @property
    def type(self) -> int:
        """1 JPEG, 2 H.264."""
    @property
    def stripe_y_start(self) -> int:
        """First row of the stripe in the region."""
    @property
    def stripe_height(self) -> int:
        """Rows in the stripe."""
    @property
    def stripe_width(self) -> int:
        """Pixels per row (ours)."""
    @property
    def size(self) -> int:
        """Length of data in bytes."""
    @property
    def header_size(self) -> int:
        """Length of the header at the start of data: 4 JPEG, 10 H.264 (ours)."""
    @property
    def data(self) -> bytes:
        """Header and payload in 1.2.2's wire format (a new bytes object per access)."""
    @property
    def frame_id(self) -> int:
        """Frame counter; the header carries it modulo 65536."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

_Callback = Callable[[StripeEncodeResult, Any], object]

@final
class StripeCallback:
    """Wraps the function called as fn(result, user_data) for every stripe."""

    def __init__(self, function: _Callback) -> None: ...
    @property
    def function(self) -> _Callback: ...
    def __call__(self, result: StripeEncodeResult, user_data: Any = None) -> object: ...

@final
class ScreenCapture:
    """Captures a screen region and calls back with each changed, encoded stripe."""

    def __init__(self) -> None: ...
    def start_capture(
        self,
        settings: CaptureSettings,
        callback: Union[StripeCallback, _Callback],
        user_data: Any = None,
    ) -> None:
        """Start capturing; RuntimeError if already capturing, ValueError for bad settings,
        ConnectionError if the display cannot be opened."""
    def stop_capture(self) -> None:
        """Stop and wait for the capture thread (GIL released). Idempotent; safe from the
        callback. An error that ended the capture is logged to logger "pixelflux"."""
    def request_idr(self) -> None:
        """Send every stripe of the next frame again, H.264 stripes as IDR frames."""
    @property
    def is_running(self) -> bool:
        """Whether a capture is running (ours)."""
    @property
    def error(self) -> Optional[str]:
        """Why the last capture ended, if by an error (ours)."""
    @property
    def stream_format(self) -> Optional[Dict[str, Any]]:
        """What the current (or last) capture encodes: width and height after H.264's
        rounding down to even sizes, codec ("jpeg" or "h264"), stripe_height, h264_fullcolor;
        None before the first start (ours)."""

def _stop_all() -> None: ...
