#!/usr/bin/env bash
# The test command: set up (idempotent), then lint, type-check and run every
# test, the Groovy ones included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  export JAVA_HOME
fi
.venv/bin/ruff check pipeline_step tests benchmarks scripts
.venv/bin/ruff format --check pipeline_step tests benchmarks scripts
.venv/bin/mypy pipeline_step
# Two workers (the tests mostly wait on registries and subprocesses); one file per worker at a
# time keeps a module's fixtures together. pytest exits 5 when it collects no tests; set -e
# turns that into a failure.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
