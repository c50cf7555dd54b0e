"""oras and cosign against a local registry: real signatures, attestations and referrers.

Both run with their own HOME in a scratch folder (no credentials, caches or
config of the machine leak in or out), over plain HTTP to 127.0.0.1, and cosign
offline: a local key pair, no transparency log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support.gotools import COSIGN, ORAS

KEY_PASSWORD = "registry-prune-tests"  # the throw-away test key's password


def _host(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


class Tool:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "NO_COLOR": "1"}

    def run(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env(), cwd=cwd, timeout=120, check=False
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{self.binary.name} {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}"
            )
        return done.stdout


class Oras(Tool):
    def __init__(self, home: Path) -> None:
        super().__init__(ORAS.find(), home)

    def attach(self, url: str, repo: str, subject: str, content: bytes, *, artifact_type: str, name: str) -> str:
        """``oras attach`` a file holding ``content`` to ``repo@subject``; the new artifact's digest."""
        folder = self.home / "files"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(content)
        out = self.run(
            "attach",
            "--plain-http",
            "--artifact-type",
            artifact_type,
            f"{_host(url)}/{repo}@{subject}",
            name,
            cwd=folder,
        )
        found = re.search(r"Digest: (sha256:[0-9a-f]{64})", out)
        assert found, out
        return found.group(1)

    def discover(self, url: str, repo: str, subject: str) -> list[dict[str, Any]]:
        """The referrers of ``repo@subject`` as oras lists them (a tree: each has its own ``referrers``)."""
        out = self.run("discover", "--plain-http", "--format", "json", f"{_host(url)}/{repo}@{subject}")
        return list(json.loads(out).get("referrers") or [])


def flatten(referrers: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(artifactType, digest) of every referrer in an ``oras discover`` tree."""
    found: set[tuple[str, str]] = set()
    stack = list(referrers)
    while stack:
        entry = stack.pop()
        found.add((entry.get("artifactType", ""), entry["digest"]))
        stack.extend(entry.get("referrers") or [])
    return found


class Cosign(Tool):
    """cosign with a key pair of its own (``cosign generate-key-pair``)."""

    def __init__(self, home: Path) -> None:
        super().__init__(COSIGN.find(), home)
        if not (home / "cosign.key").exists():
            self.run("generate-key-pair", cwd=home)

    def env(self) -> dict[str, str]:
        return {**super().env(), "COSIGN_PASSWORD": KEY_PASSWORD}

    def _offline(self) -> tuple[str, ...]:
        return (
            "--key",
            str(self.home / "cosign.key"),
            "--tlog-upload=false",
            "--allow-insecure-registry",
            "--allow-http-registry",
            "--yes",
        )

    def sign(self, url: str, repo: str, digest: str) -> None:
        """A ``sha256-<hex>.sig`` signature of ``repo@digest``."""
        self.run("sign", *self._offline(), f"{_host(url)}/{repo}@{digest}")

    def attest(self, url: str, repo: str, digest: str, predicate: dict[str, Any]) -> None:
        """A ``sha256-<hex>.att`` in-toto attestation of ``repo@digest``."""
        path = self.home / "predicate.json"
        path.write_text(json.dumps(predicate))
        self.run(
            "attest", *self._offline(), "--type", "custom", "--predicate", str(path), f"{_host(url)}/{repo}@{digest}"
        )
