#!/usr/bin/env python3
"""Ours vs upstream: the same scenes and real applications through both Python libraries,
under the same screens, interleaved.

    make compare    (or: python3 bench/compare.py [--seconds 5] [--scenes typing,full]
                         [--apps terminal,video] [--rounds 2])

1. Creates two virtual environments under target/compare/: one with PyPI's pixelflux==2.2.1
   (upstream, a prebuilt wheel), one with this repository's Python module (`pip install .`).
2. Starts a private Xvfb and, per workload and codec, --rounds times, each library in turn
   (A B A B: machine noise hits both alike): a fresh deterministic scene driver
   (`pixelflux-bench drive`) or a freshly started real application (`pixelflux-bench app`:
   xterm printing a log at a fixed line rate, xclock, ffplay looping a clip), then
   bench/runner.py in that library's environment. Same region, frame rate, JPEG quality and
   CRF for both; everything else at each library's defaults.
3. Rebuilds the pictures each library delivered with real decoders (`pixelflux-bench psnr`:
   against the driver's frames for scenes, against screenshots of the frozen application for
   the real ones), keeps each library's best round (most frames delivered, then least CPU),
   prints ours/upstream ratios of CPU, bytes and delivered frames with both PSNRs, writes
   target/compare/compare.json (every round is in it) and the chart docs/compare.svg
   (`pixelflux-bench chart`).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENES = ["static", "typing", "scroll", "video", "full"]
APPS = ["terminal", "clock", "video"]
UPSTREAM = "pixelflux==2.2.1"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def venv(path, packages, marker):
    """A virtual environment at `path` with `packages` installed (pip arguments)."""
    python = path / "bin" / "python"
    stamp = path / ".installed"
    if stamp.exists() and stamp.read_text() == marker:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True, cwd=ROOT)
    stamp.write_text(marker)
    return python


def ours_marker():
    """A hash of our module's sources, so `pip install .` reruns only when they change."""
    import hashlib
    files = subprocess.run(["git", "ls-files", "crates/pixelflux", "crates/pixelflux-py",
                            "python", "pyproject.toml", "Cargo.lock"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    h = hashlib.sha256()
    for name in sorted(files):
        path = ROOT / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class Xvfb:
    """`pixelflux-bench xvfb`: the project's one Xvfb launcher (crates/pixelflux-xvfb; the
    server picks a free display number itself), kept until its stdin closes."""

    def __init__(self, exe, size):
        self.proc = subprocess.Popen([str(exe), "xvfb", "--size", size],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # The launcher gives up by itself within 10 s when Xvfb does not come up.
        self.display = self.proc.stdout.readline().strip()
        if not self.display.startswith(":"):
            self.close()
            raise RuntimeError(f"no Xvfb (said {self.display!r})")

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class AppProc:
    """`pixelflux-bench app`: a real application on the display until its stdin closes."""

    def __init__(self, exe, display, app, size):
        self.proc = subprocess.Popen(
            [str(exe), "app", "--display", display, "--app", app, "--size", size],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            self.proc.kill()
            raise RuntimeError(f"{app} did not start: {line!r}")
        self.pgid = int(line.split()[1])

    def finish(self):
        self.proc.stdin.close()
        self.proc.wait()
        return None


def best(runs):
    """The round least disturbed by the machine: most frames delivered, then least CPU."""
    return max(runs, key=lambda r: (r["frames_delivered"], -r["cpu_cores"]))


class Driver:
    """`pixelflux-bench drive`: draws the scene until its stdin closes."""

    def __init__(self, exe, display, scene, size, fps, log_path):
        self.proc = subprocess.Popen(
            [str(exe), "drive", "--display", display, "--scene", scene,
             "--size", size, "--fps", str(fps), "--log", str(log_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"scene driver did not start: {line!r}")

    def finish(self):
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait()
        for line in out.splitlines():
            if line.startswith("driver "):
                fields = dict(f.split("=", 1) for f in line.split()[1:])
                return float(fields["fps"])
        return None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--apps", default=",".join(APPS),
                    help="real applications (xterm, xclock, ffplay); '' for none")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs per library, interleaved (A B A B); the best counts")
    ap.add_argument("--shots", type=int, default=3,
                    help="screenshots of each frozen application for its PSNR")
    ap.add_argument("--crf", type=int, default=25, help="H.264 CRF of both libraries")
    ap.add_argument("--codecs", default="jpeg,h264")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--work", default=str(ROOT / "target" / "compare"))
    ap.add_argument("--bench", default=str(ROOT / "target" / "release" / "pixelflux-bench"),
                    help="the pixelflux-bench binary (driver, PSNR, chart)")
    ap.add_argument("--json", default=None, help="default: WORK/compare.json")
    ap.add_argument("--chart", default=str(ROOT / "docs" / "compare.svg"))
    ap.add_argument("--libs", default="ours,upstream")
    ap.add_argument("--keep-dumps", action="store_true", help="keep the stripe dumps in WORK")
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality of both libraries")
    ap.add_argument("--ours-quality", type=int, default=None,
                    help="JPEG quality of ours only (e.g. 90, where ours switches to 4:4:4 "
                         "chroma as upstream always does, for an equal-PSNR comparison)")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    exe = Path(args.bench)
    if not exe.exists():
        sys.exit(f"{exe} not found: build it first (make build-bench)")
    libs = args.libs.split(",")
    pythons = {}
    if "upstream" in libs:
        log(f"venv: {UPSTREAM}")
        pythons["upstream"] = venv(work / "venv-upstream", [UPSTREAM], UPSTREAM)
    if "ours" in libs:
        if not (ROOT / "pyproject.toml").exists():
            sys.exit("pyproject.toml is missing: our Python module cannot be installed")
        log("venv: ours (pip install . builds the Rust extension; a few minutes the first time)")
        pythons["ours"] = venv(work / "venv-ours", [str(ROOT)], ours_marker())
    width, height = (int(v) for v in args.size.split("x"))
    xvfb = Xvfb(exe, args.size)
    log(f"Xvfb on {xvfb.display}")
    def quality(lib):
        return args.ours_quality if lib == "ours" and args.ours_quality else args.quality

    workloads = [("scene", w) for w in args.scenes.split(",") if w]
    workloads += [("app", w) for w in args.apps.split(",") if w]
    size_arg = f"{width}x{height}"
    rows = []
    try:
        for codec in args.codecs.split(","):
            for kind, name in workloads:
                label = name if kind == "scene" else f"app-{name}"
                row = {"scene": label, "codec": codec, "rounds": {lib: [] for lib in libs}}
                for rnd in range(args.rounds):
                    for lib in libs:
                        log(f"{label} {codec} {lib} round {rnd + 1}: capturing {args.seconds} s")
                        tag = f"{label}-{codec}-{lib}-{rnd}"
                        drv_log = work / f"driver-{tag}.log"
                        dump = work / f"stripes-{tag}.bin"
                        shots_dir = work / f"shots-{tag}"
                        extra = []
                        if kind == "scene":
                            proc = Driver(exe, xvfb.display, name, args.size, args.fps, drv_log)
                        else:
                            proc = AppProc(exe, xvfb.display, name, size_arg)
                            extra = ["--freeze-pgid", str(proc.pgid), "--snap", str(exe),
                                     "--shots", str(args.shots), "--shots-out", str(shots_dir)]
                        try:
                            run = subprocess.run(
                                [str(pythons[lib]), str(ROOT / "bench" / "runner.py"),
                                 "--lib", lib, "--display", xvfb.display, "--codec", codec,
                                 "--width", str(width), "--height", str(height),
                                 "--fps", str(args.fps), "--seconds", str(args.seconds),
                                 "--warmup", str(args.warmup), "--dump", str(dump),
                                 "--quality", str(quality(lib)), "--crf", str(args.crf), *extra],
                                capture_output=True, text=True, timeout=args.seconds * 4 + 180)
                        finally:
                            driver_fps = proc.finish()
                        if run.returncode != 0:
                            log(run.stderr)
                            raise RuntimeError(f"{lib} runner failed")
                        result = json.loads(run.stdout.strip().splitlines()[-1])
                        result["driver_fps"] = driver_fps
                        result["round"] = rnd
                        log(f"{label} {codec} {lib}: decoding for PSNR")
                        if kind == "scene":
                            how = ["--driver-log", str(drv_log), "--scene", name,
                                   "--skip", str(args.warmup)]
                        else:
                            how = ["--shots", str(shots_dir / "shots.json")]
                        psnr = subprocess.run([str(exe), "psnr", "--dump", str(dump), *how],
                                              capture_output=True, text=True)
                        if psnr.returncode == 0:
                            result.update(json.loads(psnr.stdout))
                        else:
                            log(f"PSNR failed: {psnr.stderr.strip()}")
                            result["psnr_db"] = None
                        if not args.keep_dumps:
                            dump.unlink(missing_ok=True)
                            shutil.rmtree(shots_dir, ignore_errors=True)
                        row["rounds"][lib].append(result)
                        log(f"{label} {codec} {lib}: {result['cpu_cores']:.3f} cores, "
                            f"{result['kbit_per_s']:.0f} kbit/s, "
                            f"{result['frames_delivered']} frames, "
                            f"PSNR {fmt(result.get('psnr_db'), '.1f')} dB"
                            + (f" (settled {result['psnr_settled_db']:.1f})"
                               if result.get("psnr_settled_db") is not None else ""))
                for lib in libs:
                    row[lib] = best(row["rounds"][lib])
                if "ours" in row and "upstream" in row:
                    o, u = row["ours"], row["upstream"]
                    row["ratios"] = {
                        "cpu": ratio(o["cpu_cores"], u["cpu_cores"]),
                        "bytes": ratio(o["bytes"], u["bytes"]),
                        "fps": ratio(o["delivered_fps"], u["delivered_fps"]),
                        "frames": ratio(o["frames_delivered"], u["frames_delivered"]),
                        # CPU per delivered frame: fair where one library drops frames.
                        "cpu_per_frame": ratio(o.get("cpu_ms_per_delivered_frame"),
                                               u.get("cpu_ms_per_delivered_frame")),
                        "bytes_per_frame": ratio(
                            o["bytes"] / o["frames_delivered"] if o["frames_delivered"] else None,
                            u["bytes"] / u["frames_delivered"] if u["frames_delivered"] else None),
                    }
                rows.append(row)
    finally:
        xvfb.close()

    machine = {
        "cpu_model": next((l.split(":", 1)[1].strip() for l in
                           open("/proc/cpuinfo") if l.startswith("model name")), "unknown"),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    out = {"version": 2, "upstream": UPSTREAM, "seconds": args.seconds, "size": args.size,
           "rounds": args.rounds, "command": " ".join(sys.argv),
           "jpeg_quality": {lib: quality(lib) for lib in libs}, "h264_crf": args.crf,
           "fps": args.fps, "machine": machine, "results": rows}
    json_path = Path(args.json) if args.json else work / "compare.json"
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {json_path}")

    head = (f"{'workload':<12} {'codec':<5} {'cpu ours':>8} {'cpu up':>8} {'ratio':>6} "
            f"{'kbit/s ours':>11} {'kbit/s up':>11} {'ratio':>6} {'frames ours':>11} "
            f"{'frames up':>9} {'ratio':>6} {'psnr ours':>9} {'psnr up':>8}")
    print(f"best of {args.rounds} interleaved rounds of {args.seconds} s per library")
    print(head)
    for r in rows:
        o, u, q = r.get("ours", {}), r.get("upstream", {}), r.get("ratios", {})
        print(f"{r['scene']:<12} {r['codec']:<5} {fmt(o.get('cpu_cores'), '.3f'):>8} "
              f"{fmt(u.get('cpu_cores'), '.3f'):>8} {fmt(q.get('cpu')):>6} "
              f"{fmt(o.get('kbit_per_s'), '.0f'):>11} {fmt(u.get('kbit_per_s'), '.0f'):>11} "
              f"{fmt(q.get('bytes'), '.3f'):>6} {fmt(o.get('frames_delivered'), 'd'):>11} "
              f"{fmt(u.get('frames_delivered'), 'd'):>9} {fmt(q.get('frames')):>6} "
              f"{fmt(o.get('psnr_db'), '.1f'):>9} {fmt(u.get('psnr_db'), '.1f'):>8}")
    if args.chart and all("ratios" in r for r in rows):
        subprocess.run([str(exe), "chart", "--input", str(json_path), "--out",
                        args.chart], check=True)


if __name__ == "__main__":
    main()
