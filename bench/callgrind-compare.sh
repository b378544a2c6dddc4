#!/usr/bin/env bash
# Instructions per delivered H.264 frame, ours vs upstream pixelflux 2.2.1, on the same pixels,
# counted by callgrind (deterministic, unlike CPU time on a shared machine). See
# docs/PERFORMANCE.md, "Instruction counts per frame".
#
#   bench/callgrind-compare.sh [scenes (scroll,full)] [ours|upstream|both]
#
# Per scene and library, two captures (SHORT and LONG seconds) of a 1920x1080 private Xvfb
# that the scene driver draws every 2 s (slow enough for a capture under callgrind to see
# every frame once), each in its own callgrind run (--trace-children=no: the capture process
# only; the driver and Xvfb are children of the benchmark or of this script). Then
# bench/callgrind_frames.py prints the groups per frame. Ours: target/release/pixelflux-bench
# (cargo build --release -p pixelflux-bench). Upstream: PyPI's pixelflux==2.2.1 in
# target/upstream-venv (made here once) driven by bench/runner.py.
set -eu
cd "$(dirname "$0")/.."
scenes=${1:-scroll,full}
which=${2:-both}
SHORT=${SHORT:-6}
LONG=${LONG:-36}
FPS=${FPS:-0.5}
out=${OUT:-target/callgrind/compare}
bench=target/release/pixelflux-bench
mkdir -p "$out"
if [ "$which" != ours ] && [ ! -x target/upstream-venv/bin/python ]; then
  python3 -m venv target/upstream-venv
  target/upstream-venv/bin/pip install -q pixelflux==2.2.1
fi

ours() { # scene seconds file
  valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$3" \
    "$bench" --source x11 --codec h264 --scene "$1" --seconds "$2" --warmup 0.5 \
    --driver-fps "$FPS" --psnr-samples 0 --valgrind-self --json "$3.json" >/dev/null 2>&1
}

upstream() { # scene seconds file
  local disp
  coproc XV { "$bench" xvfb --size 1920x1080; }
  read -r disp <&"${XV[0]}"
  coproc DR { "$bench" drive --display "$disp" --scene "$1" --fps "$FPS"; }
  read -r _ <&"${DR[0]}"
  valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$3" \
    target/upstream-venv/bin/python bench/runner.py --lib upstream --display "$disp" \
    --codec h264 --seconds "$2" --warmup 0 >"$3.json" 2>/dev/null
  exec {DR[1]}>&-
  wait "$DR_PID" || true
  exec {XV[1]}>&-
  wait "$XV_PID" || true
}

for scene in ${scenes//,/ }; do
  for lib in ours upstream; do
    [ "$which" = both ] || [ "$which" = "$lib" ] || continue
    for secs in "$SHORT" "$LONG"; do
      "$lib" "$scene" "$secs" "$out/$lib-$scene-$secs.out"
    done
    python3 bench/callgrind_frames.py "$out/$lib-$scene-$SHORT.out" \
      "$out/$lib-$scene-$LONG.out" --label "$lib $scene"
  done
done
