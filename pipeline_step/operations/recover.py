"""``recover``: get a failed push through by freeing registry disk, safely.

1. Trigger: the failed build's log says the registry answered 500 or its disk
   is full, or the disk probe says free space is under ``--min-free``, or
   ``--force``. A log that blames the agent's own disk, credentials or the
   network means pruning cannot help: nothing is deleted.
2. Measure the disk.
3. Plan and prune under the policy. If free space is still under
   ``--min-free`` after pruning and GC, tighten ``keep`` (never below
   ``--min-keep``, never touching protected tags) and go again. The next
   ``keep`` is the largest one whose predicted reclaim covers the shortfall.
4. Garbage-collect and restart (see integrations/gc.py for the order).
5. Retry the push, then read the pushed image back to prove it is whole.
6. Report.

GC closes the undo window: after it, ``restore`` cannot bring pruned tags back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from pipeline_step.backends.base import Backend
from pipeline_step.errors import ExitCode, InterruptedRunError, PruneError
from pipeline_step.execution.executor import TAGS_GONE, AuditSink, ExecutionResult, Executor, Status
from pipeline_step.integrations.classify import Category, Classification
from pipeline_step.integrations.disk import DiskProbe, DiskUsage, is_low
from pipeline_step.integrations.gc import GcCommands, GcResult, run_gc, run_restart, wait_until
from pipeline_step.integrations.push import PushResult, run_push, verify_replicas
from pipeline_step.operations.outcome import Outcome
from pipeline_step.planning.attachments import attachment_kinds, describe_attachments
from pipeline_step.planning.build import Plan, build_plan
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import DeleteStep, Phase, plan_repository
from pipeline_step.planning.reclaim import predict_catalog_reclaim, predict_reclaim
from pipeline_step.policy.config import Configuration, RetentionPolicy
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.reference import ImageRef
from pipeline_step.support.progress import ProgressFactory, null_progress
from pipeline_step.support.units import FreeSpaceThreshold, format_bytes, plural

CANNOT_HELP = frozenset({Category.AGENT_DISK_FULL, Category.AUTH, Category.NETWORK})
# On object storage "disk full" does not exist; what still triggers a recovery is the failed log.
OBJECT_STORAGE_NOTE = (
    "the registry stores on S3: there is no disk to fill, so the disk probe does not apply; "
    "the failed log's registry 500 (or --force) triggers a recovery"
)


@dataclass(frozen=True)
class RecoverSettings:
    force: bool = False
    dry_run: bool = False
    min_free: FreeSpaceThreshold | None = None
    min_keep: int | None = None
    push_command: str | None = None
    push_attempts: int = 3
    push_backoff: float = 5.0
    image: ImageRef | None = None  # what to verify after the push
    gc: GcCommands | None = None
    classification: Classification | None = None
    health_timeout: float = 120.0
    predict_catalog: bool = False  # check the reclaim prediction against every repository


@dataclass
class Round:
    """One prune-and-GC pass."""

    keep_cap: int | None  # None: the policy's own keep
    plan: Plan
    execution: ExecutionResult | None = None
    gc: GcResult | None = None
    free_after: DiskUsage | None = None

    @property
    def deleted_steps(self) -> list[DeleteStep]:
        """The steps actually done, or planned when not executed (rewrites of kept indexes left out)."""
        if self.execution is None:
            steps = [s for p in self.plan.repositories for s in p.steps]
        else:
            steps = [o.step for o in self.execution.outcomes if o.status in TAGS_GONE]
        return [step for step in steps if step.phase is not Phase.REWRITE]

    @property
    def deleted_tags(self) -> list[tuple[str, str, str]]:
        """(repository, tag, digest) of the images actually deleted, or planned when not executed;
        attachments' tags (``sha256-<hex>.sig``) are counted apart (:attr:`attachments_deleted`)."""
        return [(s.repository, t, s.digest) for s in self.deleted_steps if s.attachment is None for t in s.tags]

    @property
    def attachments_deleted(self) -> dict[str, int]:
        return attachment_kinds(self.deleted_steps)


@dataclass(frozen=True)
class Decision:
    """Whether recover acts, and why not when it does not."""

    trigger: str | None  # forced | registry-500 | registry-disk-full | low-disk; None: it does not act
    outcome: str = ""  # when it does not act: cannot-help | nothing-to-do
    reason: str = ""


@dataclass
class Recovery:
    """The facts of one recovery; its outcome is worked out from them once (:meth:`outcome`)."""

    registry: str
    dry_run: bool
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    decision: Decision | None = None
    classification: Classification | None = None
    disk_before: DiskUsage | None = None
    disk_final: DiskUsage | None = None  # at the very end, after the push
    rounds: list[Round] = field(default_factory=list)
    push: PushResult | None = None
    error: PruneError | None = None  # what stopped the run early
    notes: list[str] = field(default_factory=list)

    @property
    def trigger(self) -> str | None:
        return self.decision.trigger if self.decision else None

    @property
    def disk_after(self) -> DiskUsage | None:
        for round_ in reversed(self.rounds):
            if round_.free_after is not None:
                return round_.free_after
        return None

    @property
    def gc_ran(self) -> bool:
        """GC ran to its end at least once: the undo window is closed."""
        return any(r.gc is not None and r.gc.summary is not None for r in self.rounds)

    @property
    def gc_error(self) -> PruneError | None:
        return next((r.gc.error for r in self.rounds if r.gc is not None and r.gc.error is not None), None)

    @property
    def predicted_bytes(self) -> int:
        return sum(r.plan.reclaim.bytes for r in self.rounds if r.plan.reclaim is not None)

    @property
    def deleted_tags(self) -> list[tuple[str, str, str]]:
        return [entry for round_ in self.rounds for entry in round_.deleted_tags]

    @property
    def attachments_deleted(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for round_ in self.rounds:
            for kind, count in round_.attachments_deleted.items():
                kinds[kind] = kinds.get(kind, 0) + count
        return kinds

    def outcome(self) -> Outcome:
        """One of: recovered, pruned, dry-run, nothing-to-do, cannot-help, push-failed, gc-failed, failed,
        interrupted."""
        if self.error is not None:
            return Outcome.of_error(self.error)
        decision = self.decision
        assert decision is not None, "a recovery without an error has decided"
        if decision.trigger is None:
            code = ExitCode.CANNOT_HELP if decision.outcome == "cannot-help" else ExitCode.OK
            return Outcome(decision.outcome, code, decision.reason)
        tags = self.deleted_tags
        deleted = plural(len(tags), "tag")
        attached = self.attachments_deleted
        if attached:
            deleted += f" and their {plural(sum(attached.values()), 'attachment')} ({describe_attachments(attached)})"
        if self.dry_run:
            names = ", ".join(f"{repo}:{tag}" for repo, tag, _ in tags[:20])
            more = f" and {len(tags) - 20} more" if len(tags) > 20 else ""
            listing = f": {names}{more}" if tags else ""
            return Outcome("dry-run", ExitCode.OK, f"dry run: would delete {deleted}{listing}; nothing was changed")
        gc_error = self.gc_error
        push = self.push
        if push is not None:
            if push.succeeded and (push.verify is None or push.verify.ok):
                return Outcome("recovered", ExitCode.OK, f"push recovered after deleting {deleted}")
            why = push.gave_up or (
                f"image verification failed: {'; '.join(push.verify.problems[:3])}"
                if push.verify is not None and not push.verify.ok
                else f"{plural(len(push.attempts), 'attempt')} failed"
            )
            errors = (gc_error,) if gc_error is not None else ()
            return Outcome(
                "push-failed", ExitCode.PUSH_FAILED, f"the push still fails after deleting {deleted}: {why}", errors
            )
        if gc_error is not None:
            return Outcome("gc-failed", gc_error.exit_code, str(gc_error), (gc_error,))
        freed = "" if self.gc_ran else "; no --gc-cmd, so no disk space is freed until GC runs"
        return Outcome("pruned", ExitCode.OK, f"deleted {deleted}{freed}")


def capped(policy_for: Callable[[str], RetentionPolicy], cap: int | None) -> Callable[[str], RetentionPolicy]:
    if cap is None:
        return policy_for

    def tightened(repository: str) -> RetentionPolicy:
        policy = policy_for(repository)
        if policy.keep <= cap:
            return policy
        return policy.with_keep(cap, why=f"recover: tightened from {policy.keep} to free space")

    return tightened


def choose_keep_cap(
    inventories: list[RepositoryInventory],
    policy_for: Callable[[str], RetentionPolicy],
    *,
    current: int,
    floor: int,
    shortfall: int,
    now: datetime,
) -> int:
    """The largest cap below ``current`` whose predicted reclaim covers ``shortfall`` (else ``floor``)."""
    for cap in range(current - 1, floor - 1, -1):
        tightened = capped(policy_for, cap)
        deleted = {
            inv.name: {s.digest for s in plan_repository(inv, tightened(inv.name), now).steps} for inv in inventories
        }
        if predict_reclaim(inventories, deleted).bytes >= shortfall:
            return cap
    return floor


class Recoverer:
    """Runs the recovery flow against one registry through one backend."""

    def __init__(
        self,
        client: RegistryClient,
        backend: Backend,
        configuration: Configuration,
        settings: RecoverSettings,
        *,
        probe: DiskProbe | None = None,
        audit: AuditSink | None = None,
        progress: ProgressFactory = null_progress,
        stop: threading.Event | None = None,
        echo: Callable[[str], None] = lambda line: None,
        replicas: list[RegistryClient] | None = None,
    ) -> None:
        self.client = client
        self.replicas = list(replicas or ())  # other replicas on the same storage
        self.backend = backend
        self.configuration = configuration
        self.settings = settings
        self.probe = probe
        self.audit = audit
        self.progress = progress
        self.stop = stop or threading.Event()
        self.echo = echo

    # -- the flow ------------------------------------------------------------

    def run(self) -> Recovery:
        """Gather the facts; never raises a PruneError: it becomes ``recovery.error``."""
        recovery = Recovery(self.client.url, self.settings.dry_run, classification=self.settings.classification)
        if self.backend.name == "s3":
            recovery.notes.append(OBJECT_STORAGE_NOTE)
        try:
            if self.probe is not None:
                recovery.disk_before = self.probe.measure()
                self.echo(f"disk: {recovery.disk_before}")
            recovery.decision = self._decide(recovery.disk_before)
            if recovery.decision.trigger is None:
                return recovery
            self.echo(f"trigger: {recovery.decision.trigger}")
            self._prune_rounds(recovery)
            if not self.settings.dry_run and self.settings.push_command and self._registry_back(recovery):
                self._push(recovery)
            if recovery.gc_ran:
                recovery.notes.append(
                    "garbage collection ran, which closes the undo window: `restore` now brings back only the "
                    "pruned images whose blobs another repository still shares, names every other one and exits 5"
                )
            if recovery.push is not None and recovery.push.succeeded and recovery.gc_error is not None:
                recovery.notes.append(f"garbage collection failed, but the push went through: {recovery.gc_error}")
            if self.probe is not None and recovery.rounds and not self.settings.dry_run:
                recovery.disk_final = self.probe.measure()
        except PruneError as exc:
            recovery.error = exc
        return recovery

    @staticmethod
    def _registry_back(recovery: Recovery) -> bool:
        """Whether the registry takes pushes again: GC succeeded, or failed but the restart ran."""
        for round_ in recovery.rounds:
            gc = round_.gc
            if gc is not None and gc.error is not None and not gc.restarted:
                return False
        return True

    def _decide(self, disk: DiskUsage | None) -> Decision:
        settings = self.settings
        found = settings.classification
        low = disk is not None and settings.min_free is not None and is_low(disk, settings.min_free)
        if settings.force:
            return Decision("forced")
        if found is not None and found.category in CANNOT_HELP:
            evidence = f" ({found.evidence})" if found.evidence else ""
            return Decision(
                None, "cannot-help", f"pruning the registry cannot help: the log shows {found.category.value}{evidence}"
            )
        if found is not None and found.prune_can_help:
            return Decision(found.category.value)
        if low:
            return Decision("low-disk")
        if found is not None:
            disk_text = " and the registry disk is not low" if disk is not None else ""
            return Decision(
                None, "cannot-help", f"pruning the registry cannot help: the log shows no registry failure{disk_text}"
            )
        assert disk is not None and settings.min_free is not None
        return Decision(
            None,
            "nothing-to-do",
            f"nothing to do: {format_bytes(disk.free_bytes)} free, at least {settings.min_free} required",
        )

    def _prune_rounds(self, recovery: Recovery) -> None:
        settings = self.settings
        cap: int | None = None
        base = self.configuration.policy_for
        while True:
            policy_for = capped(base, cap)
            plan = build_plan(
                self.backend,
                self.configuration,
                registry=self.client.url,
                progress=self.progress,
                stop=self.stop,
                policy_for=policy_for,
            )
            if settings.predict_catalog and plan.step_count:
                plan.reclaim = predict_catalog_reclaim(self.backend, plan, progress=self.progress, stop=self.stop)
            round_ = Round(cap, plan)
            recovery.rounds.append(round_)
            recovery.notes.extend(n for p in plan.repositories for n in p.notes if n not in recovery.notes)
            steps = plan.step_count
            predicted = format_bytes(plan.reclaim.bytes) if plan.reclaim else "unknown"
            keep_text = f"keep capped at {cap}" if cap is not None else "keep as configured"
            self.echo(
                f"round {len(recovery.rounds)} ({keep_text}): {plural(steps, 'manifest')} to delete, "
                f"predicted to free {predicted}"
            )
            if settings.dry_run:
                return
            if steps:
                executor = Executor(
                    self.backend,
                    concurrency=self.configuration.settings.concurrency,
                    stop=self.stop,
                    audit=self.audit,
                )
                round_.execution = executor.run(plan.pairs())
                deleted = len(round_.execution.by_status(Status.DELETED))
                attached = sum(round_.attachments_deleted.values())
                extra = f", {plural(attached, 'attachment')}" if attached else ""
                self.echo(f"deleted {plural(deleted, 'manifest')} ({plural(len(round_.deleted_tags), 'tag')}{extra})")
                if round_.execution.fatal is not None:
                    raise round_.execution.fatal
                if round_.execution.interrupted:
                    raise InterruptedRunError("interrupted during the prune; the report lists what was deleted")
            if settings.gc is not None:
                round_.gc = self._collect_garbage(plan)
                if round_.gc.interrupted:
                    raise InterruptedRunError("interrupted during garbage collection; the report lists what was done")
                if round_.gc.error is not None:
                    return
            if round_.gc is not None and round_.gc.after is not None:
                round_.free_after = round_.gc.after
            elif self.probe is not None:
                round_.free_after = self.probe.measure()
            if round_.free_after is not None:
                self.echo(f"disk after round {len(recovery.rounds)}: {round_.free_after}")
            next_cap = self._next_cap(recovery, round_, cap)
            if next_cap is None:
                return
            cap = next_cap

    def _next_cap(self, recovery: Recovery, round_: Round, cap: int | None) -> int | None:
        settings = self.settings
        usage = round_.free_after
        if usage is None or settings.min_free is None or not is_low(usage, settings.min_free):
            return None
        if settings.min_keep is None or settings.gc is None:
            recovery.notes.append(
                "free space is still under --min-free; pass --min-keep (and --gc-cmd) to let recover tighten keep"
            )
            return None
        current = cap if cap is not None else max(p.policy.keep for p in round_.plan.repositories)
        if current <= settings.min_keep:
            recovery.notes.append(
                f"free space is still under --min-free with keep at --min-keep "
                f"({settings.min_keep}); protected tags are never touched"
            )
            return None
        fresh = build_plan(self.backend, self.configuration, registry=self.client.url, stop=self.stop)
        shortfall = settings.min_free.required_bytes(usage.total_bytes) - usage.free_bytes
        chosen = choose_keep_cap(
            list(fresh.inventories.values()),
            self.configuration.policy_for,
            current=current,
            floor=settings.min_keep,
            shortfall=shortfall,
            now=fresh.generated_at,
        )
        self.echo(f"still {format_bytes(shortfall)} short of --min-free: tightening keep to {chosen}")
        return chosen

    def _collect_garbage(self, plan: Plan) -> GcResult:
        assert self.settings.gc is not None
        has_indexes = any(m.is_index for inv in plan.inventories.values() for m in inv.manifests.values())

        result = run_gc(
            self.settings.gc,
            probe=self.probe,
            has_indexes=has_indexes,
            echo=self.echo,
            wait_healthy=self._wait_healthy,
            stop=self.stop.is_set,
        )
        if result.summary is not None:
            self.echo(
                f"gc: {plural(result.summary.blobs_eligible, 'blob')} and "
                f"{plural(result.summary.manifests_eligible, 'manifest')} deleted; the undo window is now closed"
            )
        return result

    def _wait_healthy(self) -> None:
        for client in [self.client, *self.replicas]:  # every replica, each within the timeout
            wait_until(client.ping, timeout=self.settings.health_timeout)

    def _push(self, recovery: Recovery) -> None:
        settings = self.settings
        assert settings.push_command is not None
        recovery.push = run_push(
            settings.push_command, attempts=settings.push_attempts, backoff=settings.push_backoff, echo=self.echo
        )
        if not recovery.push.succeeded or settings.image is None:
            return
        clients = [self.client, *self.replicas]
        verify = verify_replicas(clients, settings.image)
        if not verify.ok and settings.gc is not None and settings.gc.restarts():
            # A stale blob cache let the client skip a layer: restart drops the cache, then push again.
            self.echo(
                f"verify: {settings.image} is broken ({'; '.join(verify.problems[:3])}); "
                "restarting the registry and pushing again"
            )
            run_restart(settings.gc, echo=self.echo, wait_healthy=self._wait_healthy)
            again = run_push(settings.push_command, attempts=1, echo=self.echo)
            recovery.push.attempts.extend(again.attempts)
            recovery.push.succeeded = again.succeeded
            verify = verify_replicas(clients, settings.image) if again.succeeded else verify
        recovery.push.verify = verify
        state = "is whole" if verify.ok else "is BROKEN: " + "; ".join(verify.problems[:3])
        self.echo(f"verify: {settings.image} {state} ({plural(verify.checked_blobs, 'blob')} read back)")
