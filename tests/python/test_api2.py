"""The pixelflux 2.x API beside 1.2.2's: `start_capture(callback, settings)` with one
`StripeFrame` per stripe in 2.2.1's wire layout, the 2.x setting names, live controls,
stream_info/stream_stats, and the Wayland answers without a compositor.

Facts about 2.2.1 (header layouts, dict keys, defaults) were read from its PyPI wheel's output
on an X11 capture; see docs/python.md."""

import gc
import logging
import struct
import threading
import time
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

import pixelflux
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback, StripeFrame

from conftest import decode_h264, pattern_image, psnr, wait_until

JPEG2_HEADER = 6
H264_2_HEADER = 12

# 2.2.1's `stream_info()` keys on X11 and `stream_stats()` keys (read from its wheel).
STREAM_INFO_KEYS = {
    "backend", "capture", "zero_copy", "zero_copy_available", "capture_reason", "encoder",
    "hardware", "encoder_reason", "codec", "fullcolor", "bit_depth", "full_range", "striped",
    "gpu", "driver", "encode_node",
}
STREAM_STATS_KEYS = {
    "frames", "bytes", "encode_ns", "pipeline_ns", "pipeline_min_ns", "pipeline_max_ns",
    "frame_max_bytes",
}

# Every name Selkies 2.1.0 assigns, with a value it may assign and the value read back.
SELKIES_NAMES = [
    ("capture_width", 320, 320), ("capture_height", 200, 200), ("capture_x", 4, 4),
    ("capture_y", 6, 6), ("target_fps", 30.0, 30.0), ("codec", "h264", "h264"),
    ("use_cpu", True, True), ("cpu_encode_threading", False, False), ("video_crf", 30, 30),
    ("video_paintover_crf", 12, 12), ("video_paintover_burst_frames", 3, 3),
    ("video_fullcolor", True, True), ("video_fullframe", True, True),
    ("video_streaming_mode", True, True), ("video_cbr_mode", True, True),
    ("video_bitrate_kbps", 8000, 8000), ("keyframe_interval_s", 2.5, 2.5),
    ("video_min_qp", 10, 10), ("video_max_qp", 40, 40), ("video_bit_depth", 8, 8),
    ("jpeg_quality", 70, 70), ("paint_over_jpeg_quality", 90, 90),
    ("use_paint_over_quality", True, True), ("paint_over_trigger_frames", 5, 5),
    ("damage_block_threshold", 9, 9), ("damage_block_duration", 11, 11),
    ("capture_cursor", True, True), ("cursor_size", 32, 32), ("cursor_size_cap", 64, 64),
    ("scale", 1.5, 1.5), ("display_id", 0, 0), ("omit_stripe_headers", True, True),
    ("watermark_path", "/tmp/w.png", "/tmp/w.png"), ("watermark_location_enum", 2, 2),
    ("acknowledge_references", True, True), ("auto_adjust_screen_capture_size", True, True),
    ("recording_socket", "/tmp/rec.sock", "/tmp/rec.sock"), ("auto_gpu", "true", "true"),
    ("encode_node_index", -1, -1), ("encode_node_path", "/dev/dri/renderD128",
                                    "/dev/dri/renderD128"),
    ("render_node_path", "/dev/dri/renderD128", "/dev/dri/renderD128"),
    ("use_wayland", False, False), ("wayland_host_display", "wayland-9", "wayland-9"),
    ("debug_logging", True, True),
]

# 2.2.1's defaults for the names 1.2.2 does not have.
V2_DEFAULTS = {
    "codec": "jpeg", "use_cpu": False, "cpu_encode_threading": True, "video_crf": 25,
    "video_paintover_crf": 18, "video_paintover_burst_frames": 5, "video_fullcolor": False,
    "video_fullframe": False, "video_streaming_mode": False, "video_cbr_mode": False,
    "video_bitrate_kbps": 4000, "keyframe_interval_s": 0.0, "video_min_qp": 0,
    "video_max_qp": 0, "video_bit_depth": 8, "cursor_size": -1, "cursor_size_cap": 128,
    "scale": 1.0, "display_id": 0, "omit_stripe_headers": False,
    "acknowledge_references": False, "auto_adjust_screen_capture_size": False,
    "recording_socket": None, "auto_gpu": None, "encode_node_index": -2,
    "encode_node_path": None, "render_node_path": None, "use_wayland": None,
    "wayland_host_display": None, "debug_logging": False, "video_reference_frames": 0,
    "video_vbv_multiplier": 0.0,
}


class Frames:
    """A 2.x callback that keeps every frame object, thread-safely."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, frame):
        with self.cond:
            self.items.append(frame)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.items), timeout)

    def snapshot(self):
        with self.cond:
            return list(self.items)


def v2_settings(**fields):
    s = CaptureSettings()
    s.use_cpu = True
    for name, value in fields.items():
        setattr(s, name, value)
    return s


@pytest.fixture
def capture():
    cap = ScreenCapture()
    yield cap
    cap.stop_capture()


# ---- settings ----

@pytest.mark.parametrize("name,value,expected", SELKIES_NAMES)
def test_every_name_selkies_assigns_is_accepted_and_read_back(name, value, expected):
    s = CaptureSettings()
    setattr(s, name, value)
    assert getattr(s, name) == expected


@pytest.mark.parametrize("name", sorted(V2_DEFAULTS))
def test_2x_defaults_are_upstreams(name):
    assert getattr(CaptureSettings(), name) == V2_DEFAULTS[name]


@pytest.mark.parametrize("new,old,value", [
    ("video_crf", "h264_crf", 31), ("video_fullcolor", "h264_fullcolor", True),
    ("video_fullframe", "h264_fullframe", True),
])
def test_both_naming_schemes_are_one_value(new, old, value):
    s = CaptureSettings()
    setattr(s, new, value)
    assert getattr(s, old) == value
    setattr(s, old, type(value)(0) if not isinstance(value, bool) else False)
    assert getattr(s, new) == getattr(s, old)


def test_codec_and_output_mode_are_one_value():
    s = CaptureSettings()
    s.codec = "h264"
    assert s.output_mode == 1
    s.output_mode = 0
    assert s.codec == "jpeg"
    with pytest.raises(ValueError, match="vp9"):
        s.codec = "vp9"
    with pytest.raises(TypeError, match="codec"):
        s.codec = 1
    assert s.codec == "jpeg"


def test_2x_names_are_checked():
    s = CaptureSettings()
    with pytest.raises(ValueError, match="video_crf"):
        s.video_crf = 52
    with pytest.raises(ValueError, match="video_bit_depth"):
        s.video_bit_depth = 9
    with pytest.raises(TypeError, match="use_cpu"):
        s.use_cpu = "yes"
    with pytest.raises(TypeError, match="scale"):
        s.scale = "big"
    assert s.video_crf == 25 and s.video_bit_depth == 8 and s.use_cpu is False


def test_unknown_names_raise_attribute_error():
    s = CaptureSettings()
    with pytest.raises(AttributeError, match="video_crff"):
        s.video_crff = 20
    with pytest.raises(AttributeError):
        _ = s.video_crff
    with pytest.raises(AttributeError):
        s.omit_audio_header = False  # pcmflux's setting, not ours


def test_keyword_construction_takes_2x_names():
    s = CaptureSettings(video_crf=20, codec="h264", use_cpu=True)
    assert (s.h264_crf, s.output_mode, s.use_cpu) == (20, 1, True)
    assert s == CaptureSettings(h264_crf=20, output_mode=1, use_cpu=True)
    assert s != CaptureSettings(h264_crf=20, output_mode=1)


# ---- start_capture in both shapes ----

def test_1x_and_2x_shapes_in_one_module(capture):
    old = []
    s = CaptureSettings(capture_width=128, capture_height=64, scene="full")
    capture.start_capture(s, StripeCallback(lambda r, u: old.append(r)))
    assert wait_until(lambda: len(old) > 0)
    capture.stop_capture()
    assert isinstance(old[0], pixelflux.StripeEncodeResult)
    assert old[0].type == 1 and old[0].header_size == 4

    frames = Frames()
    s.use_cpu = True
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len(items) > 0)
    capture.stop_capture()
    f = frames.snapshot()[0]
    assert isinstance(f, StripeFrame)
    assert f.data_type == 0 and bytes(f)[:2] == b"\x03\x00"


def test_2x_shape_rejects_user_data_and_bad_arguments(capture):
    s = v2_settings(scene="static", capture_width=64, capture_height=64)
    with pytest.raises(TypeError, match="user_data"):
        capture.start_capture(print, s, 1)
    with pytest.raises(TypeError):
        capture.start_capture(42, s)
    with pytest.raises(TypeError):
        capture.start_capture(print, "settings")
    assert not capture.is_capturing


def test_jpeg_frames_have_2_2_1_headers_and_outlive_the_callback(capture):
    frames = Frames()
    s = v2_settings(capture_width=256, capture_height=192, scene="typing", target_fps=100.0)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len({f.frame_id for f in items}) >= 5)
    capture.stop_capture()
    items = frames.snapshot()
    views = [memoryview(f) for f in items]
    del items
    frames.items.clear()
    gc.collect()
    ids = []
    for view in views:
        data = view.tobytes()
        tag, zero, fid, y = struct.unpack(">BBHH", data[:JPEG2_HEADER])
        assert (tag, zero) == (3, 0)
        img = Image.open(BytesIO(data[JPEG2_HEADER:]))
        img.load()
        assert img.width == 256
        ids.append(fid)
    assert ids == sorted(ids)


def test_jpeg_frame_attributes(capture):
    frames = Frames()
    capture.start_capture(frames, v2_settings(capture_width=128, capture_height=128,
                                              scene="full"))
    assert frames.wait_for(lambda items: len(items) >= 2)
    capture.stop_capture()
    f = frames.snapshot()[0]
    data = bytes(f)
    assert len(f) == len(data)
    _, _, fid, y = struct.unpack(">BBHH", data[:6])
    assert (fid, y) == (f.frame_id % 65536, f.stripe_y_start)
    assert f.stripe_height > 0 and f.reference_frame_id == -2
    assert f.capture_ns > 0 and f.encode_end_ns >= f.capture_ns
    assert f.capture_ns <= time.monotonic_ns()
    assert "StripeFrame" in repr(f)


def test_h264_frames_have_2_2_1_headers_and_references(capture):
    frames = Frames()
    s = v2_settings(capture_width=256, capture_height=256, codec="h264", scene="full",
                    target_fps=100.0)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len({f.frame_id for f in items}) >= 6)
    capture.stop_capture()
    last_per_stripe = {}
    saw_delta = False
    for f in frames.snapshot():
        data = bytes(f)
        tag, kind, fid, y, w, h, ref = struct.unpack(">BBHHHHH", data[:H264_2_HEADER])
        assert tag == 4 and f.data_type == 1
        assert (fid, y, w, h) == (f.frame_id % 65536, f.stripe_y_start, 256, f.stripe_height)
        assert data[H264_2_HEADER:H264_2_HEADER + 4] == b"\x00\x00\x00\x01"
        if kind == 0x11:
            assert f.reference_frame_id == -1 and ref == fid
        else:
            assert kind == 0x10
            saw_delta = True
            assert f.reference_frame_id == last_per_stripe[y]
            assert ref == f.reference_frame_id % 65536
        last_per_stripe[y] = f.frame_id
    assert saw_delta


def test_omit_stripe_headers_gives_bare_payloads(capture):
    frames = Frames()
    s = v2_settings(capture_width=128, capture_height=128, codec="h264", scene="full",
                    omit_stripe_headers=True, video_fullframe=True)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len(items) >= 3)
    capture.stop_capture()
    items = frames.snapshot()
    for f in items:
        assert bytes(f)[:4] == b"\x00\x00\x00\x01"
    decoded = decode_h264(b"".join(bytes(f) for f in items), 128, 128)
    assert len(decoded) == len(items)


def test_h264_frames_decode_to_the_screen(capture, xvfb):
    picture = pattern_image(640, 480, seed=3)
    xvfb.draw(picture)
    frames = Frames()
    s = v2_settings(capture_width=640, capture_height=480, codec="h264", video_crf=18,
                    display=xvfb.display)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: sum(f.stripe_height for f in items) >= 480)
    capture.stop_capture()
    canvas = Image.new("RGB", (640, 480))
    for f in frames.snapshot():
        data = bytes(f)
        img = decode_h264(data[H264_2_HEADER:], 640, f.stripe_height)[0]
        canvas.paste(img, (0, f.stripe_y_start))
    assert psnr(canvas, picture) > 30


# ---- hardware and Wayland settings ----

def test_hardware_settings_fall_back_with_one_warning(capture, caplog):
    import pixelflux._pixelflux  # noqa: F401  (the warning is once per process)
    frames = Frames()
    s = v2_settings(capture_width=64, capture_height=64, scene="static", auto_gpu="true",
                    use_wayland=True)
    s.use_cpu = False
    with caplog.at_level(logging.WARNING, logger="pixelflux"):
        capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len(items) > 0)
    capture.stop_capture()
    capture.start_capture(frames, s)
    capture.stop_capture()
    warnings = [r for r in caplog.records if "software" in r.getMessage()]
    # Earlier tests may have used up the process's one warning; never more than one.
    assert len(warnings) <= 1


@pytest.mark.parametrize("field,value", [
    ("encode_node_path", "/dev/dri/renderD999"), ("render_node_path", "/nonexistent/node"),
    ("encode_node_index", 77),
])
def test_a_named_device_that_does_not_exist_is_an_error(capture, field, value):
    s = v2_settings(capture_width=64, capture_height=64, scene="static")
    setattr(s, field, value)
    with pytest.raises(FileNotFoundError, match=field):
        capture.start_capture(Frames(), s)
    assert not capture.is_capturing


def test_wayland_methods_answer_as_upstream_without_a_compositor(capture):
    assert capture.create_output(1, 100, 100) is False
    assert capture.destroy_output(1) is False
    assert capture.reposition_output(0, 1, 1) is False
    assert capture.resize_output(0, 10, 10) is False
    assert capture.output_capacity() == -1
    assert capture.get_realized_geometry() is None
    assert capture.list_outputs() == []
    assert pixelflux.get_wayland_display_name() is None
    assert pixelflux.ensure_wayland_display() == ""
    report = pixelflux.probe_wayland_gpu()
    assert set(report) == {"node", "accelerated", "gpu", "renderer", "error"}
    assert report["accelerated"] is False


def test_encoder_tables():
    assert pixelflux.SOFTWARE_ENCODERS == {"h264": "x264"}
    assert pixelflux.SOFTWARE_FORMATS == {"h264": ["420-8", "444-8"]}
    assert pixelflux.SOFTWARE_FULLCOLOR == ["h264"]
    assert pixelflux.hardware_encoders(0, "") == {}
    assert pixelflux.hardware_formats() == {}
    assert pixelflux.hardware_fullcolor() == []


def test_stripe_frame_from_buffer():
    f = pixelflux.stripe_frame_from_buffer(b"abc", 1, 2, 3, 4)
    assert (bytes(f), f.data_type, f.stripe_y_start, f.stripe_height, f.frame_id) == (
        b"abc", 1, 2, 3, 4)
    assert f.reference_frame_id == -2 and f.capture_ns == 0
    assert bytes(StripeFrame(bytearray(b"xy"))) == b"xy"


# ---- live control ----

def test_status_methods_before_during_and_after(capture):
    assert capture.stream_info() is None and capture.stream_stats() is None
    assert not capture.is_capturing and capture.active_codec() is None
    assert capture.capture_state() == ("idle", None)
    frames = Frames()
    capture.start_capture(frames, v2_settings(capture_width=128, capture_height=128,
                                              scene="full", video_fullframe=True,
                                              codec="h264"))
    assert frames.wait_for(lambda items: len(items) >= 3)
    assert capture.is_capturing and capture.active_codec() == "h264"
    assert capture.capture_state() == ("running", None)
    info = capture.stream_info()
    assert set(info) == STREAM_INFO_KEYS
    assert (info["backend"], info["codec"], info["encoder"], info["striped"]) == (
        "x11", "h264", "x264", False)
    stats = capture.stream_stats()
    assert set(stats) == STREAM_STATS_KEYS
    assert stats["frames"] >= 3 and stats["bytes"] >= sum(len(f) for f in frames.snapshot()[:3])
    assert 0 < stats["pipeline_min_ns"] <= stats["pipeline_max_ns"] <= stats["pipeline_ns"]
    assert stats["frame_max_bytes"] > 0 and stats["encode_ns"] > 0
    capture.stop_capture()
    assert capture.stream_info() is None and capture.stream_stats() is None
    assert not capture.is_capturing


def test_control_methods_without_a_capture_do_nothing(capture):
    capture.update_framerate(10)
    capture.request_idr_frame()
    capture.update_tunables(CaptureSettings())
    capture.update_video_bitrate(1000)
    capture.update_link_rate(1000)
    capture.update_capture_region(0, 0, 64, 64)
    assert not capture.is_capturing


def test_update_framerate_changes_the_rate_live(capture):
    frames = Frames()
    capture.start_capture(frames, v2_settings(capture_width=64, capture_height=64,
                                              scene="full", target_fps=200.0))
    assert frames.wait_for(lambda items: len(items) >= 5)
    capture.update_framerate(5)
    time.sleep(0.3)
    before = len({f.frame_id for f in frames.snapshot()})
    time.sleep(1.0)
    after = len({f.frame_id for f in frames.snapshot()})
    # At 5 fps one second holds about 5 frames; at 200 fps it would hold hundreds.
    assert 1 <= after - before <= 12
    with pytest.raises(ValueError, match="target_fps"):
        capture.update_framerate(0)
    assert capture.is_capturing


def test_request_idr_frame_sends_key_frames(capture):
    frames = Frames()
    capture.start_capture(frames, v2_settings(capture_width=128, capture_height=128,
                                              scene="static", codec="h264"))
    assert frames.wait_for(lambda items: len(items) >= 1)
    first = len(frames.snapshot())
    capture.request_idr_frame()
    assert frames.wait_for(lambda items: len(items) > first)
    new = frames.snapshot()[first:]
    assert all(bytes(f)[1] == 0x11 and f.reference_frame_id == -1 for f in new)


def test_update_tunables_applies_quality_live(capture):
    frames = Frames()
    s = v2_settings(capture_width=128, capture_height=128, scene="static", jpeg_quality=30)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len(items) >= 1)
    small = sum(len(f) for f in frames.snapshot())
    count = len(frames.snapshot())
    s.jpeg_quality = 95
    s.video_crf = 40  # of the other codec: ignored
    capture.update_tunables(s)
    # A new quality re-sends every stripe once at it.
    assert frames.wait_for(lambda items: len(items) >= 2 * count)
    large = sum(len(f) for f in frames.snapshot()[count:2 * count])
    assert large > small
    s.jpeg_quality = 101 if False else 95
    capture.update_tunables(s)  # unchanged values: nothing to do
    assert capture.is_capturing


def test_update_tunables_applies_crf_live(capture):
    frames = Frames()
    s = v2_settings(capture_width=128, capture_height=128, scene="static", codec="h264",
                    video_crf=45)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len(items) >= 1)
    count = len(frames.snapshot())
    coarse = sum(len(f) for f in frames.snapshot())
    s.video_crf = 5
    capture.update_tunables(s)
    assert frames.wait_for(lambda items: len(items) >= 2 * count)
    fine = frames.snapshot()[count:2 * count]
    assert all(bytes(f)[1] == 0x11 for f in fine)
    assert sum(len(f) for f in fine) > coarse


def _kbps(frames, fps):
    """Delivered kbit/s of `frames` (2.x StripeFrames, headers included) over the stream time
    of the frame ids they span (a frame is 1/fps s, so a frame the capture skipped on a busy
    machine does not count as time the encoder had)."""
    ids = {f.frame_id for f in frames}
    return sum(len(f) for f in frames) * 8 / (len(ids) / fps) / 1000


def test_rate_control_settings_reach_the_core():
    s = CaptureSettings(video_cbr_mode=True, video_bitrate_kbps=2500, video_min_qp=12,
                        video_max_qp=40, keyframe_interval_s=1.5, video_vbv_multiplier=2.0)
    assert (s.video_cbr_mode, s.video_bitrate_kbps, s.video_min_qp, s.video_max_qp,
            s.keyframe_interval_s, s.video_vbv_multiplier) == (True, 2500, 12, 40, 1.5, 2.0)
    assert s == CaptureSettings(**{n: getattr(s, n) for n in (
        "video_cbr_mode", "video_bitrate_kbps", "video_min_qp", "video_max_qp",
        "keyframe_interval_s", "video_vbv_multiplier")})
    for name, bad in [("video_min_qp", 52), ("video_max_qp", -1), ("video_bitrate_kbps", -5),
                      ("video_bitrate_kbps", 1_000_001), ("keyframe_interval_s", -1.0),
                      ("keyframe_interval_s", float("nan")), ("video_vbv_multiplier", -2.0)]:
        with pytest.raises(ValueError, match=name):
            setattr(s, name, bad)
    with pytest.raises(TypeError, match="video_min_qp"):
        s.video_min_qp = 1.5
    with pytest.raises(TypeError, match="video_cbr_mode"):
        s.video_cbr_mode = "yes"


@pytest.mark.parametrize("fields, name", [
    ({"video_min_qp": 30, "video_max_qp": 20}, "video_max_qp"),
    ({"video_cbr_mode": True, "video_bitrate_kbps": 0}, "video_bitrate_kbps"),
])
def test_rate_control_rules_between_fields_are_checked_at_start(capture, fields, name):
    s = v2_settings(capture_width=64, capture_height=64, scene="full", codec="h264", **fields)
    with pytest.raises(ValueError, match=name):
        capture.start_capture(Frames(), s)
    assert not capture.is_capturing


def test_cbr_meets_the_bitrate_and_follows_update_video_bitrate(capture):
    # Full motion at 30 fps: after a second to settle, the delivered rate (header bytes
    # included, as a client receives them) is within ±20 % of the target; a new target from
    # update_video_bitrate is met within a second, with no key frame.
    fps = 30.0
    frames = Frames()
    s = v2_settings(capture_width=640, capture_height=384, scene="full", codec="h264",
                    target_fps=fps, video_cbr_mode=True, video_bitrate_kbps=3000)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: len({f.frame_id for f in items}) >= 4 * fps, 60)
    settled = [f for f in frames.snapshot() if f.frame_id >= fps]
    got = _kbps(settled, fps)
    assert 0.8 * 3000 <= got <= 1.2 * 3000, got
    capture.update_video_bitrate(1000)
    start = max(f.frame_id for f in frames.snapshot()) + 2
    assert frames.wait_for(lambda items: max((f.frame_id for f in items), default=-1) >= start + fps, 60)
    after = [f for f in frames.snapshot() if start <= f.frame_id < start + fps]
    got = _kbps(after, fps)
    assert 0.8 * 1000 <= got <= 1.2 * 1000, got
    assert all(bytes(f)[1] == 0x10 for f in after), "a bitrate change needs no key frame"
    assert capture.rate_hints()["video_bitrate_kbps"] == 1000


def test_keyframe_interval_s_sends_key_frames_on_schedule(capture):
    frames = Frames()
    s = v2_settings(capture_width=128, capture_height=128, scene="full", codec="h264",
                    target_fps=30.0, keyframe_interval_s=0.5)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: max((f.frame_id for f in items), default=-1) >= 40, 60)
    capture.stop_capture()
    for f in frames.snapshot():
        assert (bytes(f)[1] == 0x11) == (f.frame_id % 15 == 0), f.frame_id


def test_rate_hints_are_stored(capture):
    capture.update_video_bitrate(2500)
    capture.update_link_rate(9000)
    capture.update_vbv_multiplier(1.5)
    assert capture.rate_hints() == {"video_bitrate_kbps": 2500, "link_rate_kbps": 9000,
                                    "vbv_multiplier": 1.5}
    with pytest.raises(ValueError, match="kbps"):
        capture.update_video_bitrate(-1)
    # update_vbv_multiplier takes what the video_vbv_multiplier field takes; a refused value
    # is not stored.
    for bad in (-3, -0.5, float("nan"), float("inf"), 1000.5):
        with pytest.raises(ValueError, match="video_vbv_multiplier"):
            capture.update_vbv_multiplier(bad)
    assert capture.rate_hints()["vbv_multiplier"] == 1.5
    capture.update_vbv_multiplier(0)
    assert capture.rate_hints()["vbv_multiplier"] == 0.0


def test_update_framerate_takes_target_fps_range_without_a_capture(capture):
    # docs/python.md: 0.01..=1000, the core's target_fps range (not (0, 1000]).
    for fps in (0.01, 1000, 30):
        capture.update_framerate(fps)
    for bad in (0, 0.009, -1, 1000.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="target_fps"):
            capture.update_framerate(bad)
    assert not capture.is_capturing


def test_cursor_callback_is_stored_and_cleared(capture):
    capture.set_cursor_callback(lambda *a: None)
    capture.clear_cursor_callback()
    capture.set_cursor_callback(None)


def capture_thread_ids():
    """Thread ids of this process's capture threads (`pixelflux-capture`)."""
    ids = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip().startswith("pixelflux-captu"):
                ids.add(task.name)
        except OSError:
            pass  # the thread exited while we looked
    return ids


def test_update_capture_region_resizes_with_key_frames_and_increasing_ids(capture, xvfb):
    picture = pattern_image(640, 480, seed=5)
    xvfb.draw(picture)
    frames = Frames()
    s = v2_settings(capture_width=320, capture_height=240, codec="h264", video_crf=18,
                    display=xvfb.display)
    capture.start_capture(frames, s)
    assert frames.wait_for(lambda items: sum(f.stripe_height for f in items) >= 240)
    before = frames.snapshot()
    last_id = max(f.frame_id for f in before)
    threads = capture_thread_ids()
    assert len(threads) == 1
    capture.update_capture_region(100, 50, 400, 300)
    assert capture.is_capturing
    assert frames.wait_for(lambda items: sum(f.stripe_height for f in items[len(before):])
                           >= 300)
    after = frames.snapshot()[len(before):]
    canvas = Image.new("RGB", (400, 300))
    for f in after:
        data = bytes(f)
        _, kind, _, y, w, h, _ = struct.unpack(">BBHHHHH", data[:H264_2_HEADER])
        assert w == 400 and f.frame_id > last_id
        if y < 300 and kind == 0x11:
            canvas.paste(decode_h264(data[H264_2_HEADER:], 400, h)[0], (0, y))
    # The first frame after the change is complete: no black, the new region's pixels.
    assert psnr(canvas, picture.crop((100, 50, 500, 350))) > 30
    assert capture.stream_info()["codec"] == "h264"
    # Live: the same capture thread delivered them (no restart).
    assert capture_thread_ids() == threads

    with pytest.raises(ValueError):
        capture.update_capture_region(600, 400, 400, 300)  # off the screen
    assert capture.is_capturing
    # Refused: the capture goes on with the old region.
    assert capture.stream_info() is not None
    # A size <= 0 reaches the root window's edge (2.2.1).
    capture.update_capture_region(40, 0, 0, -1)
    def rows_at_width_600():
        return sum(f.stripe_height for f in frames.snapshot()[len(before) + len(after):]
                   if bytes(f)[6:8] == struct.pack(">H", 600))
    assert wait_until(lambda: rows_at_width_600() >= 480)
    assert capture.is_capturing


class Cursors:
    def __init__(self):
        self.calls = []
        self.cond = threading.Condition()

    def __call__(self, *args):
        with self.cond:
            self.calls.append(args)
            self.cond.notify_all()

    def wait_for(self, n, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.calls) >= n, timeout)


@pytest.mark.parametrize("cap", [128, 8])
def test_cursor_callback_gets_the_x_cursor_as_png_with_hotspot(capture, xvfb, cap):
    cursors = Cursors()
    capture.set_cursor_callback(cursors)
    s = v2_settings(capture_width=320, capture_height=240, display=xvfb.display,
                    cursor_size_cap=cap)
    capture.start_capture(Frames(), s)
    assert cursors.wait_for(1)
    kind, png, hotx, hoty = cursors.calls[0]
    assert kind == "png" and isinstance(png, bytes)
    img = Image.open(BytesIO(png))
    img.load()
    assert img.mode == "RGBA" and max(img.size) <= cap
    assert 0 <= hotx < img.width and 0 <= hoty < img.height
    # Not blank: Xvfb's root cursor has opaque pixels.
    assert img.getchannel("A").getextrema()[1] == 255
    capture.stop_capture()
    n = len(cursors.calls)
    time.sleep(0.2)
    assert len(cursors.calls) == n
    capture.clear_cursor_callback()


def test_update_capture_region_from_the_callback_is_live(capture):
    """A region change from inside the 2.x callback (the capture thread) is queued like any
    other: the capture goes on and the frames after it have the new size."""
    frames = Frames()
    errors = []

    def callback(frame):
        if len(frames.snapshot()) == 0:
            try:
                capture.update_capture_region(0, 0, 96, 80)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        frames(frame)

    capture.start_capture(callback, v2_settings(capture_width=128, capture_height=128,
                                                scene="static"))

    def widths():
        return [Image.open(BytesIO(bytes(f)[6:])).size[0] for f in frames.snapshot()]
    assert frames.wait_for(lambda items: len(items) >= 4)
    assert wait_until(lambda: 96 in widths()), widths()
    assert errors == []
    assert capture.is_capturing
    # The first frame was the old size; every frame after the change is the new one.
    w = widths()
    assert w[0] == 128 and w[-1] == 96 and w == sorted(w, reverse=True)


def test_region_changes_racing_a_stop_leave_nothing_running(capture, xvfb):
    for _ in range(3):
        capture.start_capture(Frames(), v2_settings(capture_width=320, capture_height=240,
                                                    display=xvfb.display))
        threads = [threading.Thread(target=capture.update_capture_region,
                                    args=(8 * i, 8 * i, 200 + 16 * i, 160))
                   for i in range(3)]
        threads.append(threading.Thread(target=capture.stop_capture))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        capture.stop_capture()
        assert not capture.is_capturing

    def capture_threads():
        names = []
        for task in Path("/proc/self/task").iterdir():
            try:
                names.append((task / "comm").read_text().strip())
            except OSError:
                pass  # the thread exited while we looked
        return [n for n in names if n.startswith("pixelflux-captu")]
    assert wait_until(lambda: capture_threads() == [], timeout=5), capture_threads()


def test_same_region_is_not_a_restart(capture):
    frames = Frames()
    capture.start_capture(frames, v2_settings(capture_width=128, capture_height=128,
                                              scene="static", codec="h264"))
    assert frames.wait_for(lambda items: len(items) >= 1)
    n = len(frames.snapshot())
    capture.update_capture_region(0, 0, 128, 128)
    time.sleep(0.3)
    assert len(frames.snapshot()) == n  # no new key frames: nothing changed
