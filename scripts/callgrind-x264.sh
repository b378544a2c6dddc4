#!/usr/bin/env bash
# Instructions per picture (valgrind --tool=callgrind: deterministic, unlike wall time on a
# shared machine) and bytes of the H.264 stripe encoders under x264's motion-search settings,
# on the synthetic scenes at 1920x1080 in the 2-core layout (two stripes, 544 + 536 rows).
# Each case runs SHORT and LONG pictures; the difference over LONG - SHORT pictures leaves out
# start-up and the first (IDR) picture. See docs/PERFORMANCE.md ("Instruction counts").
#
#   scripts/callgrind-x264.sh [scenes (scroll,full)] [searches (screen,umh,dia,dia-mbinfo,umh-mbinfo)]
set -eu
cd "$(dirname "$0")/.."
scenes=${1:-scroll,full}
searches=${2:-screen,umh,dia,dia-mbinfo}
SHORT=${SHORT:-4}
LONG=${LONG:-20}
out=${OUT:-target/callgrind}
mkdir -p "$out"
exe=${EXE:-$(cargo test --release -p pixelflux --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="pixelflux" and m["profile"]["test"]:
        print(m["executable"])' | tail -1)}
run() { # scene search frames -> "x264_instructions total_instructions bytes"
  local f="$out/x264-$1-$2-$3.out"
  local bytes
  bytes=$(PIXELFLUX_CG_SCENE=$1 PIXELFLUX_CG_SEARCH=$2 PIXELFLUX_CG_FRAMES=$3 \
    valgrind --tool=callgrind --callgrind-out-file="$f" "$exe" --ignored --exact \
    encode::h264::tests::callgrind_x264_settings --nocapture --test-threads=1 2>/dev/null |
    sed -n 's/.*bytes after the first \([0-9]*\).*/\1/p')
  local x264 total
  x264=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
    awk '/[?]:x264_encoder_encode \[/ && !done {gsub(",","",$1); print $1; done=1}')
  total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}')
  echo "$x264 $total $bytes"
}
echo "| scene | x264 search | x264 M instr/picture | all M instr/picture | bytes/picture |"
echo "|---|---|---:|---:|---:|"
for scene in ${scenes//,/ }; do
  for search in ${searches//,/ }; do
    read -r xs ts bs < <(run "$scene" "$search" "$SHORT")
    read -r xl tl bl < <(run "$scene" "$search" "$LONG")
    n=$((LONG - SHORT))
    awk -v s="$scene" -v m="$search" -v xs="$xs" -v xl="$xl" -v ts="$ts" -v tl="$tl" \
      -v bs="$bs" -v bl="$bl" -v n="$n" \
      'BEGIN {printf "| %s | %s | %.1f | %.1f | %d |\n", s, m, (xl-xs)/n/1e6, (tl-ts)/n/1e6, (bl-bs)/n}'
  done
done
