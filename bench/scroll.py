#!/usr/bin/env python3
"""Scroll detection, measured: serve's JPEG stream with copy-rows against the same stream
without them, and against upstream pixelflux 2.2.1, on scrolling workloads, interleaved.

    python3 bench/scroll.py [--rounds 2] [--seconds 4] [--workloads scroll,log,terminal]

Per round and workload, one after the other (A B C A B C ...; the best round of each is kept,
by CPU per delivered frame, so machine noise hits all three alike):
  upstream  PyPI pixelflux 2.2.1 through bench/runner.py (JPEG, quality 85), in the venv
            `make compare` makes (target/compare/venv-upstream; run `python3 bench/compare.py
            --libs upstream --scenes scroll --codecs jpeg` once to create it);
  tagged    ours, `pixelflux-bench --wire tagged` (serve's stream, scroll detection off);
  scroll    ours, `pixelflux-bench --scroll-detection` (serve's stream: copy-rows + stripes).

Workloads at --size on a private Xvfb: `scroll`, the synthetic scroll scene drawn by the scene
driver (4 rows a frame); `log`, xterm printing a build log about 200 lines/s; `terminal`, xterm
printing it as fast as it can (a screenful of new text per frame: nothing to copy). The xterm
command lines are those of crates/pixelflux-bench/src/apps.rs (kept in step by hand).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target" / "release" / "pixelflux-bench"
UPSTREAM_PY = ROOT / "target" / "compare" / "venv-upstream" / "bin" / "python"

# crates/pixelflux-bench/src/apps.rs: the `terminal` and `log` loops over the log file ($0).
FLOOD = 'while :; do cat "$0"; done'
PACED = ("while :; do n=0; while IFS= read -r l; do printf '%s\\n' \"$l\"; "
         "n=$((n+1)); if [ $n -ge 4 ]; then n=0; sleep 0.02; fi; done < \"$0\"; done")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_log(path):
    """The same kind of log as apps.rs writes (lines of varied length)."""
    lines = []
    for i in range(4000):
        k = i % 5
        if k == 0:
            lines.append(f"   Compiling crate-{i} v0.{i % 7}.{i % 13} (/src/crates/crate-{i})")
        elif k == 1:
            lines.append(f"warning: unused variable `x{i}` --> src/module_{i % 31}.rs:{i % 400}:9")
        elif k == 2:
            lines.append(f"    Checking dependency-{i * 7 % 97} v1.{i % 11}.0")
        elif k == 3:
            lines.append(f"test tests::case_{i} ... ok")
        else:
            lines.append(f"{i:>8} {'=' * (i % 60)}")
    path.write_text("\n".join(lines) + "\n")


def upstream(workload, args, tmp):
    """One upstream run on its own Xvfb with the workload on it."""
    xvfb = subprocess.Popen([str(BENCH), "xvfb", "--size", args.size],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    display = xvfb.stdout.readline().strip()
    w, h = (int(v) for v in args.size.split("x"))
    helper = None
    try:
        if workload == "scroll":
            helper = subprocess.Popen(
                [str(BENCH), "drive", "--display", display, "--scene", "scroll",
                 "--size", args.size, "--fps", str(args.fps)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert helper.stdout.readline().strip() == "ready", "scene driver"
        else:
            logfile = tmp / "build.log"
            build_log(logfile)
            loop = FLOOD if workload == "terminal" else PACED
            helper = subprocess.Popen(
                ["xterm", "-geometry", f"{w // 6}x{h // 13}+0+0", "-e", "sh", "-c", loop,
                 str(logfile)], env={**os.environ, "DISPLAY": display},
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
        run = subprocess.run(
            [str(UPSTREAM_PY), str(ROOT / "bench" / "runner.py"), "--lib", "upstream",
             "--display", display, "--codec", "jpeg", "--width", str(w), "--height", str(h),
             "--fps", str(args.fps), "--seconds", str(args.seconds), "--warmup", "0.5",
             "--dump", str(tmp / "dump.bin"), "--quality", "85"],
            capture_output=True, text=True, timeout=args.seconds * 4 + 120, check=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        return {"kbit_per_s": r["kbit_per_s"], "cpu_cores": r["cpu_cores"],
                "fps": r["delivered_fps"], "cpu_ms_per_frame": r["cpu_ms_per_delivered_frame"]}
    finally:
        if helper:
            if helper.stdin:
                helper.stdin.close()
            if workload != "scroll":
                helper.kill()
            helper.wait()
        xvfb.stdin.close()
        xvfb.wait()


def ours(workload, mode, args, tmp):
    """One pixelflux-bench run (its own Xvfb, driver or application)."""
    out = tmp / "ours.json"
    what = ["--scene", "scroll"] if workload == "scroll" else ["--app", workload]
    flag = ["--scroll-detection"] if mode == "scroll" else ["--wire", "tagged"]
    subprocess.run([str(BENCH), "--codec", "jpeg", "--source", "x11", *what, *flag,
                    "--size", args.size, "--fps", str(args.fps), "--seconds", str(args.seconds),
                    "--psnr-samples", "0", "--json", str(out)],
                   check=True, capture_output=True, timeout=args.seconds * 4 + 120)
    r = json.loads(out.read_text())["results"][0]
    # CPU per delivered frame, as runner.py counts it for upstream.
    cpu_ms = r["cpu_cores"] * r["seconds"] * 1e3 / max(r["frames_sent"], 1)
    return {"kbit_per_s": r["kbit_per_s"], "cpu_cores": r["cpu_cores"],
            "fps": r["delivered_fps"], "cpu_ms_per_frame": cpu_ms}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--workloads", default="scroll,log,terminal")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not BENCH.exists():
        sys.exit(f"{BENCH} not found: cargo build --release -p pixelflux-bench")
    modes = (["upstream"] if UPSTREAM_PY.exists() else []) + ["tagged", "scroll"]
    if "upstream" not in modes:
        log(f"no {UPSTREAM_PY}: measuring ours only")
    best = {}
    with tempfile.TemporaryDirectory(prefix="pixelflux-scroll-") as d:
        tmp = Path(d)
        for n in range(args.rounds):
            for workload in args.workloads.split(","):
                for mode in modes:
                    r = (upstream(workload, args, tmp) if mode == "upstream"
                         else ours(workload, mode, args, tmp))
                    log(f"round {n + 1} {workload} {mode}: {r['cpu_cores']:.3f} cores, "
                        f"{r['kbit_per_s']:.0f} kbit/s, {r['fps']:.1f} fps, "
                        f"{r['cpu_ms_per_frame']:.2f} ms/frame")
                    key = (workload, mode)
                    if key not in best or r["cpu_ms_per_frame"] < best[key]["cpu_ms_per_frame"]:
                        best[key] = r
    print(f"{'workload':<9} {'stream':<9} {'fps':>6} {'kbit/s':>9} {'cores':>6} "
          f"{'ms/frame':>8} {'bytes/up':>8} {'cpu/up':>7}")
    for workload in args.workloads.split(","):
        up = best.get((workload, "upstream"))
        for mode in modes:
            r = best[(workload, mode)]
            rb = f"{r['kbit_per_s'] / up['kbit_per_s']:.3f}" if up else "-"
            rc = f"{r['cpu_cores'] / up['cpu_cores']:.3f}" if up else "-"
            print(f"{workload:<9} {mode:<9} {r['fps']:>6.1f} {r['kbit_per_s']:>9.0f} "
                  f"{r['cpu_cores']:>6.3f} {r['cpu_ms_per_frame']:>8.2f} {rb:>8} {rc:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"workload": w, "stream": m, **r} for (w, m), r in best.items()], indent=2) + "\n")


if __name__ == "__main__":
    main()
