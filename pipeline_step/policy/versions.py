"""Semantic-version ordering of tags, with numeric pre-release identifiers.

``3.3.0-alpha.10`` sorts above ``3.3.0-alpha.9``; a release sorts above its
pre-releases; ``v1.2`` equals ``1.2.0``. Build metadata (``+...``) does not
change the order. Tags that are not versions get no key and are never ordered.
"""

from __future__ import annotations

import re

_VERSION = re.compile(
    r"^[vV]?(?P<core>\d+(?:\.\d+){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_CORE_PARTS = 4

Identifier = tuple[int, int | str]
VersionKey = tuple[tuple[int, ...], int, tuple[Identifier, ...]]


def version_key(tag: str) -> VersionKey | None:
    """A sort key for ``tag``, or None when it is not a version."""
    match = _VERSION.match(tag)
    if match is None:
        return None
    core = tuple(int(part) for part in match.group("core").split("."))
    core = core + (0,) * (_CORE_PARTS - len(core))
    pre = match.group("pre")
    if pre is None:
        return core, 1, ()
    identifiers: list[Identifier] = []
    for part in pre.split("."):
        # Numeric identifiers sort below alphanumeric ones and compare as numbers.
        identifiers.append((0, int(part)) if part.isdigit() else (1, part))
    return core, 0, tuple(identifiers)
