#!/usr/bin/env bash
# The main job on an embedded default: set up, then reproduce the disk-full
# push failure on a throw-away local registry and let registry-prune recover it.
# Mounting the small tmpfs needs root, so the demo itself runs under sudo when
# you are not root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --no-go-tools  # the demo runs Debian's 2.8 registry only
if [ "$(id -u)" -eq 0 ]; then
  exec .venv/bin/python -m scripts.demo "$@"
fi
exec sudo --preserve-env=PATH,REGISTRY_PRUNE_TOOLS .venv/bin/python -m scripts.demo "$@"
