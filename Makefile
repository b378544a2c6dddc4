# pixelflux — the two commands of the README:
#   make run    installs what is missing, builds, and streams this screen (or a demo scene)
#   make test   installs what is missing and runs every test
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps deps-test build build-bench lint test-rust test-nogpl test-python test-browser test-selkies bench compare docs-check wheels fuzz soak

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(CARGO) build --release -p pixelflux-cli

# Streams $DISPLAY (or a private Xvfb with a terminal, or a demo scene) to browsers; prints the
# URL to open.
run: build
	target/release/pixelflux serve

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

# The core without GPL code (no libx264; H.264 refused by name): it must build and pass.
test-nogpl:
	$(CARGO) clippy -p pixelflux --no-default-features --all-targets -- -D warnings
	$(CARGO) test -p pixelflux --no-default-features

# Python module tests: a private venv with the test tools, the module built in release mode
# and installed from this tree (`pip install .`), then pytest under private Xvfb servers.
PYTHON ?= python3
PY_VENV := .venv-test
PY_TEST_TOOLS := "maturin>=1.9.4,<2" "pytest>=7" "pytest-timeout>=2.1" "pillow>=9" "python-xlib>=0.33" \
  "websockets>=11"

test-python: deps-test
	@[ -x $(PY_VENV)/bin/python ] || $(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -q --disable-pip-version-check $(PY_TEST_TOOLS)
	PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" $(PY_VENV)/bin/python -m pip install -q \
	  --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps .
	$(PY_VENV)/bin/python -m pytest tests/python -q -rxX

# Selkies 2.1.0 (PyPI, with its dependencies) on our module, its web client in headless
# Chromium (tests/selkies). Not part of `make test`: it installs from PyPI. Our wheel goes in
# first: its version 2.2.1+rs.… satisfies Selkies' pin pixelflux==2.2.1, so pip keeps it and
# does not fetch upstream's (checked after the install).
SELKIES_VENV := .venv-selkies

test-selkies: test-python
	@[ -x $(SELKIES_VENV)/bin/python ] || $(PYTHON) -m venv $(SELKIES_VENV)
	rm -rf target/selkies-wheel
	$(PY_VENV)/bin/maturin build -q --release --auditwheel skip -o target/selkies-wheel \
	  -i $(SELKIES_VENV)/bin/python
	$(SELKIES_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps \
	  --force-reinstall target/selkies-wheel/*.whl
	$(SELKIES_VENV)/bin/python -m pip install -q --disable-pip-version-check selkies==2.1.0
	$(SELKIES_VENV)/bin/python -c "import importlib.metadata as m, sys; v = m.version('pixelflux'); \
	  sys.exit(0 if '+rs.' in v else 'pip replaced our pixelflux with ' + v)"
	$(SELKIES_VENV)/bin/python -m pip check
	cd tests/browser && npm ci --no-audit --no-fund
	SELKIES_PYTHON=$(CURDIR)/$(SELKIES_VENV)/bin/python $(PY_VENV)/bin/python -m pytest tests/selkies -q -s

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
	@scripts/test-all.sh lint test-rust test-nogpl docs-check test-python test-browser

# Every scene, synthetic and X11 (a private Xvfb), JPEG and H.264, and the real applications
# (xterm scrolling a log, xclock, ffplay playing a clip; X11 only): a table on stdout and
# target/bench.json. Arguments through BENCH_ARGS, which replace the default list, e.g.
# make bench BENCH_ARGS="--seconds 2 --app terminal". Then fidelity through the browser
# (tests/browser/fidelity-bench.mjs): canvas PSNR at first paint and after 2 s still,
# target/fidelity.json.
BENCH_ARGS ?= --scene static,typing,scroll,video,full,desktop --app terminal,clock,video
# The benchmark is its own dev-only binary (crates/pixelflux-bench), not part of `pixelflux`.
build-bench: deps
	$(CARGO) build --release -p pixelflux-bench

bench: build-bench build
	@scripts/install-deps.sh bench
	target/release/pixelflux-bench --json target/bench.json $(BENCH_ARGS)
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	cd tests/browser && node fidelity-bench.mjs

# Ours vs PyPI pixelflux 2.2.1 through Python on the same screens (downloads from PyPI; slow):
# target/compare/compare.json and docs/compare.svg. Not part of `make test`.
compare: build-bench deps-test
	python3 bench/compare.py $(COMPARE_ARGS)

# The docs match the code: every command shown in README.md, LICENSES.md and docs/*.md is run
# with --help (or its target, package, test or file looked up), and the list of bundled
# third-party licences is current.
docs-check:
	$(CARGO) test -p pixelflux-cli --test docs_commands
	python3 scripts/third-party-licenses.py --check

# Python wheels into target/wheels/: abi3 (CPython >= 3.11) and per-version 3.9/3.10, manylinux
# with libx264 bundled, each tested in a clean venv with the system libx264 hidden (needs root
# for `unshare -m`). NO_GPL=1 builds them without x264; see scripts/build-wheels.sh.
wheels: deps-test
	scripts/build-wheels.sh

# Fuzz every parser of client input in `serve` (fuzz/: WebSocket messages, the WxH+X+Y region,
# token/Host/Origin checks) with libFuzzer for FUZZ_SECONDS each (needs the nightly toolchain;
# installs cargo-fuzz once). Not part of `make test`. Crashes land in fuzz/artifacts/. The first
# build instruments the whole library (about 25 min on 2 busy cores); later ones take a minute.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := client_message region request_checks
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 || exit 1; \
	done

# Soak: `serve` on full motion (1280x720 @30, JPEG) with a normal and a slow (64 KiB/s) viewer
# for SOAK_SECONDS (default 10 min); RSS, fds and threads sampled every 5 s must stay flat
# after the warm-up. Not part of `make test`.
SOAK_SECONDS ?= 600
soak: build
	node scripts/soak.mjs $(SOAK_SECONDS) target/release/pixelflux
