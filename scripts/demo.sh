#!/usr/bin/env bash
# The main job on an embedded default: set up, start a throw-away local
# registry, fill it with CI tags, and let registry-prune clean it up.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m scripts.demo "$@"
