"""Where the tests find the Go-built tools: the cache ./scripts/gotools.sh fills, once per version.

${REGISTRY_PRUNE_TOOLS:-$HOME/.cache/registry-prune/tools}/<name>-<version>/<binary>
"""

from __future__ import annotations

import os
from pathlib import Path

VERSIONS = {"registry-3.1": ("registry", "v3.1.1"), "registry-3.0": ("registry", "v3.0.0"), "oras": ("oras", "v1.3.6"),
            "cosign": ("cosign", "v2.6.5")}  # fmt: skip
INSTALL_HINT = "build it with ./scripts/gotools.sh (./scripts/test.sh and .ci/run do it themselves)"


def tools_dir() -> Path:
    configured = os.environ.get("REGISTRY_PRUNE_TOOLS")
    return Path(configured) if configured else Path.home() / ".cache" / "registry-prune" / "tools"


def tool(name: str) -> str:
    """The path of a Go-built tool, or RuntimeError naming how to build it."""
    binary, version = VERSIONS[name]
    path = tools_dir() / f"{binary}-{version}" / binary
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{binary} {version} is not built ({path} is missing); {INSTALL_HINT}")
    return str(path)
