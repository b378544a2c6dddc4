"""The "Basic Capture" example of the pixelflux 1.2.2 README runs unchanged (its `input()`
replaced by a sleep) in a fresh interpreter, in both output modes, and the process exits
cleanly even when a script forgets to stop its capture."""

import os
import re
import subprocess
import sys
import textwrap

from conftest import pattern_image

# Verbatim from the 1.2.2 README ("Basic Capture"), except `input()` -> `time.sleep(2)`.
BASIC_CAPTURE = '''
import time
from pixelflux import CaptureSettings, ScreenCapture, StripeCallback

# Define your Python callback function.
# This function will be called from a background thread for each encoded stripe.
def my_python_callback(result, user_data):
    """
    Callback function to process encoded stripes.
    `result` is a StripeEncodeResult object with the stripe's data.
    `user_data` is whatever object you passed to start_capture (or None).
    """
    if result.data:
        # result.type will be 1 for JPEG, 2 for H.264
        type_str = "H264" if result.type == 2 else "JPEG"

        print(
            f"Received {type_str} stripe: "
            f"frame_id={result.frame_id}, "
            f"y_start={result.stripe_y_start}, "
            f"height={result.stripe_height}, "
            f"size={len(result.data)} bytes"
        )
    
    # Memory is managed automatically. No need to free anything.

# 1. Configure capture settings
settings = CaptureSettings()
settings.capture_width = 1280
settings.capture_height = 720
settings.capture_x = 0
settings.capture_y = 0
settings.target_fps = 30.0

# Set output mode to H.264 (1)
settings.output_mode = 1
settings.h264_crf = 25 # H264 Constant Rate Factor (0-51, lower is better quality)

# 2. Instantiate the ScreenCapture module
module = ScreenCapture()

# 3. Create a StripeCallback handler object
# This object simply holds your Python function.
callback_handler = StripeCallback(my_python_callback)

try:
    # 4. Start the capture, passing the settings and callback handler.
    # The third argument is optional user_data to be passed to your callback.
    module.start_capture(settings, callback_handler, None)
    
    print("Capture started. Press Enter to stop...")
    time.sleep(2) # Keep the main thread alive while capture runs in the background.

finally:
    # 5. Stop the capture. This will block until the background thread has exited.
    module.stop_capture()
    print("Capture stopped.")
'''

LINE = re.compile(r"Received (JPEG|H264) stripe: frame_id=(\d+), y_start=(\d+), "
                  r"height=(\d+), size=(\d+) bytes")


def run_script(code, display, timeout=60):
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)


def check_run(proc, kind):
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Capture started. Press Enter to stop..."
    assert lines[-1] == "Capture stopped."
    stripes = [LINE.fullmatch(line) for line in lines[1:-1]]
    assert stripes and all(stripes), lines[:5]
    assert {m.group(1) for m in stripes} == {kind}
    # The first frame covers all 720 rows, in order.
    first = [m for m in stripes if m.group(2) == "0"]
    y = 0
    for m in first:
        assert int(m.group(3)) == y
        y += int(m.group(4))
    assert y == 720
    # The drawn picture is static: after frame 0 a stripe is sent again at most once (a
    # paint-over refresh).
    later = [int(m.group(3)) for m in stripes if m.group(2) != "0"]
    assert len(later) == len(set(later)) <= len(first), later


def test_readme_basic_capture_h264(xvfb_720p):
    xvfb_720p.draw(pattern_image(1280, 720))
    check_run(run_script(BASIC_CAPTURE, xvfb_720p.display), "H264")


def test_readme_basic_capture_jpeg(xvfb_720p):
    xvfb_720p.draw(pattern_image(1280, 720))
    code = BASIC_CAPTURE.replace("settings.output_mode = 1", "settings.output_mode = 0")
    assert code != BASIC_CAPTURE
    check_run(run_script(code, xvfb_720p.display), "JPEG")


def test_exit_without_stop_capture_is_clean(xvfb):
    """A script that never stops its capture still exits, with status 0 (atexit stops it)."""
    code = textwrap.dedent('''
        import time
        from pixelflux import CaptureSettings, ScreenCapture, StripeCallback
        s = CaptureSettings()
        s.capture_width, s.capture_height, s.target_fps = 320, 240, 120.0
        seen = []
        cap = ScreenCapture()
        cap.start_capture(s, StripeCallback(lambda r, u: seen.append(r.size)))
        time.sleep(0.5)
        print("stripes", len(seen) > 0)
    ''')
    proc = run_script(code, xvfb.display, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stripes True"
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
