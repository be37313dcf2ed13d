#!/usr/bin/env bash
# Check every deployment artifact with the tool its users will run it through.
# `make test` runs this after the cargo tests (it needs target/debug/pixmirror).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$(bash tests/ops/tools.sh)"
px="$(realpath "${PIXMIRROR_BIN:-target/debug/pixmirror}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { echo "ops: $*"; }

step "systemd: systemd-analyze verify deploy/systemd/pixmirror.service"
# verify insists that ExecStart's binary exists: point it at the one just built.
sed "s#/usr/local/bin/pixmirror#$px#g" deploy/systemd/pixmirror.service >"$work/pixmirror.service"
out="$(systemd-analyze verify "$work/pixmirror.service" 2>&1)" || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "$out"; echo "ops: systemd-analyze verify is not clean"; exit 1; }
step "systemd: the syscalls of a mixed load lie inside the unit's SystemCallFilter"
"$venv/python" tests/ops/syscalls.py "$px" deploy/systemd/pixmirror.service

step "container: hadolint deploy/docker/Dockerfile"
"$venv/hadolint" deploy/docker/Dockerfile
step "container: package names in step with deploy/install-deps.sh"
build_stage="$(sed -n '/^FROM .* AS build/,/^FROM /p' deploy/docker/Dockerfile)"
for pkg in $(grep -oE 'need\+=\(([a-z0-9.+-]+)\)' deploy/install-deps.sh | sed -E 's/need\+=\((.*)\)/\1/'); do
  [ "$pkg" = curl ] && continue  # the scripts' own downloads, not the build's
  grep -q -- "$pkg" <<<"$build_stage" || { echo "ops: Dockerfile build stage lacks $pkg"; exit 1; }
done
runtime_stage="$(sed -n '/^FROM debian/,$p' deploy/docker/Dockerfile)"
for lib in libvips42 libavformat59 libavcodec59 libswscale6; do
  grep -q "$lib" <<<"$runtime_stage" || { echo "ops: runtime stage lacks $lib"; exit 1; }
done
for font in $(sed -n 's/^FONTS="\(.*\)"$/\1/p' deploy/install-deps.sh); do
  grep -q -- "$font" <<<"$runtime_stage" || { echo "ops: runtime stage lacks $font"; exit 1; }
done
if grep -qE '[a-z0-9]-dev( |$)' <<<"$runtime_stage"; then echo "ops: a -dev package in the runtime stage"; exit 1; fi
step "container: its ENV names real config keys and the bundled config.toml loads"
envs=()
while read -r kv; do envs+=("$kv"); done < <(sed -n '/^ENV /,/^[A-Z]/p' deploy/docker/Dockerfile |
  grep -oE 'PIXMIRROR_[A-Z_]+=[^ \\]+')
env "${envs[@]}" "$px" check-config --config config.toml | grep -q 'listen 0.0.0.0:8080, admin 0.0.0.0:8081' ||
  { echo "ops: the Dockerfile's ENV does not set the listeners"; exit 1; }

# kustomize v5 renders each kustomization without a word on stderr: a
# deprecated field (`bases`, `commonLabels`, `patchesStrategicMerge`) warns.
kustomize_build() {
  "$venv/kustomize" build "$1" >"$2" 2>"$work/kustomize.err" || { cat "$work/kustomize.err"; exit 1; }
  if [ -s "$work/kustomize.err" ]; then echo "ops: kustomize build $1 warns:"; cat "$work/kustomize.err"; exit 1; fi
}
for k in base overlays/production; do
  step "kubernetes: kustomize build k8s/$k (no warning) | kubernetes-validate --strict"
  out="$work/$(basename "$k").yaml"
  kustomize_build "k8s/$k" "$out"
  "$venv/kubernetes-validate" --strict --quiet "$out"
  "$venv/python" tests/ops/k8s_check.py "$out"
  "$venv/python" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap":
        open(sys.argv[2], "w").write(d["data"]["config.toml"])' "$out" "$work/config.toml"
  "$px" check-config --config "$work/config.toml"
done
step "kubernetes: k8s/envoy (consistent hashing in front of the pods) | kubernetes-validate --strict"
kustomize_build k8s/envoy "$work/envoy.yaml"
"$venv/kubernetes-validate" --strict --quiet "$work/envoy.yaml"
"$venv/python" tests/ops/envoy_check.py "$work/envoy.yaml" "$work/base.yaml"
step "nginx: nginx -t on deploy/nginx/pixmirror.conf (tests/fleet.rs runs it for real)"
mkdir -p "$work/nginx"
printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp { access_log off; include %s/deploy/nginx/pixmirror.conf; }\n' \
  "$work/nginx" "$work/nginx" "$PWD" >"$work/nginx/nginx.conf"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
"$nginx_bin" -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf"
step "cloudfront: the Accept-normalising function (node --test)"
node --test tests/ops/cloudfront.test.js
step "aws: CloudFront policies, function and IAM policy against the AWS API models"
"$venv/python" tests/ops/aws_check.py

step "prometheus: promtool check rules + test rules (deploy/prometheus/alerts.yml)"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules tests/ops/alerts_test.yml
step "prometheus: promtool check metrics on a live scrape; every dashboard query through a real Prometheus"
python3 tests/ops/prometheus.py "$px"

step "all deployment artifacts checked"
