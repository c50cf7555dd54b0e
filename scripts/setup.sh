#!/usr/bin/env bash
# Install everything this project needs on a fresh Debian/Ubuntu machine:
# the Debian packages when missing (docker-registry, skopeo, groovy; podman,
# buildah, runc and debootstrap for the container tests and demo), and a
# Python virtualenv in .venv with the package and its test tools; then the
# Go-built tools the tests use (registry 3.x, oras, cosign), unless --no-go-tools.
# One line per step, so a slow step is never silent.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
step() { echo "setup: $*" >&2; }
go_tools=1
[ "${1:-}" = "--no-go-tools" ] && go_tools=0

packages=(docker-registry skopeo groovy podman buildah runc debootstrap)
missing=()
for program in docker-registry skopeo groovy podman buildah runc debootstrap; do
  command -v "$program" >/dev/null 2>&1 || missing+=("$program")
done
# The docker CLI (client only) drives podman's API socket in the container tests; Debian's is docker.io.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if [ "${#missing[@]}" -gt 0 ] || [ "${FORCE_APT:-0}" = 1 ]; then
  step "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  step "apt-get install ${missing[*]:-${packages[*]}}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" \
    $(command -v docker >/dev/null 2>&1 || echo docker.io) >/dev/null
else
  step "Debian packages present: ${packages[*]} docker"
fi
# Debian's package starts no daemon here, but make sure a packaged service does not hold port 5000.
if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/docker-registry ]; then
  as_root service docker-registry stop >/dev/null 2>&1 || true
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  step "creating the virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "pip install -e '.[test]' into .venv (about 20 s; log: .venv/pip.log)"
  if ! .venv/bin/python -m pip install -q -e '.[test]' >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
else
  step ".venv is up to date"
fi

# Registry 3.x (and 3.0.0 for its one test), oras and cosign, built from the Go module proxy once per
# version into the cache folder the tests and CI share (a few minutes the first time, nothing after).
if [ "$go_tools" = 1 ]; then
  step "Go-built tools (registry 3.x, oras, cosign), built once per version in ${REGISTRY_PRUNE_TOOLS:-~/.cache/registry-prune/tools}"
  ./scripts/gotools.sh
fi
step "done; the tool is .venv/bin/registry-prune"
