"""Type stubs for the native module behind the `pixelflux` package."""

import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, final, overload

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
    jpeg_subsampling: str
    """JPEG chroma (ours): "auto" (default; 4:4:4 from quality 90 or for stripes with coloured detail, else 4:2:0 two quality steps higher; a stripe with no colour as a one-component grayscale JPEG of the same pixels), "420" or "444" (always three components)."""
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
    """Rows per stripe, even, >= 16; 0 picks per codec: 64 for JPEG; for H.264
    one stripe per core, at least 256 rows (ours; default 0)."""
    display: Optional[str]
    """X display to capture, such as ":1" (ours; default None = $DISPLAY)."""
    scene: Optional[str]
    """Capture a synthetic scene ("static", "typing", "scroll", "video", "full") instead
    of the X display (ours; default None)."""
    # pixelflux 2.x names (2.2.1's defaults). `codec`, `video_crf`, `video_fullcolor` and
    # `video_fullframe` are the same values as `output_mode`, `h264_crf`, `h264_fullcolor`,
    # `h264_fullframe`; the others are stored, and what each does here is in docs/python.md.
    # A name neither API has raises AttributeError.
    codec: str
    """"jpeg" or "h264" (the same value as output_mode; default "jpeg")."""
    video_crf: int
    """The same value as h264_crf."""
    video_fullcolor: bool
    """The same value as h264_fullcolor."""
    video_fullframe: bool
    """The same value as h264_fullframe."""
    use_cpu: bool
    """Software encoding; False (2.x's default) falls back to software with one warning."""
    cpu_encode_threading: bool
    video_paintover_crf: int
    video_paintover_burst_frames: int
    video_streaming_mode: bool
    video_cbr_mode: bool
    """H.264 at a constant bitrate (video_bitrate_kbps) instead of video_crf (default False)."""
    video_bitrate_kbps: int
    """Target of the whole stream in kbit/s under video_cbr_mode, 0..=1000000 (default 4000);
    live through update_video_bitrate and update_tunables."""
    keyframe_interval_s: float
    """H.264: every stripe an IDR every this many seconds of frames, 0..=3600 (0, the default:
    key frames only when asked for)."""
    video_min_qp: int
    """Lowest H.264 quantizer, 0..=51 (0, the default: x264's), CRF and CBR alike."""
    video_max_qp: int
    """Highest H.264 quantizer, 0..=51 (0, the default: x264's), CRF and CBR alike."""
    video_bit_depth: int
    """8 or 10; 10 falls back to 8 with one warning."""
    video_reference_frames: int
    video_vbv_multiplier: float
    """VBV buffer in frames of budget under video_cbr_mode, 0..=1000 (0, the default: 1.5, or
    3 with keyframe_interval_s)."""
    cursor_size: int
    cursor_size_cap: int
    scale: float
    display_id: int
    omit_stripe_headers: bool
    """2.x callbacks get the bare payload, without the stripe header."""
    acknowledge_references: bool
    auto_adjust_screen_capture_size: bool
    recording_socket: Optional[str]
    auto_gpu: Optional[str]
    encode_node_index: int
    """-2 auto, -1 software; a node that does not exist is a FileNotFoundError at start."""
    encode_node_path: Optional[str]
    """A device that does not exist is a FileNotFoundError at start."""
    render_node_path: Optional[str]
    """A device that does not exist is a FileNotFoundError at start."""
    use_wayland: Optional[bool]
    wayland_host_display: Optional[str]
    debug_logging: bool
    def __getattr__(self, name: str) -> Any: ...
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

@final
class StripeFrame:
    """One encoded stripe for a pixelflux 2.x callback, in 2.2.1's wire layout. Owns its
    bytes: memoryview(frame)/bytes(frame) stay valid after the callback returns."""

    def __init__(
        self,
        data: Union[bytes, bytearray, memoryview],
        data_type: int = 0,
        stripe_y_start: int = 0,
        stripe_height: int = 0,
        frame_id: int = 0,
    ) -> None: ...
    @property
    def data_type(self) -> int:
        """0 JPEG, 1 H.264."""
    @property
    def stripe_y_start(self) -> int: ...
    @property
    def stripe_height(self) -> int: ...
    @property
    def frame_id(self) -> int: ...
    @property
    def reference_frame_id(self) -> int:
        """The frame this one predicts from; -1 key frame, -2 not tracked (JPEG)."""
    @property
    def capture_ns(self) -> int:
        """Grab time, time.monotonic_ns() clock."""
    @property
    def encode_start_ns(self) -> int:
        """0: not stamped by this build."""
    @property
    def encode_end_ns(self) -> int: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

def stripe_frame_from_buffer(
    data: Union[bytes, bytearray, memoryview],
    data_type: int = 0,
    stripe_y_start: int = 0,
    stripe_height: int = 0,
    frame_id: int = 0,
) -> StripeFrame: ...

SOFTWARE_ENCODERS: Dict[str, str]
SOFTWARE_FORMATS: Dict[str, List[str]]
SOFTWARE_FULLCOLOR: List[str]

def hardware_encoders(encode_node_index: int = -2, auto_gpu: str = "") -> Dict[str, str]: ...
def hardware_formats(encode_node_index: int = -2, auto_gpu: str = "") -> Dict[str, List[str]]: ...
def hardware_fullcolor(encode_node_index: int = -2, auto_gpu: str = "") -> List[str]: ...
def get_wayland_display_name() -> Optional[str]: ...
def probe_wayland_gpu(render_node: str = "", auto_gpu: str = "") -> Dict[str, Any]: ...
def ensure_wayland_display(
    width: int = 0, height: int = 0, render_node: str = "", auto_gpu: str = "",
    cursor_size: int = 0,
) -> str: ...

_FrameCallback = Callable[[StripeFrame], object]

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
    @overload
    def start_capture(
        self,
        settings: CaptureSettings,
        callback: Union[StripeCallback, _Callback],
        user_data: Any = None,
    ) -> None:
        """pixelflux 1.2.2's shape. Start capturing; RuntimeError if already capturing,
        ValueError for bad settings, ConnectionError if the display cannot be opened."""
    @overload
    def start_capture(self, settings: _FrameCallback, callback: CaptureSettings) -> None:
        """pixelflux 2.x's shape, start_capture(callback, settings): callback(frame) per
        stripe. FileNotFoundError for a named device that does not exist."""
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

    # pixelflux 2.x
    @property
    def is_capturing(self) -> bool: ...
    def request_idr_frame(self) -> None: ...
    def update_framerate(self, fps: float) -> None:
        """Live, between two frames. ValueError outside 0.01..=1000 (target_fps's range)."""
    def update_tunables(self, settings: CaptureSettings) -> None:
        """Live: jpeg_quality, paint_over_jpeg_quality, video_crf, video_bitrate_kbps,
        target_fps."""
    def update_video_bitrate(self, kbps: int) -> None:
        """Live under video_cbr_mode (no key frame; the rate follows within a second); stored
        under CRF. ValueError outside 0..=1000000."""
    def update_vbv_multiplier(self, multiplier: float) -> None:
        """Stored for rate_hints(), not applied live. ValueError unless finite and in
        0..=1000 (video_vbv_multiplier's range)."""
    def update_link_rate(self, kbps: int) -> None: ...
    def rate_hints(self) -> Dict[str, Union[int, float]]:
        """The stored bitrate, link rate and VBV multiplier (ours)."""
    def update_capture_region(self, x: int, y: int, width: int, height: int) -> None:
        """New region, live (the capture and its callback go on); the next frame is complete
        (H.264 IDRs). A size <= 0 reaches the root edge; ValueError for a region off the
        screen."""
    def set_cursor_callback(
        self, callback: Optional[Callable[[str, bytes, int, int], object]]
    ) -> None:
        """While capturing: callback("png", png_bytes, hotspot_x, hotspot_y) with the X cursor
        and each change, from a background thread; None withdraws it."""
    def clear_cursor_callback(self) -> None: ...
    def stream_info(self) -> Optional[Dict[str, Any]]: ...
    def stream_stats(self) -> Optional[Dict[str, int]]: ...
    def active_codec(self) -> Optional[str]: ...
    def capture_state(self, display_id: int = 0) -> Tuple[str, Optional[str]]: ...
    def create_output(
        self, id: int, width: int, height: int, x: int = 0, y: int = 0, scale: float = 1.0
    ) -> bool: ...
    def destroy_output(self, id: int) -> bool: ...
    def reposition_output(self, id: int, x: int, y: int) -> bool: ...
    def resize_output(self, id: int, width: int, height: int, scale: float = 1.0) -> bool: ...
    def output_capacity(self) -> int: ...
    def get_realized_geometry(self, display_id: int = 0) -> Optional[Tuple[int, int, float]]: ...
    def list_outputs(self) -> List[Tuple[int, int, int, int, int, float, bool]]: ...

def _stop_all() -> None: ...
