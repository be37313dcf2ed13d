#!/usr/bin/env bash
# Start a single-node Garage on loopback for the tests, with:
#   bucket "images"  (key "pixmirror", read/write)   -> PIXMIRROR_TEST_S3_*
#   bucket "legacy"  (same key; mirror S3 origin tests)
#   key "readonly"   (read-only on "images"; the failing-writes tests)
# Usage: garage.sh start DIR  (prints `export` lines)   |   garage.sh stop DIR
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cmd=$1; dir=$2
S3_PORT=${PIXMIRROR_TEST_S3_PORT:-3900}
RPC_PORT=$((S3_PORT + 1))
case "$cmd" in
stop)
  if [ -f "$dir/garage.pid" ]; then kill "$(cat "$dir/garage.pid")" 2>/dev/null || true; fi
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
if [ -f "$dir/garage.pid" ]; then kill "$(cat "$dir/garage.pid")" 2>/dev/null || true; sleep 0.3; fi
rm -rf "$dir"; mkdir -p "$dir/meta" "$dir/data"
AK=GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SK=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
RO_AK=GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
RO_SK=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
TOML
GARAGE_DEFAULT_ACCESS_KEY=$AK GARAGE_DEFAULT_SECRET_KEY=$SK GARAGE_DEFAULT_BUCKET=images \
  nohup garage -c "$dir/garage.toml" server --single-node --default-bucket > "$dir/garage.log" 2>&1 &
echo $! > "$dir/garage.pid"
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then break; fi
  if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
    echo "garage exited; its log:" >&2; tail -20 "$dir/garage.log" >&2; exit 1
  fi
  sleep 0.1
done
g() { garage -c "$dir/garage.toml" "$@" >> "$dir/setup.log" 2>&1; }
for _ in $(seq 1 50); do g bucket info images && break; sleep 0.2; done
g bucket create legacy
g bucket allow --read --write --owner legacy --key "$AK"
g key import --yes -n readonly "$RO_AK" "$RO_SK"
g bucket allow --read images --key readonly
cat <<ENV
export PIXMIRROR_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export PIXMIRROR_TEST_S3_REGION=garage
export PIXMIRROR_TEST_S3_BUCKET=images
export PIXMIRROR_TEST_S3_LEGACY_BUCKET=legacy
export PIXMIRROR_TEST_S3_ACCESS_KEY=$AK
export PIXMIRROR_TEST_S3_SECRET_KEY=$SK
export PIXMIRROR_TEST_S3_RO_ACCESS_KEY=$RO_AK
export PIXMIRROR_TEST_S3_RO_SECRET_KEY=$RO_SK
ENV
