#!/usr/bin/env bash
# The benchmarks: registry-prune against the raw API floor, through the API and
# on the storage, on a local docker-registry; prints a table (about 15 minutes).
# Options go to benchmarks.run: --quick, --scenario NAME, --repeat N, --json FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m benchmarks.run "$@"
