#!/usr/bin/env bash
# Side-by-side benchmark: pixmirror vs ipx (sharp), sharp on node:http and thumbor, one
# server at a time on 127.0.0.1, driven by wrk. See README.md beside this file.
#
#   bash benches/peers/run.sh                 # everything (cold on 7 images + zipf), ~14 min
#   bash benches/peers/run.sh --quick         # smoke test: 3 s runs, 2 images
#   bash benches/peers/run.sh --scenario cold --duration 30 --images photo-1200.jpg
#
# Options (flag or environment variable):
#   --duration S      DURATION      seconds per load run (15; quick: 3)
#   --connections N   CONNECTIONS   wrk connections (4)
#   --threads N       THREADS       wrk threads (2)
#   --image-dir DIR   IMAGE_DIR     benchmark photos (../shared/images beside the repo, else tests/fixtures)
#   --images A,B      IMAGES        file names in IMAGE_DIR, or absolute paths
#   --scenario S      SCENARIO      cold | zipf | all (all)
#   --servers A,B     SERVERS       pixmirror,ipx,sharp,thumbor (all four; zipf has no plain sharp)
#   --quick           QUICK=1       3 s runs, 2 images
#   --results DIR     RESULTS_DIR   where results go ($PIXMIRROR_PEERS_DIR/results/<date>)
#   --no-install      NO_INSTALL=1  fail instead of installing what is missing
#                     KEEP_WORK=1   keep configs, caches and Garage data under the results dir
# Peers are installed once into ${PIXMIRROR_PEERS_DIR:-$HOME/.cache/pixmirror-peers}.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

PEERS=${PIXMIRROR_PEERS_DIR:-$HOME/.cache/pixmirror-peers}
DURATION=${DURATION:-}
CONNECTIONS=${CONNECTIONS:-4}
THREADS=${THREADS:-2}
IMAGE_DIR=${IMAGE_DIR:-}
IMAGES=${IMAGES:-}
SCENARIO=${SCENARIO:-all}
SERVERS=${SERVERS:-pixmirror,ipx,sharp,thumbor}
QUICK=${QUICK:-0}
RESULTS_DIR=${RESULTS_DIR:-}
NO_INSTALL=${NO_INSTALL:-0}
IPX_VERSION=${IPX_VERSION:-3.1.1}
SHARP_VERSION=${SHARP_VERSION:-0.34.5}     # the sharp ipx 3.1 depends on: one libvips for both
THUMBOR_VERSION=${THUMBOR_VERSION:-7.8.0}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --image-dir) IMAGE_DIR=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --scenario) SCENARIO=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --no-install) NO_INSTALL=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
DURATION=${DURATION%s}
[ -n "$DURATION" ] || { [ "$QUICK" = 1 ] && DURATION=3 || DURATION=15; }
case "$SCENARIO" in cold|zipf|all) ;; *) echo "--scenario: cold, zipf or all" >&2; exit 2 ;; esac

if [ -z "$IMAGE_DIR" ]; then
  if [ -d "$REPO/../shared/images" ]; then IMAGE_DIR=$REPO/../shared/images; else IMAGE_DIR=$REPO/tests/fixtures; fi
fi
IMAGE_DIR=$(cd "$IMAGE_DIR" && pwd)
# FILE's progressive copy, written once beside the peers (jpegtran from Debian's
# libjpeg-turbo-progs); prints its path.
progressive_copy() {
  command -v jpegtran >/dev/null || bash "$REPO/deploy/install-deps.sh" libjpeg-turbo-progs >&2
  local out="$PEERS/images/$(basename "${1%.*}")_progressive.jpg"
  mkdir -p "$PEERS/images"
  [ -s "$out" ] || jpegtran -copy all -progressive "$1" >"$out"
  echo "$out"
}
if [ -z "$IMAGES" ]; then
  want="photo-1200.jpg photo-2mp.jpg Kleiber_by_Lukas_Baubkus.jpg Dragonfly_by_Bolly.jpg Kay_5120x2880.png Elephants_3840x2160.jpg"
  [ "$QUICK" = 1 ] && want="photo-1200.jpg Dragonfly_by_Bolly.jpg"
  for f in $want; do if [ -f "$IMAGE_DIR/$f" ]; then IMAGES="${IMAGES:+$IMAGES,}$f"; fi; done
  # A progressive copy of the 20 MP baseline photo (libjpeg's script, as
  # `jpegtran -progressive` writes it), by absolute path.
  if [ "$QUICK" != 1 ] && [ -f "$IMAGE_DIR/Kleiber_by_Lukas_Baubkus.jpg" ]; then
    IMAGES="$IMAGES,$(progressive_copy "$IMAGE_DIR/Kleiber_by_Lukas_Baubkus.jpg")"
  fi
  if [ -z "$IMAGES" ]; then   # e.g. tests/fixtures
    want="dragonfly.jpg sunset.jpg gulp.png"; [ "$QUICK" = 1 ] && want="dragonfly.jpg sunset.jpg"
    for f in $want; do if [ -f "$IMAGE_DIR/$f" ]; then IMAGES="${IMAGES:+$IMAGES,}$f"; fi; done
  fi
fi
[ -n "$IMAGES" ] || { echo "no images found in $IMAGE_DIR; pass --images" >&2; exit 2; }

log() { echo "peers: $*" >&2; }
timed() { local t0=$SECONDS; "$@"; log "  ($(( SECONDS - t0 )) s)"; }
need_install() { if [ "$NO_INSTALL" = 1 ]; then echo "missing: $1 (and --no-install given)" >&2; exit 1; fi; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# ---- system packages: wrk, nginx (and node when missing)
apt_install() {
  need_install "$*"
  log "apt-get install $*"
  local i
  for i in 1 2 3; do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; then return 0; fi
    log "apt-get install failed (attempt $i); apt-get update and retry"
    $SUDO apt-get update -q >/dev/null || true
    sleep $((i * 5))
  done
  echo "could not install $*" >&2; exit 1
}
NGINX=$(command -v nginx || true)
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
pkgs=()
command -v wrk >/dev/null || pkgs+=(wrk)
[ -n "$NGINX" ] || pkgs+=(nginx-light)
command -v node >/dev/null || pkgs+=(nodejs npm)
[ "${#pkgs[@]}" = 0 ] || timed apt_install "${pkgs[@]}"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

mkdir -p "$PEERS"
# ---- ipx + sharp (npm), into $PEERS/node
node_ok() {
  PEERS="$PEERS" node -e "
    const fs = require('fs'), nm = process.env.PEERS + '/node/node_modules/';
    const v = (p) => JSON.parse(fs.readFileSync(nm + p + '/package.json', 'utf8')).version;
    if (v('ipx') !== '$IPX_VERSION' || v('sharp') !== '$SHARP_VERSION') process.exit(1);
    require(nm + 'sharp'); require(nm + 'ipx');" 2>/dev/null
}
if ! node_ok; then
  need_install "ipx/sharp in $PEERS/node"
  log "npm install ipx@$IPX_VERSION sharp@$SHARP_VERSION into $PEERS/node"
  mkdir -p "$PEERS/node"
  [ -f "$PEERS/node/package.json" ] || echo '{"name":"pixmirror-peers","private":true}' > "$PEERS/node/package.json"
  for i in 1 2 3; do
    if (cd "$PEERS/node" && timed npm install --no-audit --no-fund --loglevel=error \
          "ipx@$IPX_VERSION" "sharp@$SHARP_VERSION" >&2); then break; fi
    [ "$i" = 3 ] && { echo "npm install failed" >&2; exit 1; }
    sleep $((i * 5))
  done
  node_ok || { echo "ipx/sharp installed but do not load" >&2; exit 1; }
fi

# ---- thumbor + the harness's own Python deps (numpy, Pillow, boto3), into $PEERS/venv
PY=$PEERS/venv/bin/python
py_ok() {
  "$PY" -c "
import thumbor, numpy, PIL, boto3, sys
sys.exit(thumbor.__version__ != '$THUMBOR_VERSION')" 2>/dev/null
}
if ! py_ok; then
  need_install "thumbor venv in $PEERS/venv"
  log "python venv with thumbor==$THUMBOR_VERSION numpy pillow boto3 into $PEERS/venv"
  [ -x "$PY" ] || ${PYTHON:-python3} -m venv "$PEERS/venv"
  for i in 1 2 3; do
    if timed "$PY" -m pip install -q "thumbor==$THUMBOR_VERSION" numpy pillow boto3 >&2; then break; fi
    [ "$i" = 3 ] && { echo "pip install failed" >&2; exit 1; }
    sleep $((i * 5))
  done
  py_ok || { echo "thumbor installed but does not import" >&2; exit 1; }
fi

# ---- pixmirror
BIN=${PIXMIRROR_BIN:-$REPO/target/release/pixmirror}
if [[ ",$SERVERS," == *,pixmirror,* ]] && [ ! -x "$BIN" ]; then
  need_install "pixmirror release binary"
  log "building pixmirror (cargo build --release --locked)"
  (cd "$REPO" && timed cargo build --release --locked)
fi

# ---- Garage (zipf scenario only): the repo's installer, ~/.cargo/bin/garage
GARAGE=""
if [ "$SCENARIO" != cold ]; then
  if ! command -v garage >/dev/null; then
    need_install "garage"
    log "installing Garage (tests/support/install-garage.sh; a first build takes 15-30 minutes)"
    timed bash "$REPO/tests/support/install-garage.sh" >&2
  fi
  GARAGE=$(command -v garage)
fi

# ---- run
RESULTS_DIR=${RESULTS_DIR:-$PEERS/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS_DIR"
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
log "results: $RESULTS_DIR"

child=""
cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$PY" "$HERE/bench.py" \
  --peers-dir "$PEERS" --results "$RESULTS_DIR" --image-dir "$IMAGE_DIR" --images "$IMAGES" \
  --duration "$DURATION" --connections "$CONNECTIONS" --threads "$THREADS" --scenario "$SCENARIO" \
  --servers "$SERVERS" --pixmirror "$BIN" --wrk "$(command -v wrk)" --nginx "$NGINX" --garage "$GARAGE" \
  ${KEEP_WORK:+--keep-work} &
child=$!
wait "$child"
