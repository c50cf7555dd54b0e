"""Garbage collection: the operator's commands, run in a safe order, measured.

Order: ``--readonly-cmd`` (optional; puts the registry in
``storage.maintenance.readonly`` so no push races the sweep), ``--gc-cmd``,
then ``--restart-cmd``. The restart always runs once read-only mode was
entered, even when GC fails, so the registry never stays read-only. API
deletes must all happen *before* read-only mode: a read-only registry refuses
DELETE. The restart also matters without read-only mode: after GC the running
registry's in-memory blob cache still answers HEAD 200 for deleted blobs, and
a push in that state can skip a layer and leave a broken image.

``--delete-untagged`` is never added unless asked: on 2.8 it also deletes the
untagged children of tagged manifest lists.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from pipeline_step.errors import CommandFailedError, PruneError
from pipeline_step.integrations.disk import DiskProbe, DiskUsage
from pipeline_step.integrations.shell import CommandResult, run_command

_SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
# GC prints a line per marked blob and per deleted blob: millions on a big registry. Keep them out of the console.
_CHATTER = re.compile(r": marking (manifest|blob) |^(blob|manifest) eligible for deletion: |^\S+$")
DELETE_UNTAGGED_WARNING = (
    "--delete-untagged on distribution 2.8 also deletes the untagged children of tagged manifest lists "
    "and OCI indexes, breaking multi-arch images; this registry has indexes"
)


@dataclass(frozen=True, slots=True)
class GcSummary:
    blobs_marked: int
    blobs_eligible: int
    manifests_eligible: int


def parse_gc_summary(output: str) -> GcSummary | None:
    """The ``N blobs marked, M blobs and K manifests eligible for deletion`` line."""
    matches = _SUMMARY.findall(output)
    if not matches:
        return None
    marked, blobs, manifests = matches[-1]
    return GcSummary(int(marked), int(blobs), int(manifests))


@dataclass(frozen=True)
class GcCommands:
    gc: str
    restart: str | None = None
    readonly: str | None = None
    delete_untagged: bool = False
    timeout: float = 6 * 3600.0  # a big registry's GC can take hours

    def gc_command(self) -> str:
        # cobra accepts flags after the config argument.
        return f"{self.gc} --delete-untagged" if self.delete_untagged else self.gc


@dataclass
class GcResult:
    steps: list[CommandResult] = field(default_factory=list)
    summary: GcSummary | None = None
    before: DiskUsage | None = None
    after: DiskUsage | None = None
    error: PruneError | None = None
    warnings: list[str] = field(default_factory=list)
    restarted: bool = False  # the restart command succeeded: the registry's caches are fresh
    interrupted: bool = False  # a stop request arrived: no step started after it but the restart

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def freed_bytes(self) -> int | None:
        if self.before is None or self.after is None:
            return None
        return self.after.free_bytes - self.before.free_bytes


def _step(result: GcResult, label: str, command: str, timeout: float, echo: Callable[[str], None]) -> bool:
    echo(f"{label}: $ {command}")

    def show(line: str) -> None:
        if line.strip() and not _CHATTER.search(line):
            echo(f"{label}: {line}")

    outcome = run_command(command, timeout=timeout, echo=show)
    result.steps.append(outcome)
    if outcome.ok:
        return True
    why = "timed out" if outcome.exit_code == -1 else f"exited {outcome.exit_code}"
    if result.error is None:
        result.error = CommandFailedError(
            f"the {label} command {why}: {outcome.tail(3) or '(no output)'}",
            hint=f"run it by hand to see why: {outcome.command}",
        )
    return False


def run_gc(
    commands: GcCommands,
    *,
    probe: DiskProbe | None = None,
    has_indexes: bool = False,
    echo: Callable[[str], None] = lambda line: None,
    wait_healthy: Callable[[], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> GcResult:
    """Read-only (optional), GC, restart (always after read-only), measuring free space around it.

    A stop request (SIGTERM) never cuts a step short: a sweep killed halfway is the one state
    worse than no GC. It keeps the next step from starting, except the restart.
    """
    result = GcResult()
    if commands.delete_untagged and has_indexes:
        result.warnings.append(DELETE_UNTAGGED_WARNING)
        echo(f"warning: {DELETE_UNTAGGED_WARNING}")
    if probe is not None:
        result.before = probe.measure()
    # Never collect garbage while pushes we meant to block may still arrive.
    ready = commands.readonly is None or _step(result, "readonly", commands.readonly, 600, echo)
    if ready and stop():
        result.interrupted = True
        echo("stop requested: garbage collection is not started")
    elif ready and _step(result, "gc", commands.gc_command(), commands.timeout, echo):
        result.summary = parse_gc_summary(result.steps[-1].output)
    result.interrupted = result.interrupted or stop()
    if commands.restart:
        # Always restart, even after a failure: it leaves read-only mode (or brings back a registry
        # the read-only command stopped) and drops the stale blob cache.
        _restart(result, commands.restart, echo, wait_healthy)
    if probe is not None:
        result.after = probe.measure()
    return result


def _restart(
    result: GcResult, command: str, echo: Callable[[str], None], wait_healthy: Callable[[], None] | None
) -> None:
    if not _step(result, "restart", command, 600, echo):
        return
    result.restarted = True
    if wait_healthy is not None:
        try:
            wait_healthy()
        except PruneError as exc:
            result.error = result.error or exc


def run_restart(
    command: str, *, echo: Callable[[str], None] = lambda line: None, wait_healthy: Callable[[], None] | None = None
) -> GcResult:
    """Only the restart: drops the registry's stale blob cache."""
    result = GcResult()
    _restart(result, command, echo, wait_healthy)
    return result


def wait_until(check: Callable[[], object], *, timeout: float, interval: float = 0.2) -> None:
    """Poll ``check`` (which raises while not ready) until it passes or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except PruneError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
