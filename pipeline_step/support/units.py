"""Parsing and formatting of durations, byte sizes and free-space thresholds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "p": 1000**5,
    "pb": 1000**5,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
    "pi": 1024**5,
    "pib": 1024**5,
}


def parse_duration(text: str) -> timedelta:
    """``"14d"`` -> 14 days. Units: s, m, h, d, w."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit, e.g. 14d, 36h, 2w")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds}s"


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 tag``, ``2 tags``; irregular plurals (``repositories``) are given."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def parse_size(text: str) -> int:
    """``"5GiB"`` -> 5368709120. Decimal (KB, MB) and binary (KiB, MiB) units."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; use e.g. 5GiB, 500MB or 1073741824")
    unit = match.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} has an unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_bytes(size: int | float) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


SHARED_DISK = "the disk is shared, and other writes (pushes, logs, other services) outweighed what was freed"


def describe_freed(freed: int) -> str:
    """``freed 12.0 MiB measured``. Free space measured before and after also moves with everyone
    else's writes, so a drop is said as a drop, with that reason, never as a negative saving."""
    if freed >= 0:
        return f"freed {format_bytes(freed)} measured"
    return f"free space fell by {format_bytes(-freed)} meanwhile: {SHARED_DISK}"


@dataclass(frozen=True, slots=True)
class FreeSpaceThreshold:
    """``--min-free``: either a fraction of the filesystem or an absolute size."""

    fraction: float | None = None
    size: int | None = None

    @classmethod
    def parse(cls, text: str) -> FreeSpaceThreshold:
        stripped = text.strip()
        if stripped.endswith("%"):
            try:
                percent = float(stripped[:-1])
            except ValueError:
                raise ValueError(f"{text!r} is not a percentage; use e.g. 10%") from None
            if not 0 < percent < 100:
                raise ValueError(f"{text!r} must be between 0% and 100%")
            return cls(fraction=percent / 100)
        return cls(size=parse_size(stripped))

    def required_bytes(self, total: int) -> int:
        if self.fraction is not None:
            return int(total * self.fraction)
        assert self.size is not None
        return self.size

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        return format_bytes(self.size or 0)
