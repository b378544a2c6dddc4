"""CaptureSettings: 1.2.2's fields and defaults, typed properties, and a clear error naming the
field for every wrong type and every out-of-range value."""

import copy
import os
import pathlib

import pytest

import pixelflux
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

DEFAULTS = {
    "capture_width": 1920,
    "capture_height": 1080,
    "capture_x": 0,
    "capture_y": 0,
    "target_fps": 60.0,
    "capture_cursor": False,
    "output_mode": 0,
    "jpeg_quality": 85,
    "paint_over_jpeg_quality": 95,
    "use_paint_over_quality": False,
    "paint_over_trigger_frames": 10,
    "damage_block_threshold": 15,
    "damage_block_duration": 30,
    "h264_crf": 25,
    "h264_fullcolor": False,
    "h264_fullframe": False,
    "watermark_path": None,
    "watermark_location_enum": 0,
    "vaapi_render_node_index": -1,
    # ours
    "stripe_height": 0,
    "display": None,
    "scene": None,
    "jpeg_subsampling": "auto",
}


def test_defaults_are_those_of_1_2_2():
    s = CaptureSettings()
    for field, value in DEFAULTS.items():
        got = getattr(s, field)
        assert got == value and type(got) is type(value), (field, got)


def test_readme_settings_block_is_accepted(tmp_path):
    # The "Capture Settings" section of the 1.2.2 README, assignment by assignment.
    s = CaptureSettings()
    s.capture_width = 1920
    s.capture_height = 1080
    s.capture_x = 0
    s.capture_y = 0
    s.target_fps = 60.0
    s.capture_cursor = True
    s.output_mode = 1
    s.jpeg_quality = 75
    s.paint_over_jpeg_quality = 90
    s.h264_crf = 23
    s.h264_fullcolor = False
    s.h264_fullframe = False
    s.use_paint_over_quality = True
    s.paint_over_trigger_frames = 15
    s.damage_block_threshold = 10
    s.damage_block_duration = 30
    s.watermark_path = b"/path/to/your/watermark.png"
    s.watermark_location_enum = 4
    assert (s.capture_cursor, s.output_mode, s.jpeg_quality, s.h264_crf) == (True, 1, 75, 23)
    assert s.watermark_path == "/path/to/your/watermark.png"
    assert s.watermark_location_enum == 4


@pytest.mark.parametrize("value", ["/tmp/w.png", b"/tmp/w.png", pathlib.Path("/tmp/w.png")])
def test_watermark_path_takes_str_bytes_and_pathlike(value):
    s = CaptureSettings()
    s.watermark_path = value
    assert s.watermark_path == "/tmp/w.png"
    s.watermark_path = None
    assert s.watermark_path is None
    s.watermark_path = ""  # 1.2.2's "no watermark"
    assert s.watermark_path is None


def test_undecodable_watermark_path_round_trips():
    s = CaptureSettings()
    s.watermark_path = b"/tmp/\xff.png"
    assert os.fsencode(s.watermark_path) == b"/tmp/\xff.png"


def test_accepted_edge_values():
    s = CaptureSettings()
    for field, value in [
        ("capture_width", 1), ("capture_width", 16384), ("capture_x", 5000),
        ("target_fps", 1000), ("target_fps", 0.5), ("jpeg_quality", 0), ("jpeg_quality", 100),
        ("h264_crf", 0), ("h264_crf", 51), ("output_mode", 0), ("output_mode", 1),
        ("watermark_location_enum", 6), ("vaapi_render_node_index", 3),
        ("paint_over_trigger_frames", 1), ("damage_block_threshold", 0),
        ("capture_cursor", 1), ("h264_fullcolor", True), ("stripe_height", 16),
        ("display", ":7"), ("scene", "full"), ("scene", "desktop"),
        ("jpeg_subsampling", "444"), ("jpeg_subsampling", "420"), ("jpeg_subsampling", "auto"),
    ]:
        setattr(s, field, value)
        assert getattr(s, field) == value, field
    assert isinstance(s.target_fps, float)
    assert s.capture_cursor is True


INT_FIELDS = ["capture_width", "capture_height", "capture_x", "capture_y", "output_mode",
              "jpeg_quality", "paint_over_jpeg_quality", "paint_over_trigger_frames",
              "damage_block_threshold", "damage_block_duration", "h264_crf",
              "watermark_location_enum", "vaapi_render_node_index", "stripe_height"]
BOOL_FIELDS = ["capture_cursor", "use_paint_over_quality", "h264_fullcolor", "h264_fullframe"]

TYPE_ERRORS = (
    [(f, v) for f in INT_FIELDS for v in ("10", 1.5, None, True, [1])]
    + [(f, v) for f in BOOL_FIELDS for v in ("yes", None, 1.0)]
    + [("target_fps", v) for v in ("60", None, True)]
    + [("watermark_path", v) for v in (42, 1.5, ["/tmp/w.png"])]
    + [("display", v) for v in (1, b":1")]
    + [("scene", v) for v in (1, b"full")]
    + [("jpeg_subsampling", v) for v in (444, None, b"444")]
)


@pytest.mark.parametrize("field,value", TYPE_ERRORS)
def test_wrong_type_raises_type_error_naming_the_field(field, value):
    s = CaptureSettings()
    before = getattr(s, field)
    with pytest.raises(TypeError, match=field):
        setattr(s, field, value)
    assert getattr(s, field) == before


VALUE_ERRORS = [
    ("capture_width", 0), ("capture_width", 16385), ("capture_width", -1),
    ("capture_height", 0), ("capture_height", 20000),
    ("capture_x", -1), ("capture_y", -5), ("capture_x", 2**40), ("capture_y", 2**70),
    ("target_fps", 0), ("target_fps", -30.0), ("target_fps", 1000.5),
    ("target_fps", float("nan")), ("target_fps", float("inf")), ("target_fps", 1e-20),
    ("output_mode", 2), ("output_mode", -1),
    ("jpeg_quality", 101), ("jpeg_quality", -1),
    ("paint_over_jpeg_quality", 101), ("paint_over_jpeg_quality", -3),
    ("paint_over_trigger_frames", 0), ("paint_over_trigger_frames", 2**32),
    ("damage_block_threshold", -1), ("damage_block_duration", -1),
    ("h264_crf", 52), ("h264_crf", -1),
    ("watermark_location_enum", 7), ("watermark_location_enum", -1),
    ("vaapi_render_node_index", 2**31),
    ("capture_cursor", 2), ("h264_fullframe", -1), ("use_paint_over_quality", 2**70),
    ("stripe_height", 15), ("stripe_height", 17), ("stripe_height", 2),
    ("scene", "nope"),
    ("jpeg_subsampling", "422"),
    ("watermark_path", "/tmp/a\0b.png"),
]


@pytest.mark.parametrize("field,value", VALUE_ERRORS)
def test_out_of_range_raises_value_error_naming_the_field(field, value):
    s = CaptureSettings()
    before = getattr(s, field)
    with pytest.raises(ValueError, match=field):
        setattr(s, field, value)
    assert getattr(s, field) == before


def test_display_numbers_out_of_range_are_refused_naming_the_range():
    s = CaptureSettings()
    with pytest.raises(ValueError, match="0 to 59535"):
        s.display = ":60000"
    assert s.display is None
    s.display = ":59535"
    assert s.display == ":59535"


def test_unknown_attribute_is_an_error():
    s = CaptureSettings()
    with pytest.raises(AttributeError):
        s.capture_widht = 100  # a typo must not pass silently
    with pytest.raises(AttributeError):
        del s.capture_width


def test_keyword_construction_copy_and_repr():
    s = CaptureSettings(capture_width=320, output_mode=1, display=":3")
    assert (s.capture_width, s.output_mode, s.display) == (320, 1, ":3")
    assert "capture_width=320" in repr(s)
    c = copy.copy(s)
    c.capture_width = 640
    assert s.capture_width == 320 and c == CaptureSettings(capture_width=640, output_mode=1,
                                                           display=":3")
    assert copy.deepcopy(s) == s
    with pytest.raises(TypeError, match="nope"):
        CaptureSettings(nope=1)
    with pytest.raises(ValueError, match="capture_width"):
        CaptureSettings(capture_width=0)


def test_start_capture_validates_the_whole_set():
    # Each field is fine on its own; together they are not (no watermark file named).
    s = CaptureSettings(capture_width=64, capture_height=64, scene="static")
    s.watermark_location_enum = 4
    cap = ScreenCapture()
    with pytest.raises(ValueError, match="watermark_path"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert not cap.is_running
    cap.stop_capture()


def test_lossless_h264_in_4_2_0_is_refused_before_starting():
    # CRF 0 is lossless, which x264 has only in High 4:4:4 (h264_fullcolor).
    s = CaptureSettings(capture_width=64, capture_height=64, scene="static")
    s.output_mode = 1
    s.h264_crf = 0
    cap = ScreenCapture()
    with pytest.raises(ValueError, match="h264_crf"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert not cap.is_running
    s.h264_fullcolor = True
    cap.start_capture(s, StripeCallback(lambda r, u: None))
    cap.stop_capture()


def test_module_constants():
    assert (pixelflux.OUTPUT_MODE_JPEG, pixelflux.OUTPUT_MODE_H264) == (0, 1)
    assert (pixelflux.STRIPE_TYPE_JPEG, pixelflux.STRIPE_TYPE_H264) == (1, 2)
    assert [pixelflux.WATERMARK_NONE, pixelflux.WATERMARK_TOP_LEFT,
            pixelflux.WATERMARK_TOP_RIGHT, pixelflux.WATERMARK_BOTTOM_LEFT,
            pixelflux.WATERMARK_BOTTOM_RIGHT, pixelflux.WATERMARK_MIDDLE,
            pixelflux.WATERMARK_ANIMATED] == list(range(7))
    # `from pixelflux import *` binds every name of __all__ (an unbound one raises), and the
    # names of 1.2.2 are among them with 1.2.2's values.
    star = {}
    exec("from pixelflux import *", star)
    assert {n for n in star if n != "__builtins__"} == set(pixelflux.__all__)
    constants = {"OUTPUT_MODE_JPEG": 0, "OUTPUT_MODE_H264": 1, "STRIPE_TYPE_JPEG": 1,
                 "STRIPE_TYPE_H264": 2, "WATERMARK_NONE": 0, "WATERMARK_TOP_LEFT": 1,
                 "WATERMARK_TOP_RIGHT": 2, "WATERMARK_BOTTOM_LEFT": 3,
                 "WATERMARK_BOTTOM_RIGHT": 4, "WATERMARK_MIDDLE": 5, "WATERMARK_ANIMATED": 6}
    for name, value in constants.items():
        assert star[name] == value and type(star[name]) is int, name
    for name in ["CaptureSettings", "ScreenCapture", "StripeCallback", "StripeEncodeResult"]:
        assert isinstance(star[name], type) and star[name].__name__ == name, name


def test_stripe_callback_rejects_non_callables():
    with pytest.raises(TypeError):
        StripeCallback(42)
    with pytest.raises(TypeError):
        StripeCallback("print")
    seen = []
    handler = StripeCallback(lambda r, u: seen.append((r, u)))
    handler(1, 2)
    assert seen == [(1, 2)]


def test_start_capture_rejects_wrong_arguments():
    cap = ScreenCapture()
    with pytest.raises(TypeError):
        cap.start_capture("settings", StripeCallback(print))
    with pytest.raises(TypeError, match="callable"):
        cap.start_capture(CaptureSettings(scene="static"), 42)
    assert not cap.is_running


def test_docstrings():
    assert "default 1920" in CaptureSettings.capture_width.__doc__
    assert "H.264" in CaptureSettings.output_mode.__doc__
    for cls in (CaptureSettings, ScreenCapture, StripeCallback, pixelflux.StripeEncodeResult):
        assert cls.__doc__, cls
    assert ScreenCapture.stop_capture.__doc__ and ScreenCapture.start_capture.__doc__
