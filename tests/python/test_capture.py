"""ScreenCapture under a real Xvfb: the stripes decode (Pillow, ffmpeg) to what was drawn, and
start/stop/callback behave as documented: user_data, memoryview, stop from the callback,
exceptions reported through sys.unraisablehook, start twice, stop twice, errors at start, the
X server going away, and no deadlock between stop_capture and a callback waiting for the GIL
(that test hangs, rather than fails, if stop_capture joins with the GIL held)."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from PIL import Image, ImageStat

from conftest import (H264_HEADER, JPEG_HEADER, Collector, decode_h264, decode_jpeg_stripe,
                      pattern_image, psnr, wait_until)
from expect import buffer_address, jpeg_reference, x264_reference
from pixelflux import (STRIPE_TYPE_H264, STRIPE_TYPE_JPEG, CaptureSettings, ScreenCapture,
                       StripeCallback, StripeEncodeResult)

REGION = (16, 32, 320, 240)  # x, y, width, height inside the 640x480 screen


def region_settings(xvfb, **extra):
    x, y, w, h = REGION
    s = CaptureSettings()
    s.display = xvfb.display
    s.capture_x, s.capture_y, s.capture_width, s.capture_height = x, y, w, h
    s.target_fps = 30.0
    for k, v in extra.items():
        setattr(s, k, v)
    return s


def first_frame(collector):
    """The stripes of frame 0 (every stripe is sent then), by y."""
    frame0 = [r for r in collector.items if r.frame_id == 0]
    return sorted(frame0, key=lambda r: r.stripe_y_start)


def covers(results, height):
    y = 0
    for r in results:
        if r.stripe_y_start != y:
            return False
        y += r.stripe_height
    return y == height


# 1.2.2's JPEG header of frame 0's stripes, written out byte for byte: frame_id 0, then
# stripe_y_start (64-row stripes), both big-endian u16.
JPEG_HEADERS_FRAME0 = {0: b"\x00\x00\x00\x00", 64: b"\x00\x00\x00\x40",
                       128: b"\x00\x00\x00\x80", 192: b"\x00\x00\x00\xc0"}


def test_jpeg_stripes_match_the_drawn_content(xvfb):
    x, y, w, h = REGION
    picture = pattern_image(640, 480)
    xvfb.draw(picture)
    expected = picture.crop((x, y, x + w, y + h))

    got = Collector()
    cap = ScreenCapture()
    cap.start_capture(region_settings(xvfb, jpeg_quality=90), StripeCallback(got))
    try:
        assert got.wait_for(lambda items: covers(first_frame_of(items), h))
    finally:
        cap.stop_capture()

    stripes = first_frame(got)
    assert [r.stripe_y_start for r in stripes] == sorted(JPEG_HEADERS_FRAME0)
    canvas = Image.new("RGB", (w, h))
    reference = Image.new("RGB", (w, h))
    for r in stripes:
        assert r.type == STRIPE_TYPE_JPEG == 1
        assert isinstance(r, StripeEncodeResult)
        data = r.data
        assert r.size == len(data) == len(r)
        assert data[:JPEG_HEADER] == JPEG_HEADERS_FRAME0[r.stripe_y_start]
        assert data[JPEG_HEADER:JPEG_HEADER + 2] == b"\xff\xd8"
        img = decode_jpeg_stripe(data)
        assert img.size == (w, r.stripe_height)
        canvas.paste(img, (0, r.stripe_y_start))
        # What libjpeg (through Pillow) makes of the same rows with the same tables.
        source = expected.crop((0, r.stripe_y_start, w, r.stripe_y_start + r.stripe_height))
        reference.paste(jpeg_reference(source, data[JPEG_HEADER:]), (0, r.stripe_y_start))
    quality, standard = psnr(canvas, expected), psnr(reference, expected)
    print(f"PSNR {quality:.2f} dB; libjpeg with the same tables {standard:.2f} dB")
    # Quality 90 is sent with full-resolution chroma (README): on this picture libjpeg reaches
    # 43.26 dB with those tables and ours measured 43.26 dB. Our encoder is libjpeg-turbo too:
    # more than 0.5 dB below it means a broken colour conversion or a wrong table.
    assert quality >= standard - 0.5, f"PSNR {quality:.2f} dB vs {standard:.2f} dB"


def first_frame_of(items):
    return sorted((r for r in items if r.frame_id == 0), key=lambda r: r.stripe_y_start)


def test_jpeg_changes_are_sent_and_match(xvfb):
    """After the first frame only changed stripes come, and they show the new colour."""
    x, y, w, h = REGION
    xvfb.fill((10, 20, 30))
    got = Collector()
    cap = ScreenCapture()
    # No paint-over refresh within the test: after frame 0 only changes are sent.
    settings = region_settings(xvfb, paint_over_trigger_frames=1_000_000)
    cap.start_capture(settings, StripeCallback(got))
    try:
        assert got.wait_for(lambda items: covers(first_frame_of(items), h))
        with got.lock:
            before = len(got.items)
        # Repaint rows 64..127 of the region (exactly the second 64-row stripe).
        xvfb.fill((200, 40, 90), x, y + 64, w, 64)
        assert got.wait_for(lambda items: any(r.stripe_y_start == 64 for r in items[before:]))
        # Then the last stripe, as a marker: stripes arrive in order, so whatever the first
        # change caused has arrived once the marker has.
        xvfb.fill((30, 200, 60), x, y + 192, w, h - 192)
        assert got.wait_for(lambda items: any(r.stripe_y_start == 192 for r in items[before:]))
    finally:
        cap.stop_capture()
    later = got.items[before:]
    assert [r.stripe_y_start for r in later] == [64, 192], [r.stripe_y_start for r in later]
    assert 0 < later[0].frame_id < later[1].frame_id
    for r, colour in zip(later, [(200, 40, 90), (30, 200, 60)]):
        mean = ImageStat.Stat(decode_jpeg_stripe(r.data)).mean
        assert all(abs(m - e) <= 4 for m, e in zip(mean, colour)), (r.stripe_y_start, mean)


# 1.2.2's H.264 header of frame 0's stripes (128-row stripes, set explicitly, of the 320x240
# region: the default would be one stripe here), written
# out byte for byte: 0x04, 0x01 (IDR), frame_id 0, stripe_y_start, width 320, height.
H264_HEADERS_FRAME0 = {0: b"\x04\x01\x00\x00\x00\x00\x01\x40\x00\x80",
                       128: b"\x04\x01\x00\x00\x00\x80\x01\x40\x00\x70"}


@pytest.mark.parametrize("fullcolor", [False, True])
def test_h264_stripes_decode_to_the_drawn_content(xvfb, fullcolor):
    x, y, w, h = REGION
    picture = pattern_image(640, 480, seed=3)
    xvfb.draw(picture)
    expected = picture.crop((x, y, x + w, y + h))

    got = Collector()
    cap = ScreenCapture()
    settings = region_settings(xvfb, output_mode=1, h264_crf=18, h264_fullcolor=fullcolor,
                               stripe_height=128)
    cap.start_capture(settings, StripeCallback(got))
    try:
        assert got.wait_for(lambda items: covers(first_frame_of(items), h)), cap.error
    finally:
        cap.stop_capture()

    stripes = first_frame(got)
    assert [r.stripe_y_start for r in stripes] == sorted(H264_HEADERS_FRAME0)
    canvas = Image.new("RGB", (w, h))
    reference = Image.new("RGB", (w, h))
    for r in stripes:
        assert r.type == STRIPE_TYPE_H264 == 2
        data = r.data
        assert data[:H264_HEADER] == H264_HEADERS_FRAME0[r.stripe_y_start]
        # Annex-B: a start code right after the header.
        payload = data[H264_HEADER:]
        assert payload.startswith(b"\x00\x00\x00\x01") or payload.startswith(b"\x00\x00\x01")
        frames = decode_h264(data[H264_HEADER:], w, r.stripe_height)
        assert len(frames) == 1
        canvas.paste(frames[0], (0, r.stripe_y_start))
        source = expected.crop((0, r.stripe_y_start, w, r.stripe_y_start + r.stripe_height))
        reference.paste(x264_reference(source, 18, fullcolor), (0, r.stripe_y_start))
    quality, standard = psnr(canvas, expected), psnr(reference, expected)
    print(f"PSNR {quality:.2f} dB; ffmpeg's libx264 at the same CRF {standard:.2f} dB")
    # Measured: 4:2:0 46.55 dB (reference 46.46), 4:4:4 47.59 dB (reference 48.07). Both are
    # x264 ultrafast at CRF 18 on the same stripes, so another x264 moves both; ffmpeg's own
    # RGB to YUV conversion differs from ours by a few tenths of a dB. More than 1 dB below the
    # reference means a broken conversion, profile or rate control.
    assert quality >= standard - 1.0, f"PSNR {quality:.2f} dB vs {standard:.2f} dB"


def test_a_refresh_idr_is_as_sharp_as_x264_makes_the_picture(xvfb):
    """x264's rate control coded an IDR right after another from its own complexity (28.8 dB
    here) where the first got QP 22 (43.3 dB); refreshes are now forced to the first's
    quantizer (docs/h264.md)."""
    picture = pattern_image(640, 480, seed=5)
    xvfb.draw(picture)
    got = Collector()
    cap = ScreenCapture()
    # One 128-row stripe; no paint-over, so the refresh is the only picture after frame 0.
    settings = CaptureSettings(display=xvfb.display, capture_width=640, capture_height=128,
                               output_mode=1, h264_crf=25, target_fps=30.0,
                               paint_over_trigger_frames=1_000_000)
    cap.start_capture(settings, StripeCallback(got))
    try:
        assert got.wait_for(lambda items: len(items) >= 1), cap.error
        cap.request_idr()
        assert got.wait_for(lambda items: len(items) >= 2), cap.error
    finally:
        cap.stop_capture()
    first, refresh = got.items[0], got.items[1]
    assert (first.frame_id, first.data[1], refresh.data[1]) == (0, 0x01, 0x01)
    source = picture.crop((0, 0, 640, 128))
    standard = psnr(x264_reference(source, 25, False), source)
    for label, r in [("first", first), ("refresh", refresh)]:
        (frame,) = decode_h264(r.data[H264_HEADER:], 640, 128)
        quality = psnr(frame, source)
        print(f"{label} IDR: {quality:.2f} dB; x264 at CRF 25 {standard:.2f} dB")
        # The same margin as the key frames above: 1 dB below x264's own result.
        assert quality >= standard - 1.0, f"{label} IDR: {quality:.2f} dB vs {standard:.2f} dB"


def test_h264_stream_of_a_stripe_stays_decodable(xvfb):
    """The stripes of one y, concatenated, are one valid stream whose last frame shows the
    last colour drawn."""
    x, y, w, h = REGION
    xvfb.fill((0, 0, 0))
    got = Collector()
    cap = ScreenCapture()
    cap.start_capture(region_settings(xvfb, output_mode=1, target_fps=60.0),
                      StripeCallback(got))
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (128, 128, 128)]
    try:
        assert got.wait_for(lambda items: covers(first_frame_of(items), h)), cap.error
        for colour in colours:
            with got.lock:
                n = len(got.items)
            xvfb.fill(colour, x, y, w, 64)
            assert got.wait_for(lambda items: any(r.stripe_y_start == 0 for r in items[n:]))
    finally:
        cap.stop_capture()
    top = [r for r in got.items if r.stripe_y_start == 0]
    assert len(top) >= 1 + len(colours)
    stream = b"".join(r.data[H264_HEADER:] for r in top)
    frames = decode_h264(stream, w, top[0].stripe_height)
    assert len(frames) == len(top)
    # Only the top 64 rows were painted; the stripe may be taller.
    mean = ImageStat.Stat(frames[-1].crop((0, 0, w, 64))).mean
    assert all(abs(m - e) <= 6 for m, e in zip(mean, colours[-1])), mean


def test_user_data_is_passed_and_defaults_to_none():
    s = CaptureSettings(capture_width=64, capture_height=64, scene="full", target_fps=200.0)
    marker = object()
    for args, expected in [((), None), ((marker,), marker), ((None,), None)]:
        got = Collector(keep=lambda r: r.frame_id)
        cap = ScreenCapture()
        cap.start_capture(s, StripeCallback(got), *args)
        try:
            assert got.wait_for(lambda items: len(items) >= 3)
        finally:
            cap.stop_capture()
        assert all(u is expected for u in got.user_data)


def test_a_plain_callable_is_accepted_too():
    s = CaptureSettings(capture_width=64, capture_height=64, scene="full", target_fps=200.0)
    got = Collector(keep=lambda r: r.frame_id)
    cap = ScreenCapture()
    cap.start_capture(s, got)
    try:
        assert got.wait_for(lambda items: len(items) >= 3)
    finally:
        cap.stop_capture()


def test_memoryview_reads_the_result_s_own_bytes_without_copy(xvfb):
    xvfb.draw(pattern_image(640, 480))

    def keep(result):
        view = memoryview(result)
        assert view.readonly and view.format == "B" and view.nbytes == result.size
        return result, view, bytes(view), result.data

    got = Collector(keep=keep)
    cap = ScreenCapture()
    cap.start_capture(region_settings(xvfb), StripeCallback(got))
    try:
        assert got.wait_for(lambda items: len(items) >= 4)
    finally:
        cap.stop_capture()
    for result, view, copied, data in got.items:
        assert copied == data
        # The view still reads the stripe's bytes after the callback has returned.
        assert view.tobytes() == data
        with pytest.raises(TypeError):
            view[0] = 0

    result, view, _, data = got.items[0]
    # Zero copy: every view points at the one buffer the result owns, the same address each
    # time, and not at the bytes of a `data` object (which is a copy, new on each access).
    a, b = memoryview(result), memoryview(result)
    assert a.obj is result and b.obj is result
    assert buffer_address(a) == buffer_address(b) == buffer_address(view) == buffer_address(result)
    assert buffer_address(result) != buffer_address(data)
    assert result.data is not result.data and result.data == data
    # The view keeps its result, and so the bytes, alive after every other reference is gone.
    address = buffer_address(view)
    got.items.clear()
    del result, a, b
    import gc
    gc.collect()
    assert view.obj is not None and buffer_address(view) == address
    assert view.tobytes() == data


def test_stop_from_inside_the_callback():
    s = CaptureSettings(capture_width=64, capture_height=64, scene="full", target_fps=200.0)
    cap = ScreenCapture()
    calls = []

    def on_stripe(result, user_data):
        calls.append(result.frame_id)
        if len(calls) == 3:
            user_data.stop_capture()
            user_data.stop_capture()  # idempotent there too

    cap.start_capture(s, StripeCallback(on_stripe), cap)
    assert wait_until(lambda: not cap.is_running, timeout=10)
    # Joins the capture thread: every stripe it will ever deliver has been delivered.
    cap.stop_capture()
    # No callback starts after the stop, not even for the rest of the frame.
    assert calls[3:] == [], calls
    assert cap.error is None
    # The capture can be started again.
    cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert cap.is_running
    cap.stop_capture()
    assert not cap.is_running


def test_exception_in_callback_goes_to_unraisablehook_and_capture_goes_on(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: reported.append(
        (info.exc_type, str(info.exc_value), info.object)))
    s = CaptureSettings(capture_width=64, capture_height=64, scene="full", target_fps=200.0)
    calls = []

    def on_stripe(result, user_data):
        calls.append(result.frame_id)
        raise ValueError(f"boom {result.frame_id}")

    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(on_stripe))
    try:
        assert wait_until(lambda: len(set(calls)) >= 5, timeout=10)
        assert cap.is_running
    finally:
        cap.stop_capture()
    assert cap.error is None
    assert len(reported) >= 5
    assert all(t is ValueError and msg.startswith("boom") for t, msg, _ in reported[:5])
    assert reported[0][2] is on_stripe


def test_start_twice_raises_stop_twice_is_fine():
    s = CaptureSettings(capture_width=64, capture_height=64, scene="typing")
    cap = ScreenCapture()
    cap.stop_capture()  # before any start: nothing to do
    cap.start_capture(s, StripeCallback(lambda r, u: None))
    try:
        with pytest.raises(RuntimeError, match="already running"):
            cap.start_capture(s, StripeCallback(lambda r, u: None))
        assert cap.is_running
    finally:
        cap.stop_capture()
    cap.stop_capture()
    assert not cap.is_running
    # Two captures side by side on two objects are fine.
    a, b = ScreenCapture(), ScreenCapture()
    a.start_capture(s, StripeCallback(lambda r, u: None))
    b.start_capture(s, StripeCallback(lambda r, u: None))
    assert a.is_running and b.is_running
    a.stop_capture()
    b.stop_capture()


# Run in a child interpreter: if stop_capture() joined with the GIL held, that process would
# hang with its GIL taken, which no timeout inside it could end; the parent's timeout does.
PENDING_CALLBACK_STOP = textwrap.dedent('''
    import sys, time
    from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

    s = CaptureSettings(capture_width=128, capture_height=128, scene="full",
                        target_fps=1000.0, stripe_height=16)
    # The main thread keeps the GIL until it blocks: no switch forced for a minute.
    sys.setswitchinterval(60.0)
    for attempt in range(10):
        calls, during_stop, stopping = [], [], [False]

        def on_stripe(result, user_data):
            calls.append(result.frame_id)
            if stopping[0]:
                during_stop.append(result.frame_id)

        cap = ScreenCapture()
        cap.start_capture(s, StripeCallback(on_stripe))
        deadline = time.monotonic() + 20
        while len(calls) < 10:  # sleeping lets the callbacks run
            assert time.monotonic() < deadline, "fewer than 10 callbacks in 20 s"
            time.sleep(0.01)
        # Hold the GIL (bytecode only, nothing that blocks) while the capture thread, at
        # 1000 fps with 8 stripes a frame, encodes its next stripe and waits for the GIL.
        n = len(calls)
        spin_until = time.monotonic() + 0.2
        while time.monotonic() < spin_until:
            pass
        assert len(calls) == n, "a callback ran while this thread held the GIL"
        stopping[0] = True
        cap.stop_capture()
        assert not cap.is_running
        # The precondition of the case: a callback was waiting for the GIL when stop began,
        # and it ran while stop_capture() waited for the thread with the GIL released.
        assert during_stop, "no callback was pending when stop_capture() ran"
    print("ok")
''')


def test_stop_capture_does_not_deadlock_with_a_pending_callback():
    """1.2.2 joined its thread holding the GIL while that thread waited for the GIL."""
    try:
        proc = subprocess.run([sys.executable, "-c", PENDING_CALLBACK_STOP],
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"stop_capture() with a callback waiting for the GIL hung: {e.stderr!r}")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_bad_display_raises_connection_error():
    s = CaptureSettings(capture_width=64, capture_height=64, display=":59123")
    cap = ScreenCapture()
    with pytest.raises(ConnectionError, match="59123"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert not cap.is_running


def test_region_outside_the_screen_raises_value_error(xvfb):
    s = region_settings(xvfb)
    s.capture_x = 600  # 600 + 320 > 640
    cap = ScreenCapture()
    with pytest.raises(ValueError, match="does not fit"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert not cap.is_running


def test_missing_watermark_file_raises(xvfb, tmp_path):
    s = region_settings(xvfb)
    s.watermark_path = str(tmp_path / "missing.png")
    s.watermark_location_enum = 4
    cap = ScreenCapture()
    with pytest.raises(FileNotFoundError, match="missing.png"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))


def test_watermark_path_that_is_a_directory_says_so(xvfb, tmp_path):
    s = region_settings(xvfb)
    s.watermark_path = str(tmp_path)
    s.watermark_location_enum = 4
    cap = ScreenCapture()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        cap.start_capture(s, StripeCallback(lambda r, u: None))
    assert not cap.is_running


def test_server_gone_is_logged_and_stop_returns(xvfb, caplog):
    got = Collector(keep=lambda r: r.frame_id)
    cap = ScreenCapture()
    cap.start_capture(region_settings(xvfb, target_fps=60.0), StripeCallback(got))
    assert got.wait_for(lambda items: len(items) > 0)
    xvfb.kill()
    assert wait_until(lambda: not cap.is_running, timeout=10)
    with caplog.at_level(logging.ERROR, logger="pixelflux"):
        cap.stop_capture()
        cap.stop_capture()
    assert cap.error is not None
    errors = [r for r in caplog.records if r.name == "pixelflux"]
    assert len(errors) == 1 and "capture ended with an error" in errors[0].getMessage()


def test_stop_capture_is_bounded_when_the_x_server_hangs(xvfb):
    # With the pointer drawn, every frame asks the server where it is: after SIGSTOP the
    # capture thread waits for a reply that never comes.
    got = Collector(keep=lambda r: r.frame_id)
    cap = ScreenCapture()
    cap.start_capture(region_settings(xvfb, target_fps=100.0, capture_cursor=True),
                      StripeCallback(got))
    assert got.wait_for(lambda items: len(items) > 0)
    os.kill(xvfb.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(1.0)  # dozens of frame deadlines: the thread is now waiting on the server
        stopper = threading.Thread(target=cap.stop_capture, daemon=True)
        stopper.start()
        stopper.join(timeout=30)
        returned = not stopper.is_alive()
    finally:
        os.kill(xvfb.proc.pid, signal.SIGCONT)
    assert returned, "stop_capture() blocked on a hung X server"
    assert not cap.is_running
    assert "stopped answering" in (cap.error or ""), cap.error


def test_stream_format_is_what_is_encoded():
    s = CaptureSettings(capture_width=131, capture_height=97, scene="static", output_mode=1)
    cap = ScreenCapture()
    assert cap.stream_format is None
    got = Collector()
    cap.start_capture(s, StripeCallback(got))
    try:
        # H.264 rounds odd sizes down to even; 96 rows are one (default) stripe.
        assert cap.stream_format == {"width": 130, "height": 96, "codec": "h264",
                                     "stripe_height": 96, "h264_fullcolor": False}
        assert got.wait_for(lambda items: len(items) > 0)
        assert (got.items[0].stripe_width, got.items[0].stripe_height) == (130, 96)
    finally:
        cap.stop_capture()


def test_dropping_a_running_capture_stops_it():
    s = CaptureSettings(capture_width=64, capture_height=64, scene="full", target_fps=200.0)
    calls, threads = [], set()

    def on_stripe(result, user_data):
        calls.append(result.frame_id)
        threads.add(threading.get_native_id())

    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(on_stripe))
    assert wait_until(lambda: len(calls) > 3)
    del cap
    import gc
    gc.collect()
    # Dropping joined the thread that called back: it is gone from this process (the kernel
    # may take a moment to remove the entry after the join).
    assert wait_until(lambda: not any(os.path.exists(f"/proc/self/task/{t}") for t in threads),
                      timeout=10), "the capture went on after its ScreenCapture was dropped"
