"""The watermark through the Python API, placed by 1.2.2's `watermark_location_enum` numbers
(1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right, 5 middle, 6 animated: the numbering
of the 1.2.2 README, written out here rather than taken from the module), and the exception
type and message for each broken watermark file (docs/overlays.md)."""

import pytest
from PIL import Image

from conftest import Collector, decode_jpeg_stripe
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

REGION = (16, 32, 320, 240)  # x, y, width, height inside the 640x480 screen
MARK = (32, 16)  # watermark width, height
MARK_RGB = (230, 30, 30)
BACKGROUND = (20, 20, 90)

# Where 1.2.2's numbers put a 32x16 image in a 320x240 region (top-left corner of the image).
PLACES = {1: (0, 0), 2: (288, 0), 3: (0, 224), 4: (288, 224), 5: (144, 112)}


def settings(xvfb, path, location, **extra):
    x, y, w, h = REGION
    s = CaptureSettings(display=xvfb.display, capture_x=x, capture_y=y, capture_width=w,
                        capture_height=h, target_fps=30.0, jpeg_quality=95,
                        paint_over_jpeg_quality=95)
    s.watermark_path = str(path)
    s.watermark_location_enum = location
    for k, v in extra.items():
        setattr(s, k, v)
    return s


@pytest.fixture
def mark(tmp_path):
    path = tmp_path / "mark.png"
    Image.new("RGBA", MARK, MARK_RGB + (255,)).save(path)
    return path


def canvas_at(items, frame_id):
    """The picture a viewer has after every stripe of frames up to `frame_id`."""
    w, h = REGION[2], REGION[3]
    canvas = Image.new("RGB", (w, h))
    for r in items:
        if r.frame_id <= frame_id:
            canvas.paste(decode_jpeg_stripe(r.data), (0, r.stripe_y_start))
    return canvas


def red_box(img):
    """Bounding box (left, top, right, bottom) of the watermark's red in a decoded picture."""
    mask = Image.eval(img.split()[0], lambda v: 255 if v > 125 else 0)
    return mask.getbbox()


def capture(xvfb, s, until):
    got = Collector()
    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(got))
    try:
        assert got.wait_for(until), cap.error
    finally:
        cap.stop_capture()
    return got.items


def frame0_complete(items):
    return sum(r.stripe_height for r in items if r.frame_id == 0) == REGION[3]


@pytest.mark.parametrize("location", sorted(PLACES))
def test_watermark_lands_where_1_2_2_numbering_says(xvfb, mark, location):
    xvfb.fill(BACKGROUND)
    items = capture(xvfb, settings(xvfb, mark, location), frame0_complete)
    x, y = PLACES[location]
    assert red_box(canvas_at(items, 0)) == (x, y, x + MARK[0], y + MARK[1]), location


def test_watermark_6_bounces_from_the_top_left_2_pixels_a_frame(xvfb, mark):
    xvfb.fill(BACKGROUND)
    items = capture(xvfb, settings(xvfb, mark, 6),
                    lambda items: any(r.frame_id >= 30 for r in items))
    assert red_box(canvas_at(items, 0)) == (0, 0) + MARK
    # Frame n has it at (2n, 2n) until it meets an edge (224 = 240 - 16 rows of room).
    seen = 0
    for n in sorted({r.frame_id for r in items if 0 < r.frame_id <= 30}):
        assert red_box(canvas_at(items, n)) == (2 * n, 2 * n, 2 * n + MARK[0], 2 * n + MARK[1]), n
        seen += 1
    assert seen >= 10, "too few frames to follow the watermark"


@pytest.mark.parametrize("content,message", [
    (b"not a png at all", "not a readable PNG"),
    ("truncated", "corrupt PNG"),
    ("too big", "does not fit"),
])
def test_a_broken_watermark_file_raises_value_error_naming_it(xvfb, tmp_path, content, message):
    path = tmp_path / "broken.png"
    if content == "truncated":
        Image.new("RGB", MARK, MARK_RGB).save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 20])  # the IDAT's end and IEND cut off
    elif content == "too big":
        Image.new("RGB", (400, 300), MARK_RGB).save(path)
    else:
        path.write_bytes(content)
    cap = ScreenCapture()
    with pytest.raises(ValueError, match=message) as raised:
        cap.start_capture(settings(xvfb, path, 4), StripeCallback(lambda r, u: None))
    assert "broken.png" in str(raised.value)
    assert not cap.is_running
