# pixelflux — the two commands of the README:
#   make run    installs what is missing, builds, and streams this screen (or a demo scene)
#   make test   installs what is missing and runs every test
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps deps-test build build-bench lint test-rust test-python test-browser bench compare

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(CARGO) build --release -p pixelflux-cli

# Streams $DISPLAY (or a private Xvfb, or a demo scene) to browsers; prints the URL to open.
run: build
	target/release/pixelflux serve

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

# Python module tests: a private venv with the test tools, the module built in release mode
# and installed from this tree (`pip install .`), then pytest under private Xvfb servers.
PYTHON ?= python3
PY_VENV := .venv-test
PY_TEST_TOOLS := "maturin>=1.5,<2" "pytest>=7" "pytest-timeout>=2.1" "pillow>=9" "python-xlib>=0.33" \
  "websockets>=11"

test-python: deps-test
	@[ -x $(PY_VENV)/bin/python ] || $(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -q --disable-pip-version-check $(PY_TEST_TOOLS)
	PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" $(PY_VENV)/bin/python -m pip install -q \
	  --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps .
	$(PY_VENV)/bin/python -m pytest tests/python -q -rxX

# Browser tests of `pixelflux serve` in headless Chromium (Debian's /usr/bin/chromium, driven
# by playwright-core; nothing downloads a browser). Each test has 3 minutes; a skipped test
# counts as a failure (node --test itself exits 0 on skips).
BROWSER_TAP := $(CURDIR)/target/browser-tests.tap
test-browser: build
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	cd tests/browser && node --test --test-concurrency=1 --test-timeout=180000 \
	  --test-reporter=spec --test-reporter-destination=stdout \
	  --test-reporter=tap --test-reporter-destination=$(BROWSER_TAP)
	@grep -qx '# skipped 0' $(BROWSER_TAP) && grep -qx '# todo 0' $(BROWSER_TAP) || \
	  { echo "browser tests were skipped: a missing tool or feature is a failure" >&2; exit 1; }

# Every suite runs even when an earlier one fails; a summary lists each suite's status and
# time, and the exit status is non-zero if any failed. Each suite also has a hard time limit
# (scripts/test-all.sh), on top of the per-test limits.
test: deps-test
	@scripts/test-all.sh lint test-rust test-python test-browser

# Every scene, synthetic and X11 (a private Xvfb), JPEG and H.264: a table on stdout and
# target/bench.json. Arguments through BENCH_ARGS, e.g. make bench BENCH_ARGS="--seconds 2".
# The benchmark is its own dev-only binary (crates/pixelflux-bench), not part of `pixelflux`.
build-bench: deps
	$(CARGO) build --release -p pixelflux-bench

bench: build-bench
	target/release/pixelflux-bench --json target/bench.json $(BENCH_ARGS)

# Ours vs PyPI pixelflux 2.2.1 through Python on the same screens (downloads from PyPI; slow):
# target/compare/compare.json and docs/compare.svg. Not part of `make test`.
compare: build-bench deps-test
	python3 bench/compare.py $(COMPARE_ARGS)
