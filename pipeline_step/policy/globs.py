"""Repository globs: ``*`` stays within one path component, ``**`` crosses them.

``team/*`` matches ``team/app`` but not ``team/sub/app``; ``team/**`` matches
both. ``?`` is one character other than ``/``; ``[abc]`` is a class.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("^" + "".join(out) + "$")


def has_wildcards(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def glob_matches(pattern: str, name: str) -> bool:
    return compile_glob(pattern).match(name) is not None


def specificity(pattern: str) -> tuple[int, int, int]:
    """Higher is more specific: exact names first, then more literal characters, then fewer wildcards."""
    literal = sum(1 for char in pattern if char not in "*?[]")
    wildcards = sum(1 for char in pattern if char in "*?[")
    return (0 if has_wildcards(pattern) else 1, literal, -wildcards)
