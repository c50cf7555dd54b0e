"""The Go-built clients the tests drive (oras, cosign), found where setup builds them.

Layout: ``${REGISTRY_PRUNE_TOOLS:-$HOME/.cache/registry-prune/tools}/<name>-<version>/<binary>``,
one folder per version, shared by CI and the README's commands. A missing tool fails
the test and says how to build it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TOOLS_ENV = "REGISTRY_PRUNE_TOOLS"


@dataclass(frozen=True)
class GoTool:
    name: str
    version: str
    module: str
    binary: str

    @property
    def path(self) -> Path:
        return tools_dir() / f"{self.name}-{self.version}" / self.binary

    def install_hint(self) -> str:
        return (
            f"build it with: GOBIN={self.path.parent} go install {self.module}@{self.version} "
            "(Go from https://go.dev/doc/install; setup builds every tool the tests use into that folder)"
        )

    def find(self) -> Path:
        """The binary, or a RuntimeError naming the command that builds it."""
        if not os.access(self.path, os.X_OK):
            raise RuntimeError(f"{self.name} {self.version} is not at {self.path}; {self.install_hint()}")
        return self.path


ORAS = GoTool("oras", "v1.3.6", "oras.land/oras/cmd/oras", "oras")
COSIGN = GoTool("cosign", "v2.6.5", "github.com/sigstore/cosign/v2/cmd/cosign", "cosign")


def tools_dir() -> Path:
    configured = os.environ.get(TOOLS_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "registry-prune" / "tools"
