#!/usr/bin/env bash
# What `make test` runs: start Garage, run every test against it, stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
# The code's shape (ARCHITECTURE.md): no import cycle, no arrow up the layers,
# process/ and config/ without I/O, no function past 80 lines or file past 500.
command -v python3 >/dev/null || bash deploy/install-deps.sh python3
python3 tests/support/structure.py --check
dir="$(pwd)/.test-tmp/garage"
trap 'tests/support/garage.sh stop "$dir"' EXIT
eval "$(tests/support/garage.sh start "$dir")"
echo "garage up at $PIXMIRROR_TEST_S3_ENDPOINT"
# tests/fleet.rs puts three instances behind a real nginx (deploy/nginx).
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || bash deploy/install-deps.sh nginx
# tests/scans.rs writes its progressive JPEG corpus with libjpeg-turbo's own tools.
command -v cjpeg >/dev/null && command -v jpegtran >/dev/null || bash deploy/install-deps.sh libjpeg-turbo-progs
# tests/heif.rs writes HEIC files with and without a thumbnail with heif-enc.
command -v heif-enc >/dev/null || bash deploy/install-deps.sh libheif-examples
# tests/placeholders.rs decodes thumbhash/blurhash strings with the reference
# JavaScript implementations; tests/browser.rs drives Debian's Chromium with
# playwright-core. The npm packages go outside the repository.
command -v chromium >/dev/null || bash deploy/install-deps.sh chromium
npm_dir="${PIXMIRROR_TOOLS:-$HOME/.cache/pixmirror-tools}/npm"
npm_pkgs="thumbhash@0.1.1 blurhash@2.0.5 playwright-core@1.65.2"
if [ ! -f "$npm_dir/.installed" ] || [ "$(cat "$npm_dir/.installed")" != "$npm_pkgs" ]; then
  command -v npm >/dev/null || bash deploy/install-deps.sh nodejs npm
  mkdir -p "$npm_dir"
  for attempt in 1 2 3; do
    # shellcheck disable=SC2086
    (cd "$npm_dir" && npm install --no-audit --no-fund --silent $npm_pkgs) &&
      echo "$npm_pkgs" >"$npm_dir/.installed" && break
    echo "npm install failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 5))
  done
fi
export PIXMIRROR_NODE_MODULES="$npm_dir/node_modules"
# tests/video.rs writes its videos (H.264, H.265; MP4, MOV, Matroska) with ffmpeg.
command -v ffmpeg >/dev/null || bash deploy/install-deps.sh ffmpeg
cargo test --all-targets -- --test-threads=4 "$@"
# The deployment artifacts (systemd, container, Kubernetes, ...), each through
# the tool its users run it with.
bash tests/ops/check.sh
# Each fuzz target for a short, bounded time (the hour-long runs: `make fuzz`).
bash fuzz/run.sh "${PIXMIRROR_FUZZ_SECONDS:-30}"
