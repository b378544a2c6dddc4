# pixelflux — the two commands of the README:
#   make run    installs what is missing, builds, and streams this screen (or a demo scene)
#   make test   installs what is missing and runs every test
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps deps-test build lint test-rust test-python test-browser bench

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(CARGO) build --release -p pixelflux-cli

run: build
	target/release/pixelflux capture --seconds 10

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

# Python module tests (pytest under Xvfb); filled in by the Python package.
test-python:
	@true

# Browser tests (headless Chromium) of `pixelflux serve`.
test-browser:
	@true

test: deps-test lint test-rust test-python test-browser

bench: build
	target/release/pixelflux bench
