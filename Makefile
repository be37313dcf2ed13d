# The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
SAMPLES := dragonfly.jpg sunset.jpg gulp.png rotated-exif6.jpg

.PHONY: run test deps garage build release samples lint bench fmt fuzz

deps:
	@bash deploy/install-deps.sh

garage:
	@bash tests/support/install-garage.sh

release: deps
	cargo build --release --locked

samples:
	@mkdir -p data/bucket/samples
	@for f in $(SAMPLES); do cp -n tests/fixtures/$$f data/bucket/samples/$$f 2>/dev/null || true; done

## Install what is missing, build, serve the bundled samples on 127.0.0.1:8080 (admin :8081).
run: release samples
	./target/release/pixmirror serve --config config.toml

## Install what is missing, start Garage, run every test.
test: deps garage
	bash tests/support/run-tests.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings

## Benchmarks: the pipeline against the libvips ceiling, then pixmirror against its peers.
bench: release
	cargo bench --locked --bench pipeline
	bash benches/peers/run.sh

## Fuzz every target for an hour each (FUZZ_SECONDS to change); see fuzz/README.md.
FUZZ_SECONDS ?= 3600
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)
