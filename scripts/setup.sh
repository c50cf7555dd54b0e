#!/usr/bin/env bash
# Install everything this project needs on a fresh Debian/Ubuntu machine:
# the Debian packages (docker-registry, skopeo, groovy) when missing, and a
# Python virtualenv in .venv with the package and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v groovy >/dev/null 2>&1 || missing+=(groovy)
if [ "${#missing[@]}" -gt 0 ] || [ "${FORCE_APT:-0}" = 1 ]; then
  echo "setup: installing Debian packages: ${missing[*]:-docker-registry skopeo groovy}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry skopeo groovy
fi
# Debian's package starts no daemon here, but make sure a packaged service does not hold port 5000.
if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/docker-registry ]; then
  as_root service docker-registry stop >/dev/null 2>&1 || true
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if ! .venv/bin/python -m pip install -q -e '.[test]' >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi

# Registry 3.x (and 3.0.0 for its one test), oras and cosign, built from the Go module proxy once per
# version into the cache folder the tests and CI share (a few minutes the first time, nothing after).
./scripts/gotools.sh
