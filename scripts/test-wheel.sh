#!/usr/bin/env bash
# Tests one built wheel as a user would get it: a clean venv (no compiler, no repository on
# sys.path), `pip install <wheel>`, and the system's libx264 hidden from the loader, so only
# the copy inside the wheel can serve H.264; then the example examples/screen_to_browser.py
# streams H.264 from a private Xvfb to a WebSocket viewer.
#
#   scripts/test-wheel.sh WHEEL [PYTHON]      (PYTHON defaults to python3)
#
# Hiding libx264 needs a private mount namespace (`unshare -m`, as root): every libx264.so*
# the loader could find is covered by an empty file inside that namespace only.
# Checks: tests/wheel/test_installed_wheel.py (the wheel's own libx264 serves H.264),
# tests/python/test_packaging.py and, unless NO_GPL, tests/python/test_example.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHEEL=$(realpath "$1")
PY=${2:-python3}
VENV=$(mktemp -d /tmp/pixelflux-wheel-test.XXXXXX)
trap 'rm -rf "$VENV"' EXIT

echo "== test $(basename "$WHEEL") with $("$PY" --version)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$WHEEL" \
  "pytest>=7" "pytest-timeout>=2.1" "pillow>=9" "python-xlib>=0.33" "websockets>=11"

# Every libx264 shared object the dynamic loader knows of, or finds in the usual folders.
mapfile -t LIBS < <( { ldconfig -p | awk '/libx264\.so/ {print $NF}';
  ls /lib/*/libx264.so* /usr/lib/*/libx264.so* /usr/lib/libx264.so* /usr/local/lib/libx264.so* 2>/dev/null; } |
  xargs -r realpath -e 2>/dev/null | sort -u)
echo "hiding: ${LIBS[*]:-(no system libx264)}"

# ffmpeg (the tests decode H.264 with it) links the system libx264 too: it gets a copy of
# its own, through a wrapper first on PATH, so that only ffmpeg can load it.
FFMPEG=$(command -v ffmpeg) || { echo "test-wheel: ffmpeg is needed (make deps-test)" >&2; exit 1; }
mkdir -p "$VENV/ffmpeg-libs" "$VENV/ffmpeg-bin"
for lib in "${LIBS[@]}"; do cp "$lib" "$VENV/ffmpeg-libs/"; done
printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$VENV/ffmpeg-libs" "$FFMPEG" > "$VENV/ffmpeg-bin/ffmpeg"
chmod +x "$VENV/ffmpeg-bin/ffmpeg"
export PATH="$VENV/ffmpeg-bin:$PATH"

export VENV ROOT
# The run: from a folder outside the repository, so `import pixelflux` finds only the wheel.
unshare -m bash -euo pipefail -c '
  for lib in "$@"; do mount --bind /dev/null "$lib"; done
  cd /tmp
  # The system library is really gone in here ...
  if "$VENV/bin/python" -c "import ctypes; ctypes.CDLL(\"libx264.so.164\")" 2>/dev/null; then
    echo "libx264 is still loadable: the test would prove nothing" >&2; exit 1
  fi
  tests=("$ROOT/tests/wheel/test_installed_wheel.py" "$ROOT/tests/python/test_packaging.py")
  # The example streams H.264, which a NO_GPL wheel refuses (test_packaging checks that).
  [[ ${PIXELFLUX_WHEEL_NOGPL:-0} == 1 ]] || tests+=("$ROOT/tests/python/test_example.py")
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$ROOT/tests" "${tests[@]}"
' _ "${LIBS[@]}"
echo "== ok: $(basename "$WHEEL") with $("$PY" --version)"
