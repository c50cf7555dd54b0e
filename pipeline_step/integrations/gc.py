"""Garbage collection: the operator's commands, run in a safe order, measured.

distribution's garbage collection must not run while the registry accepts
pushes: a layer uploaded after the mark phase is swept, and a push completed
before the restart is accepted on the stale blob cache's word, leaving an
image that "pushed" and cannot be pulled. So GC runs behind a guard:

* **read-only**: ``--readonly-cmd`` (``storage.maintenance.readonly``) before,
  ``--restart-cmd`` after (it also drops the stale blob cache);
* **stopped**: ``--stop-cmd`` before, ``--start-cmd`` after (GC then runs
  beside the stopped registry, e.g. ``docker run --rm ... garbage-collect``);
* **live**: only with an explicit ``--allow-live-gc``, which warns what it risks.

The closing step (restart or start) always runs once the opening one was
tried, even when GC fails, so the registry never stays read-only or stopped.
API deletes must all happen *before* the guard: a read-only registry refuses
DELETE. Each guard command may be given once per replica; GC itself runs once.

``--delete-untagged`` is never added unless asked: on 2.8 it also deletes the
untagged children of tagged manifest lists.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from pipeline_step.errors import CommandFailedError, PruneError, UsageError
from pipeline_step.integrations.disk import DiskProbe, DiskUsage
from pipeline_step.integrations.shell import CommandResult, run_command

_SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
# GC prints a line per marked blob and per deleted blob (the sweep's logged "Deleting blob: ..."): millions
# on a big registry. Keep them out of the console.
_CHATTER = re.compile(
    r": marking (manifest|blob) |^(blob|manifest) eligible for deletion: |^\S+$|msg=\"Deleting (blob|manifest): "
)
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


LIVE_GC_RISK = (
    "--allow-live-gc: garbage collection runs while the registry accepts pushes. A layer uploaded during "
    "the sweep can be deleted, and a push that completes before the restart is accepted on the stale "
    "cache's word: an image that pushed but cannot be pulled"
)
GUARD_HINT = (
    "make the registry read-only or stop it while GC runs: --readonly-cmd CMD with --restart-cmd CMD, "
    "or --stop-cmd CMD with --start-cmd CMD (the README's GC recipes); or pass --allow-live-gc to accept the risk"
)


@dataclass(frozen=True)
class GcCommands:
    """The commands of one garbage collection. Guard commands are per replica (one each, usually)."""

    gc: str
    restart: tuple[str, ...] = ()  # after GC, or to drop a stale cache; also ends read-only mode
    readonly: tuple[str, ...] = ()  # before GC: storage.maintenance.readonly (needs restart)
    stop: tuple[str, ...] = ()  # before GC: the registry stopped (needs start)
    start: tuple[str, ...] = ()  # after GC: the registry started again
    allow_live: bool = False  # GC while pushes are accepted: the operator takes the risk
    delete_untagged: bool = False
    timeout: float = 6 * 3600.0  # a big registry's GC can take hours

    def __post_init__(self) -> None:
        if self.readonly and not self.restart:
            raise UsageError(
                "--readonly-cmd needs --restart-cmd",
                hint="without a restart the registry would stay read-only after GC",
            )
        if bool(self.stop) != bool(self.start):
            raise UsageError(
                "--stop-cmd and --start-cmd go together",
                hint="a registry stopped for GC must be started again, and only a stopped one is started",
            )
        if self.readonly and self.stop:
            raise UsageError("give --readonly-cmd or --stop-cmd, not both", hint="one guard is enough")
        if self.allow_live and (self.readonly or self.stop):
            raise UsageError("--allow-live-gc contradicts --readonly-cmd/--stop-cmd", hint="leave out --allow-live-gc")
        if not (self.readonly or self.stop or self.allow_live):
            raise UsageError("refusing to garbage-collect a registry that accepts pushes", hint=GUARD_HINT)

    @property
    def guard(self) -> str:
        return "read-only" if self.readonly else "stopped" if self.stop else "live"

    def opening(self) -> list[tuple[str, str]]:
        """(label, command) that make GC safe: read-only or stop, per replica."""
        return [("readonly", c) for c in self.readonly] + [("stop", c) for c in self.stop]

    def closing(self) -> list[tuple[str, str]]:
        """(label, command) that bring the registry back with fresh caches, per replica."""
        if self.stop:
            return [("start", c) for c in self.start]
        return [("restart", c) for c in self.restart]

    def restarts(self) -> list[tuple[str, str]]:
        """A restart on its own (to drop a stale cache): restart, or stop then start."""
        if self.restart:
            return [("restart", c) for c in self.restart]
        return [("stop", c) for c in self.stop] + [("start", c) for c in self.start]

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
    """Guard (read-only or stop), GC, then the closing step (always once the guard was tried).

    A stop request (SIGTERM) never cuts a step short: a sweep killed halfway is the one state
    worse than no GC. It keeps the next step from starting, except the closing one.
    """
    result = GcResult()
    if commands.delete_untagged and has_indexes:
        result.warnings.append(DELETE_UNTAGGED_WARNING)
        echo(f"warning: {DELETE_UNTAGGED_WARNING}")
    if commands.allow_live:
        result.warnings.append(LIVE_GC_RISK)
        echo(f"warning: {LIVE_GC_RISK}")
    if probe is not None:
        result.before = probe.measure()
    # Never collect garbage unless every replica is read-only or stopped (or live GC was allowed).
    guarded = all(_step(result, label, command, 600, echo) for label, command in commands.opening())
    if guarded and stop():
        result.interrupted = True
        echo("stop requested: garbage collection is not started")
    elif guarded and _step(result, "gc", commands.gc_command(), commands.timeout, echo):
        result.summary = parse_gc_summary(result.steps[-1].output)
    result.interrupted = result.interrupted or stop()
    # Always close, even after a failure: leave read-only mode, start what was stopped, drop stale caches.
    _bring_back(result, commands.closing(), echo, wait_healthy)
    if probe is not None:
        result.after = probe.measure()
    return result


def _bring_back(
    result: GcResult,
    steps: list[tuple[str, str]],
    echo: Callable[[str], None],
    wait_healthy: Callable[[], None] | None,
) -> None:
    if not steps:
        return
    ok = True
    for label, command in steps:
        ok = _step(result, label, command, 600, echo) and ok  # every replica, even after one failed
    if not ok:
        return
    result.restarted = True
    if wait_healthy is not None:
        try:
            wait_healthy()
        except PruneError as exc:
            result.error = result.error or exc


def run_restart(
    commands: GcCommands,
    *,
    echo: Callable[[str], None] = lambda line: None,
    wait_healthy: Callable[[], None] | None = None,
) -> GcResult:
    """Only a restart (restart, or stop and start): drops the registry's stale blob cache."""
    result = GcResult()
    _bring_back(result, commands.restarts(), echo, wait_healthy)
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
