#!/usr/bin/env bash
# Garage (a real S3-compatible server) for the tests, installed once into
# ~/.cargo/bin (never into the repo). The first build takes 15-30 minutes.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
if command -v garage >/dev/null 2>&1; then
  exit 0
fi
echo "install-garage: building garage 2.5.0 (first time only; 15-30 minutes)"
for attempt in 1 2 3; do
  if cargo install garage --version 2.5.0 --locked; then
    exit 0
  fi
  echo "install-garage: attempt $attempt failed, retrying" >&2
  sleep 5
done
exit 1
