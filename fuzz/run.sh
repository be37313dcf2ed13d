#!/usr/bin/env bash
# Build the cargo-fuzz targets and run each for a bounded time.
#   fuzz/run.sh SECONDS [TARGET ...]     (targets: grammar request pipeline video)
# `make test` runs every target for 30 s; `make fuzz` for an hour each.
# The corpus lives outside the repo ($PIXMIRROR_FUZZ_CORPUS, default
# ~/.cache/pixmirror-fuzz) and grows from run to run; the seeds are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${PIXMIRROR_TOOLS:-$HOME/.cache/pixmirror-tools}"
export PATH="$tools/bin:$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2 --root "$tools"
fi
# cargo-fuzz passes -Z flags (AddressSanitizer, sanitizer coverage); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP, so no nightly is needed.
export RUSTC_BOOTSTRAP=1
# libvips warns on every broken input; the fuzzer's output stays readable.
export VIPS_WARNING=0
# Leaks reported from inside glib cannot be judged from their stack: fuzz/lsan.supp.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(grammar request pipeline video)
# A failed build prints rustc's whole command line last, which hides the cause
# from anyone reading the tail of a CI log: keep the build's output in a file
# and print its error lines and the free disk at the end.
log="$(mktemp)"
if ! cargo fuzz build -O >"$log" 2>&1; then
  echo "fuzz: the build failed; its error lines:"
  grep -E "^(error|warning: build failed)|panicked|LLVM ERROR|os error|No space|^ +--> " "$log" | cut -c1-300 | head -40 || true
  df -h . | tail -1 | awk '{print "fuzz: disk free where the build ran: " $4 " of " $2}'
  rm -f "$log"
  exit 1
fi
rm -f "$log"
# The hostile corpus of the tests (tests/fixtures/hostile/) seeds the pipeline
# target too, as its inputs are written: a process string, NUL, the file.
hostile="$(mktemp -d)"
trap 'rm -rf "$hostile"' EXIT
for f in tests/fixtures/hostile/*; do
  [ "$(basename "$f")" = README.md ] && continue
  { printf 'image/resize,w_100\0'; cat "$f"; } >"$hostile/$(basename "$f")"
done
for t in "${targets[@]}"; do
  corpus="${PIXMIRROR_FUZZ_CORPUS:-$HOME/.cache/pixmirror-fuzz}/$t"
  mkdir -p "$corpus"
  seeds=("fuzz/seeds/$t")
  [ "$t" = pipeline ] && seeds+=("$hostile")
  echo "fuzz: $t for ${secs}s (corpus $corpus)"
  # A crash, a leak, an input over 60 s or 2 GB fails the run and leaves the
  # input in fuzz/artifacts/$t/; replay it with `cargo fuzz run -O $t FILE`.
  status=0
  cargo fuzz run -O "$t" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
    2>&1 | { grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)|NEW_FUNC|^"' || true; } || status=$?
  [ "$status" -eq 0 ] || { echo "fuzz: $t FAILED (exit $status)"; exit 1; }
done
