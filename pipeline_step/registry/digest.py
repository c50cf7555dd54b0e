"""Content digests: validation and verification."""

from __future__ import annotations

import hashlib
import re

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


_MATCH_DIGEST = _DIGEST.match


def is_digest(reference: str) -> bool:
    """True when ``reference`` is a digest (``sha256:<64 hex>``) rather than a tag."""
    return _MATCH_DIGEST(reference) is not None


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{_ALGORITHMS[algorithm](data).hexdigest()}"


def matches(data: bytes, digest: str) -> bool:
    """True when ``data`` hashes to ``digest`` (using the digest's own algorithm)."""
    algorithm, _, _ = digest.partition(":")
    if algorithm not in _ALGORITHMS:
        return False
    return compute_digest(data, algorithm) == digest


def short(digest: str) -> str:
    """``sha256:0123456789ab…`` for tables."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"
