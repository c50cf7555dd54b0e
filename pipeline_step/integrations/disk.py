"""Disk probes: how full is the registry's filesystem? (``--disk PROBE``)

Three kinds, chosen by the spec's prefix:

``path:DIR``
    ``os.statvfs`` on this machine (the registry's storage is local or mounted).
``command:CMD``
    CMD runs through ``/bin/sh`` and must print POSIX ``df -P`` output for one
    filesystem, e.g. ``command:ssh reg df -PB1 /var/lib/registry``. The block
    size comes from the header (``1-blocks``, ``1B-blocks``, ``1024-blocks``,
    ``1K-blocks``, ``512-blocks``); ``df -h`` is refused because it rounds.
``prometheus:URL[#SELECTOR]``
    node_exporter's text exposition. SELECTOR, written as the URL fragment
    (never sent), picks the filesystem: ``#mountpoint=/var/lib/registry``,
    several labels joined by ``&`` (``#mountpoint=/srv&fstype=xfs``), or a bare
    path as shorthand for ``mountpoint=`` (``#/var/lib/registry``).

Every probe measures like ``df``: total is the whole filesystem, free is what an
unprivileged writer (the registry) may still use.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import httpx

from pipeline_step.errors import ExitCode, PruneError, UsageError
from pipeline_step.support.redact import redact, register_secret
from pipeline_step.support.units import FreeSpaceThreshold, format_bytes

DEFAULT_TIMEOUT = 30.0
SPEC_HELP = "use path:DIR, command:CMD (printing df -P output) or prometheus:URL#mountpoint=DIR"


class DiskProbeError(PruneError):
    """A probe could not measure: the command failed, the exporter is unreachable, the output is unusable."""

    exit_code = ExitCode.REGISTRY


@dataclass(frozen=True, slots=True)
class DiskUsage:
    total_bytes: int
    free_bytes: int
    source: str  # what was measured, e.g. "path:/var/lib/registry"

    @property
    def used_bytes(self) -> int:
        return max(self.total_bytes - self.free_bytes, 0)

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    def __str__(self) -> str:
        return (
            f"{format_bytes(self.free_bytes)} free of {format_bytes(self.total_bytes)} "
            f"({self.free_fraction:.0%}) on {self.source}"
        )


class DiskProbe(Protocol):
    def measure(self) -> DiskUsage: ...


def is_low(usage: DiskUsage, threshold: FreeSpaceThreshold) -> bool:
    """True when less than ``threshold`` (a fraction of the total, or a size) is free."""
    return usage.free_bytes < threshold.required_bytes(usage.total_bytes)


def bytes_freed(before: DiskUsage, after: DiskUsage) -> int:
    """Free space gained between two measurements (negative if something else wrote meanwhile)."""
    return after.free_bytes - before.free_bytes


@dataclass(frozen=True, slots=True)
class PathProbe:
    path: Path

    def measure(self) -> DiskUsage:
        try:
            stats = os.statvfs(self.path)
        except OSError as exc:
            raise DiskProbeError(
                f"cannot measure the disk at {self.path}: {exc.strerror or exc}",
                hint="give --disk path:DIR an existing directory on the registry's storage filesystem",
            ) from None
        return DiskUsage(stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize, f"path:{self.path}")

    def __str__(self) -> str:
        return f"path:{self.path}"


_DF_BLOCKS = re.compile(r"^(\d+)(?:([KMGTP])(i?B)?|B)?-blocks$", re.IGNORECASE)
_DF_ROW = re.compile(r"^(?P<fs>.+?)\s+(?P<blocks>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?:\d+%|-)\s+(?P<mount>.+)$")
_UNITS = "KMGTP"


def _block_size(header: str) -> int | None:
    fields = header.split()
    if len(fields) < 2:
        return None
    match = _DF_BLOCKS.match(fields[1])
    if not match:
        return None
    count, unit, suffix = match.group(1), match.group(2), match.group(3)
    if not unit:
        return int(count)
    # GNU df: "1K" and "1KiB" are powers of 1024, "1kB" / "1MB" powers of 1000.
    base = 1000 if suffix and suffix.upper() == "B" else 1024
    return int(count) * int(base ** (_UNITS.index(unit.upper()) + 1))


def parse_df_output(text: str, *, source: str) -> DiskUsage:
    """Parse ``df -P`` output for exactly one filesystem."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DiskProbeError(f"{source} printed nothing", hint="the command must print df -P output, e.g. df -PB1 DIR")
    header = lines[0]
    if "Size" in header.split()[1:2]:
        raise DiskProbeError(
            f"{source} printed human-readable sizes (df -h), which are rounded",
            hint="use df -PB1 DIR (exact bytes) or df -Pk DIR",
        )
    block = _block_size(header)
    if block is None:
        raise DiskProbeError(
            f"{source} did not print a df header with a block size (e.g. '1024-blocks'): {redact(header[:200])!r}",
            hint="the command must print POSIX df output: df -PB1 DIR or df -Pk DIR",
        )
    rows = [_DF_ROW.match(line.strip()) for line in lines[1:]]
    parsed = [row for row in rows if row is not None]
    if len(parsed) != len(rows) or not parsed:
        raise DiskProbeError(
            f"{source} printed df rows this tool cannot read",
            hint="use df -P (one line per filesystem), e.g. df -PB1 DIR",
        )
    if len(parsed) > 1:
        mounts = ", ".join(row.group("mount") for row in parsed)
        raise DiskProbeError(
            f"{source} printed {len(parsed)} filesystems ({mounts})",
            hint="give df a single directory: df -PB1 /var/lib/registry",
        )
    row = parsed[0]
    return DiskUsage(int(row.group("blocks")) * block, int(row.group("avail")) * block, source)


def _tail(text: str, lines: int = 5, chars: int = 800) -> str:
    kept = "\n".join(text.strip().splitlines()[-lines:])
    return redact(kept[-chars:])


@dataclass(frozen=True, slots=True)
class CommandProbe:
    command: str
    timeout: float = DEFAULT_TIMEOUT

    def measure(self) -> DiskUsage:
        source = f"command:{self.command}"
        # The operator's command line, run through the shell like the gc and restart commands. Its own
        # session, so a timeout kills ssh and friends too rather than leaving them holding our pipes.
        process = subprocess.Popen(  # noqa: S602
            self.command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise DiskProbeError(
                f"{redact(source)} did not finish within {self.timeout:g}s",
                hint="check that the command runs non-interactively (ssh -o BatchMode=yes) and the host answers",
            ) from None
        if process.returncode != 0:
            detail = _tail(stderr) or _tail(stdout) or "no output"
            raise DiskProbeError(
                f"{redact(source)} exited with status {process.returncode}: {detail}",
                hint="run the command by hand on the agent; it must print df -P output for the registry's storage",
            )
        return parse_df_output(stdout, source=redact(source))

    def __str__(self) -> str:
        return redact(f"command:{self.command}")


_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_AVAIL = ("node_filesystem_avail_bytes", "node_filesystem_avail")  # the second: node_exporter < 0.16
_SIZE = ("node_filesystem_size_bytes", "node_filesystem_size")

Labels = tuple[tuple[str, str], ...]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _parse_exposition(text: str) -> tuple[dict[Labels, float], dict[Labels, float]]:
    avail: dict[Labels, float] = {}
    size: dict[Labels, float] = {}
    for line in text.splitlines():
        if not line.startswith("node_filesystem_"):
            continue
        match = _SAMPLE.match(line)
        if not match or match.group("name") not in _AVAIL + _SIZE:
            continue
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        if math.isnan(value) or math.isinf(value):
            continue
        labels: Labels = tuple(
            sorted((name, _unescape(raw)) for name, raw in _LABEL.findall(match.group("labels") or ""))
        )
        (avail if match.group("name") in _AVAIL else size)[labels] = value
    return avail, size


def parse_node_exporter(text: str, selector: dict[str, str], *, source: str) -> DiskUsage:
    """Pick one filesystem from node_exporter metrics by label selector (empty: the only one)."""
    avail, size = _parse_exposition(text)
    filesystems = [labels for labels in size if labels in avail]
    if not filesystems:
        raise DiskProbeError(
            f"{source} has no node_filesystem_avail_bytes / node_filesystem_size_bytes samples",
            hint="point prometheus: at node_exporter's /metrics (port 9100) with the filesystem collector enabled",
        )
    chosen = [labels for labels in filesystems if all(dict(labels).get(k) == v for k, v in selector.items())]
    mounts = sorted({dict(labels).get("mountpoint", "?") for labels in filesystems})
    if not chosen:
        wanted = "&".join(f"{k}={v}" for k, v in selector.items())
        raise DiskProbeError(
            f"{source} has no filesystem matching {wanted}; mountpoints: {', '.join(mounts)}",
            hint="pick one with prometheus:URL#mountpoint=DIR",
        )
    # The same filesystem can be listed twice (bind mounts); that is only ambiguous if the numbers differ.
    if len({(avail[labels], size[labels]) for labels in chosen}) > 1:
        listed = sorted({dict(labels).get("mountpoint", "?") for labels in chosen})
        if selector:
            raise DiskProbeError(
                f"{source}: {len(chosen)} filesystems match ({', '.join(listed)})",
                hint="add labels to the selector, e.g. #mountpoint=DIR&device=/dev/sdb1",
            )
        example = next((mount for mount in listed if "registry" in mount), listed[-1])
        raise DiskProbeError(
            f"{source} lists {len(listed)} filesystems ({', '.join(listed)})",
            hint=f"pick one with prometheus:URL#mountpoint={example}",
        )
    labels = chosen[0]
    mount = dict(labels).get("mountpoint")
    where = f"{source} mountpoint={mount}" if mount else source
    return DiskUsage(int(size[labels]), int(avail[labels]), where)


@dataclass(frozen=True, slots=True)
class PrometheusProbe:
    url: str  # without the fragment
    selector: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @property
    def display_url(self) -> str:
        """The URL without user:password, for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def measure(self) -> DiskUsage:
        source = f"prometheus:{self.display_url}"
        try:
            response = httpx.get(self.url, timeout=self.timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise DiskProbeError(
                f"cannot read node_exporter metrics from {self.display_url}: {type(exc).__name__}: {redact(str(exc))}",
                hint="check that node_exporter runs on the registry host and the agent can reach its port",
            ) from None
        if response.status_code != 200:
            raise DiskProbeError(
                f"{self.display_url} answered HTTP {response.status_code}",
                hint="the URL must serve node_exporter's text metrics, usually http://HOST:9100/metrics",
            )
        return parse_node_exporter(response.text, dict(self.selector), source=source)

    def __str__(self) -> str:
        selector = "&".join(f"{k}={v}" for k, v in self.selector)
        return f"prometheus:{self.display_url}" + (f"#{selector}" if selector else "")


def _parse_prometheus(rest: str, spec: str, timeout: float) -> PrometheusProbe:
    parts = urlsplit(rest)
    if parts.password:
        register_secret(parts.password)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"--disk {redact(spec)!r}: the URL's port is not a number", hint=SPEC_HELP) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--disk {redact(spec)!r}: prometheus: needs an http(s) URL", hint=SPEC_HELP)
    fragment = parts.fragment
    selector: list[tuple[str, str]]
    if not fragment:
        selector = []
    elif fragment.startswith("/"):
        selector = [("mountpoint", unquote(fragment))]
    else:
        try:
            selector = parse_qsl(fragment, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise UsageError(
                f"--disk {redact(spec)!r}: the selector after # must be label=value pairs joined by &",
                hint="e.g. prometheus:http://reg:9100/metrics#mountpoint=/var/lib/registry",
            ) from None
    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/metrics", parts.query, ""))
    return PrometheusProbe(url, tuple(selector), timeout)


def parse_probe(spec: str, *, timeout: float = DEFAULT_TIMEOUT) -> DiskProbe:
    """``--disk PROBE`` -> a probe. Raises UsageError naming the problem; measures nothing yet."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest.strip():
        raise UsageError(f"--disk {spec!r} is not a probe", hint=SPEC_HELP)
    kind = kind.strip().lower()
    if kind == "path":
        return PathProbe(Path(rest).expanduser())
    if kind == "command":
        return CommandProbe(rest.strip(), timeout)
    if kind == "prometheus":
        return _parse_prometheus(rest.strip(), spec, timeout)
    raise UsageError(f"--disk {spec!r}: unknown probe kind {kind!r}", hint=SPEC_HELP)
