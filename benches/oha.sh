#!/usr/bin/env bash
# Load tests with oha, three scenarios on one machine (the fs store, loopback):
#   1. L1 hit             - the derivative is in this instance's memory
#   2. store hit          - after a restart with L1 off: every request reads the
#                           stored derivative (plus the revalidation HEAD)
#   3. cold processing    - L1 off and no write-back: every request runs libvips
# Usage: benches/oha.sh [DURATION] [CONCURRENCY] [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
DUR=${1:-10s}
CONC=${2:-32}
IMG=${3:-}
if [ -z "$IMG" ]; then
  if [ -f ../shared/images/photo-2mp.jpg ]; then IMG=../shared/images/photo-2mp.jpg; else IMG=tests/fixtures/dragonfly.jpg; fi
fi
BIN=target/release/pixmirror
[ -x "$BIN" ] || cargo build --release --locked
command -v oha >/dev/null || cargo install oha --locked
PORT=18080
ADMIN=18081
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/bucket/bench"
cp "$IMG" "$work/bucket/bench/photo.jpg"
cat > "$work/c.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"
[storage]
kind = "fs"
root = "$work/bucket"
[derivatives]
write = "sync"
TOML
start() {
  env "$@" MALLOC_ARENA_MAX=2 "$BIN" serve --config "$work/c.toml" 2>"$work/log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
URL="http://127.0.0.1:$PORT/bench/photo.jpg?x-oss-process=image/resize,w_300/format,webp"
summary() { grep -E "Requests/sec|Slowest|Fastest|Average|99.00%|Success rate|\[200\]|\[5..\]" ; }

echo "== source: $IMG ($(stat -c %s "$IMG") bytes), $DUR, $CONC connections, $(nproc) cores"
echo "== 1. L1 hit: oha -z $DUR -c $CONC '$URL'"
start
curl -sf -o /dev/null "$URL"
oha --no-tui -z "$DUR" -c "$CONC" "$URL" | summary
stop
echo "== 1b. L1 hit, revalidate = false"
start PIXMIRROR_DERIVATIVES__REVALIDATE=false
curl -sf -o /dev/null "$URL"
oha --no-tui -z "$DUR" -c "$CONC" "$URL" | summary
stop

echo "== 2. store hit after restart (cache.memory_bytes = 0, revalidate = true)"
start PIXMIRROR_CACHE__MEMORY_BYTES=0
curl -sf -o /dev/null -D - "$URL" | grep -i x-cache-status
oha --no-tui -z "$DUR" -c "$CONC" "$URL" | summary
stop
echo "== 2b. store hit, revalidate = false"
start PIXMIRROR_CACHE__MEMORY_BYTES=0 PIXMIRROR_DERIVATIVES__REVALIDATE=false
oha --no-tui -z "$DUR" -c "$CONC" "$URL" | summary
stop

echo "== 3. cold processing (cache.memory_bytes = 0, derivatives.store = false; a random width 100-999 per request, so requests rarely coalesce)"
start PIXMIRROR_CACHE__MEMORY_BYTES=0 PIXMIRROR_DERIVATIVES__STORE=false
RAND="http://127.0.0.1:$PORT/bench/photo.jpg\\?x-oss-process=image/resize,w_[1-9][0-9][0-9]/format,webp"
echo "oha -z $DUR -c $CONC --rand-regex-url '$RAND'"
oha --no-tui -z "$DUR" -c "$CONC" --rand-regex-url "$RAND" | summary
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -E "^pixmirror_(processed_total|busy_total|requests_total)" || true
stop
