"""Memory: every StripeEncodeResult owns its bytes and frees them with itself, so the resident
size stays flat over tens of thousands of stripes (1.2.2 leaked every stripe)."""

import gc

from conftest import rss_bytes, wait_until
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

STRIPES = 20_000


def test_rss_stays_flat_over_20000_stripes():
    # Our `scene` extension: a synthetic picture whose every pixel changes every frame, so each
    # frame sends every stripe. 8 stripes of 128x16 per frame.
    s = CaptureSettings(capture_width=128, capture_height=128, stripe_height=16,
                        target_fps=1000.0, scene="full")
    count = [0, 0]

    def on_stripe(result, user_data):
        # Touch the data both ways, as an application would.
        count[0] += 1
        count[1] += len(result.data) + memoryview(result).nbytes

    cap = ScreenCapture()
    cap.start_capture(s, StripeCallback(on_stripe))
    try:
        # Warm up: allocator pools, encoders and thread stacks reach their steady size.
        assert wait_until(lambda: count[0] >= 2_000, timeout=60)
        gc.collect()
        base, start, start_bytes = rss_bytes(), count[0], count[1]
        assert wait_until(lambda: count[0] >= start + STRIPES, timeout=120), count[0]
        gc.collect()
        grown = rss_bytes() - base
        # `data` and the memoryview were both counted: halve for the stripes' own size.
        sent = (count[1] - start_bytes) // 2
    finally:
        cap.stop_capture()
    print(f"RSS grew by {grown / 1e6:.2f} MB while {sent / 1e6:.1f} MB of stripes passed")
    # Had the stripes been kept, RSS would have grown by at least their size: the test could
    # not miss a leak of them.
    assert sent > 15 * 1024 * 1024, sent
    assert grown < 10 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB over {STRIPES} stripes"
