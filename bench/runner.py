"""Runs one capture with one pixelflux Python library and reports what it cost.

Run by bench/compare.py inside the virtual environment of the library under test:

    python bench/runner.py --lib ours|upstream --display :N --codec jpeg|h264 \
        --seconds 5 --warmup 0.5 --dump stripes.bin

It captures the whole screen of --display (filled by the scene driver), measures process CPU
(time.process_time: every thread of this process, the library's and Python's) over the
measured window, counts delivered bytes, stripes and frames, and writes every stripe (payload
without its header, with frame id, row, capture and delivery times) to --dump in the layout
`pixelflux-bench psnr` reads. Prints one JSON object on stdout.

With --freeze-pgid (a real application, which has no reference frames) it then, after the
measured window and still capturing, takes --shots screenshots of a frozen screen: SIGSTOP to
the application's process group, --settle seconds for the screen and both libraries to deliver
the last change, a screenshot (`pixelflux-bench snap`), SIGCONT; the list of shots and the
time each was known to be on screen goes to --shots-out, for `pixelflux-bench psnr --shots`.
The measured window is not disturbed by this.
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

MAGIC = b"PFXDUMP1"
JPEG, H264 = 1, 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["ours", "upstream"], required=True)
    ap.add_argument("--display", required=True)
    ap.add_argument("--codec", choices=["jpeg", "h264"], required=True)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--crf", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--dump")
    ap.add_argument("--freeze-pgid", type=int, help="the application's process group")
    ap.add_argument("--snap", help="the pixelflux-bench binary (its `snap` tool)")
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--settle", type=float, default=0.35)
    ap.add_argument("--shots-out", help="directory for the screenshots and shots.json")
    args = ap.parse_args()
    # Both libraries read the display from the environment.
    os.environ["DISPLAY"] = args.display
    import pixelflux  # noqa: E402  (after DISPLAY is set)

    lock = threading.Lock()
    records = []  # (kind, frame_id, y, height, capture_ns, callback_ns, wire_len, payload)

    def keep(kind, frame_id, y, height, capture_ns, wire_len, payload):
        now = time.monotonic_ns()
        with lock:
            records.append((kind, frame_id, y, height, capture_ns, now, wire_len, payload))

    if args.lib == "ours":
        s = pixelflux.CaptureSettings()
        s.output_mode = 0 if args.codec == "jpeg" else 1
        s.h264_crf = args.crf

        def on_stripe(result, _user_data):
            data = result.data
            kind = JPEG if result.type == 1 else H264
            keep(kind, result.frame_id, result.stripe_y_start, result.stripe_height, 0,
                 len(data), data[result.header_size:])

        callback = on_stripe
    else:
        s = pixelflux.CaptureSettings()
        s.codec = args.codec
        s.use_cpu = True
        s.encode_node_index = -1  # software encoders only, as ours
        s.video_fullframe = False  # stripes, as ours
        s.video_crf = args.crf
        s.auto_adjust_screen_capture_size = False

        def on_stripe(frame):
            data = bytes(frame)
            if not data:
                return
            # Upstream 2.x headers: JPEG 6 bytes (0x03 ...), H.264 12 bytes (0x04 ...).
            if frame.data_type == 0:
                kind, header = JPEG, 6
            elif frame.data_type == 1:
                kind, header = H264, 12
            else:
                return
            keep(kind, frame.frame_id, frame.stripe_y_start, frame.stripe_height,
                 frame.capture_ns, len(data), data[header:])

        callback = on_stripe
    s.capture_width = args.width
    s.capture_height = args.height
    s.capture_x = 0
    s.capture_y = 0
    s.target_fps = args.fps
    s.jpeg_quality = args.quality
    s.capture_cursor = False

    cap = pixelflux.ScreenCapture()
    if args.lib == "ours":
        cap.start_capture(s, callback)
    else:
        cap.start_capture(callback, s)
    time.sleep(args.warmup)
    with lock:
        first = len(records)
    cpu0 = time.process_time()
    t0 = time.monotonic_ns()
    time.sleep(args.seconds)
    with lock:
        last = len(records)
    cpu1 = time.process_time()
    t1 = time.monotonic_ns()
    shots = []
    if args.freeze_pgid and args.snap and args.shots_out:
        os.makedirs(args.shots_out, exist_ok=True)
        for k in range(args.shots):
            t_stop = time.monotonic_ns()
            os.killpg(args.freeze_pgid, signal.SIGSTOP)
            try:
                time.sleep(args.settle)
                path = os.path.join(args.shots_out, f"shot{k}.raw")
                subprocess.run([args.snap, "snap", "--display", args.display, "--size",
                                f"{args.width}x{args.height}", "--out", path], check=True)
                # Stripes delivered until now show the frozen screen (nothing changed since
                # the settle began: the application is stopped, no paint-over in either).
                shots.append({"t_ns": time.monotonic_ns(), "t_stop_ns": t_stop, "path": path})
            finally:
                os.killpg(args.freeze_pgid, signal.SIGCONT)
            time.sleep(0.5)
        with open(os.path.join(args.shots_out, "shots.json"), "w") as f:
            json.dump(shots, f)
    cap.stop_capture()
    seconds = (t1 - t0) / 1e9
    window = records[first:last]
    frames = len({r[1] for r in window})
    wire = sum(r[6] for r in window)
    payload = sum(len(r[7]) for r in window)
    latencies = sorted((r[5] - r[4]) / 1e6 for r in window if r[4] > 0)

    def pct(p):
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, max(0, int(round(p / 100 * len(latencies))) - 1))]

    if args.dump:
        with open(args.dump, "wb") as f:
            f.write(MAGIC + struct.pack("<II", args.width, args.height))
            for kind, frame_id, y, h, cap_ns, cb_ns, _wire, data in records:
                f.write(struct.pack("<BQIIQQI", kind, frame_id, y, h, cap_ns, cb_ns, len(data)))
                f.write(data)
    out = {
        "lib": args.lib,
        "codec": args.codec,
        "seconds": seconds,
        "cpu_seconds": cpu1 - cpu0,
        "cpu_cores": (cpu1 - cpu0) / seconds,
        "frames_delivered": frames,
        "cpu_ms_per_delivered_frame": (cpu1 - cpu0) * 1e3 / frames if frames else None,
        "delivered_fps": frames / seconds,
        "stripes": len(window),
        "bytes": wire,
        "payload_bytes": payload,
        "kbit_per_s": wire * 8 / 1000 / seconds,
        "latency_p50_ms": pct(50),
        "latency_p99_ms": pct(99),
        "version": getattr(pixelflux, "__version__", None),
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
