#!/usr/bin/env bash
# Install what pixmirror needs to build and run on Debian 12 (as root, or with sudo):
# libvips (with its headers), FFmpeg's libraries for video snapshots (Debian 12:
# FFmpeg 5.1, with headers), pkg-config and the fonts of text watermarks. apt is retried: a mirror hiccup once
# failed an install part-way here. Extra Debian packages named as arguments are
# installed too (tests/ops/check.sh passes the tools it lacks).
#   deploy/install-deps.sh [PACKAGE ...]
set -euo pipefail

need=("$@")
pkg-config --exists vips 2>/dev/null || need+=(libvips-dev)
# Video snapshots (src/process/video/shim.c, built by build.rs).
pkg-config --exists libavformat 2>/dev/null || need+=(libavformat-dev)
pkg-config --exists libavcodec 2>/dev/null || need+=(libavcodec-dev)
pkg-config --exists libswscale 2>/dev/null || need+=(libswscale-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
# Fonts for text watermarks (process::plan::watermark::Font maps OSS's font names onto
# them); the container's runtime stage installs the same list.
FONTS="fonts-wqy-zenhei fonts-wqy-microhei fonts-droid-fallback fonts-arphic-ukai fonts-arphic-uming"
for font in $FONTS; do
  dpkg -s "$font" >/dev/null 2>&1 || need+=("$font")
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${need[*]}"
for attempt in 1 2 3 4 5; do
  if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
     $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; then
    exit 0
  fi
  echo "install-deps: apt-get failed (attempt $attempt), retrying" >&2
  $SUDO dpkg --configure -a || true
  sleep $((attempt * 5))
done
echo "install-deps: could not install ${need[*]}" >&2
exit 1
