#!/usr/bin/env bash
# The benchmarks: registry-prune against the raw API floor, through the API and
# on the storage, on a local docker-registry; prints a table (about 15 minutes).
# Options go to benchmarks.run: --quick, --scenario NAME, --repeat N, --json FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The S3 scenario has a harness of its own (a local S3 server and a registry on it).
if [ "${1:-}" = "--scenario" ] && [ "${2:-}" = "s3" ]; then
  shift 2
  exec .venv/bin/python -m benchmarks.s3 "$@"
fi
exec .venv/bin/python -m benchmarks.run "$@"
