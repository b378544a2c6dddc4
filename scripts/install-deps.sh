#!/usr/bin/env bash
# Installs the system packages pixelflux needs that are missing, and nothing else.
#   scripts/install-deps.sh run    what `make run` needs (build + a virtual display)
#   scripts/install-deps.sh test   what `make test` needs on top (decoders, browser, Python)
#   scripts/install-deps.sh bench  what `make bench`'s real applications need on top
# On Debian/Ubuntu it uses apt-get (as root, or through sudo); elsewhere it prints the list.
set -euo pipefail

mode=${1:-run}
run_pkgs=(build-essential pkg-config cmake nasm libclang-dev libx264-dev xvfb x11-utils xterm)
test_pkgs=(ffmpeg chromium python3-dev python3-venv nodejs x11-xserver-utils xclip x11-apps)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")
# The benchmark's real applications: xterm, xclock (x11-apps), ffplay and ffmpeg (ffmpeg).
[ "$mode" = bench ] && pkgs+=(ffmpeg xterm x11-apps)

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust from https://rustup.rs first" >&2
  exit 1
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "Not a Debian/Ubuntu system: install the equivalents of: ${pkgs[*]}" >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Browser tests run under node + npm; Debian ships npm apart from nodejs, NodeSource within it.
if [ "$mode" = test ] && ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing packages: ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "Need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
