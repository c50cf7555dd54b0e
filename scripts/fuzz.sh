#!/usr/bin/env bash
# Fuzz the lean transport's response parser (tests/fuzz/lean_response.py) for SECONDS (default 60),
# starting from the committed corpus. New inputs libFuzzer keeps go to $FUZZ_WORKDIR/corpus and
# crashers to $FUZZ_WORKDIR (default build/fuzz/lean_response, not committed): a crasher that is
# fixed belongs in tests/fuzz/corpus/lean_response/ under a name saying what it holds.
# Exits non-zero when the target finds anything. Extra arguments go to libFuzzer.
#   ./scripts/fuzz.sh [SECONDS] [libFuzzer arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if [ "$#" -gt 0 ]; then shift; fi
python="${PYTHON:-.venv/bin/python}"
work="${FUZZ_WORKDIR:-build/fuzz/lean_response}"
mkdir -p "$work/corpus"
# -timeout: an input running 10 s is a hang (one takes milliseconds); -max_len keeps inputs small
# enough to run thousands a second and still holds every feature of the seeds.
exec "$python" -m tests.fuzz.lean_response \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict=tests/fuzz/lean_response.dict -artifact_prefix="$work/" -print_final_stats=1 \
  "$@" "$work/corpus" tests/fuzz/corpus/lean_response
