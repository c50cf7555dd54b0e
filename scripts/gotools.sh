#!/usr/bin/env bash
# Build the Go tools the tests use, once per version, into one cache folder that
# ./scripts/test.sh, ./scripts/demo.sh and .ci/run share:
#   ${REGISTRY_PRUNE_TOOLS:-$HOME/.cache/registry-prune/tools}/<name>-<version>/<binary>
# A tool already built for its version is not built again. The builds run in
# parallel; each prints one line when it starts and one when it is done.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${REGISTRY_PRUNE_TOOLS:-$HOME/.cache/registry-prune/tools}"

# name version module binary
TOOL_LIST=(
  "registry v3.1.1 github.com/distribution/distribution/v3/cmd/registry registry"
  "registry v3.0.0 github.com/distribution/distribution/v3/cmd/registry registry"
  "oras v1.3.6 oras.land/oras/cmd/oras oras"
  "cosign v2.6.5 github.com/sigstore/cosign/v2/cmd/cosign cosign"
)

if ! command -v go >/dev/null 2>&1; then
  echo "gotools: go is not on PATH; install Go (https://go.dev/doc/install), then rerun" >&2
  exit 1
fi

mkdir -p "$TOOLS"
pids=()
names=()
for entry in "${TOOL_LIST[@]}"; do
  read -r name version module binary <<<"$entry"
  target="$TOOLS/$name-$version"
  if [ -x "$target/$binary" ]; then
    continue
  fi
  echo "gotools: building $name $version (go install $module@$version)" >&2
  (
    log="$TOOLS/$name-$version.log"
    # Build into a scratch folder and move it into place: a killed build never looks finished.
    scratch="$(mktemp -d "$TOOLS/.build-$name-$version.XXXXXX")"
    if GOBIN="$scratch" GOFLAGS="-trimpath" go install -ldflags="-s -w" "$module@$version" >"$log" 2>&1; then
      rm -rf "$target" && mv "$scratch" "$target"
      echo "gotools: built $name $version into $target" >&2
    else
      rm -rf "$scratch"
      echo "gotools: building $name $version failed; the last lines of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
  ) &
  pids+=("$!")
  names+=("$name $version")
done

failed=0
for index in "${!pids[@]}"; do
  if ! wait "${pids[$index]}"; then
    failed=1
  fi
done
exit "$failed"
