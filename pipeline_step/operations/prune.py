"""``plan`` and ``prune`` as one library call: plan, then (unless a dry run) execute.

``plan``, ``prune`` and ``prune --dry-run`` all run the same collection and
planning code; only the execution step differs. The run's outcome is worked
out once, from the plan and what the executor did (:meth:`PruneRun.outcome`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipeline_step.backends.base import Backend
from pipeline_step.errors import AuthenticationError, ExitCode
from pipeline_step.execution.audit import AuditedDeletion
from pipeline_step.execution.executor import TAGS_GONE, AuditSink, ExecutionResult, Executor, Status, StepOutcome
from pipeline_step.operations.outcome import Outcome
from pipeline_step.operations.unfinished import unfinished_manifests
from pipeline_step.planning.attachments import attachment_kinds, describe_attachments
from pipeline_step.planning.build import Plan, build_plan
from pipeline_step.planning.leftovers import plan_leftovers
from pipeline_step.planning.planner import Action, Phase
from pipeline_step.planning.reclaim import predict_catalog_reclaim, reclaimable_blobs
from pipeline_step.policy.config import Configuration
from pipeline_step.registry.digest import short
from pipeline_step.registry.model import RegistryLine
from pipeline_step.support.progress import ProgressFactory, null_progress
from pipeline_step.support.units import format_bytes, plural


@dataclass(frozen=True, slots=True)
class Tally:
    """Tags per fate (untagged children are not counted as tags), and manifests deleted.

    ``deleted`` and ``kept`` count the images' tags; attachments (signatures, attestations,
    SBOMs, referrers) are counted apart, per kind, whether tagged or not.
    """

    deleted: int = 0
    kept: int = 0
    skipped: int = 0
    failed: int = 0
    not_attempted: int = 0
    manifests_deleted: int = 0
    repaired: int = 0  # ghost tags removed (or, in a dry run, to remove)
    attachments_deleted: int = 0
    attachments_kept: int = 0
    attachment_kinds: dict[str, int] = field(default_factory=dict)  # kind -> attachments deleted
    indexes_rewritten: int = 0  # kept referrers indexes put back without a deleted entry
    orphans: int = 0
    orphans_deleted: int = 0


def _tags(outcomes: list[StepOutcome]) -> int:
    return sum(len(outcome.step.tags) for outcome in outcomes if outcome.step.phase is not Phase.REWRITE)


@dataclass
class PruneRun:
    command: str  # plan | prune
    dry_run: bool
    plan: Plan
    execution: ExecutionResult | None  # None for plan and --dry-run
    started: datetime
    notes: list[str] = field(default_factory=list)
    registry_line: RegistryLine | None = None  # None in direct mode, or when no repository was read
    orphan_bytes: int | None = None  # what GC could free were every orphan deleted

    @property
    def executed(self) -> bool:
        return self.execution is not None

    def tally(self) -> Tally:
        repositories = self.plan.repositories
        kept = sum(
            1 for p in repositories for d in p.decisions if d.action is Action.KEEP and d.tag and not d.attachment
        )
        orphans = [orphan for p in repositories for orphan in p.orphans]
        attachments_kept = sum(sum(p.attachments_kept.values()) for p in repositories)
        execution = self.execution
        if execution is None:
            deleted = sum(1 for p in repositories for d in p.deletions if d.tag is not None and not d.attachment)
            repairs = sum(len(p.repairs) for p in repositories)
            steps = [step for p in repositories for step in p.steps]
            kinds = attachment_kinds(steps)
            return Tally(
                deleted=deleted,
                kept=kept,
                manifests_deleted=sum(1 for step in steps if step.phase is not Phase.REWRITE),
                repaired=repairs,
                attachments_deleted=sum(kinds.values()),
                attachments_kept=attachments_kept,
                attachment_kinds=kinds,
                indexes_rewritten=sum(1 for step in steps if step.phase is Phase.REWRITE),
                orphans=len(orphans),
                orphans_deleted=sum(1 for orphan in orphans if orphan.action is Action.DELETE),
            )
        done = [o for status in TAGS_GONE for o in execution.by_status(status)]
        kinds = attachment_kinds([outcome.step for outcome in done])
        done_digests = {(o.step.repository, o.step.digest) for o in done}
        return Tally(
            deleted=_tags([o for o in done if o.step.attachment is None]),
            kept=kept,
            skipped=_tags(execution.by_status(Status.SKIPPED)),
            failed=_tags(execution.by_status(Status.FAILED)),
            not_attempted=_tags(execution.by_status(Status.NOT_ATTEMPTED)),
            manifests_deleted=sum(1 for o in execution.by_status(Status.DELETED) if o.step.phase is not Phase.REWRITE),
            repaired=len(execution.repaired),
            attachments_deleted=sum(kinds.values()),
            attachments_kept=attachments_kept,
            attachment_kinds=kinds,
            indexes_rewritten=sum(1 for o in done if o.step.phase is Phase.REWRITE),
            orphans=len(orphans),
            orphans_deleted=sum(1 for orphan in orphans if (orphan.repository, orphan.digest) in done_digests),
        )

    @property
    def blocked(self) -> list[str]:
        return [p.blocked for p in self.plan.repositories if p.blocked]

    def outcome(self) -> Outcome:
        """planned (plan, --dry-run) | ok | partial (failures, blocked repositories) | failed | interrupted."""
        execution = self.execution
        if execution is None:
            return Outcome("planned", ExitCode.OK, self._summary("planned"))
        if execution.interrupted:
            return Outcome("interrupted", ExitCode.INTERRUPTED, self._summary("interrupted"))
        if execution.fatal is not None:
            return Outcome("failed", execution.fatal.exit_code, self._summary("failed"), (execution.fatal,))
        if execution.failed or self.blocked:
            # A blocked repository was not pruned at all: an unattended job must not stay green.
            return Outcome("partial", ExitCode.PARTIAL, self._summary("partial"))
        return Outcome("ok", ExitCode.OK, self._summary("ok"))

    def _summary(self, name: str) -> str:
        s = self.tally()
        where = f"in {plural(len(self.plan.repositories), 'repository', 'repositories')}"
        reclaim = self.plan.reclaim
        predicted = f"; garbage collection would free about {format_bytes(reclaim.bytes)}" if reclaim else ""
        attached = ""
        if s.attachments_deleted:
            kinds = describe_attachments(s.attachment_kinds)
            attached = f" and their {plural(s.attachments_deleted, 'attachment')} ({kinds})"
        rewritten = f", {plural(s.indexes_rewritten, 'referrers index', 'referrers indexes')} rewritten" * bool(
            s.indexes_rewritten
        )
        if self.execution is None:
            mode = "plan" if self.command == "plan" else "dry run"
            repairs = f", {plural(s.repaired, 'ghost tag')} to repair" if s.repaired else ""
            return (
                f"{mode}: {plural(s.deleted, 'tag')} to delete{attached} ({plural(s.manifests_deleted, 'manifest')})"
                f"{rewritten}{repairs}, {s.kept} kept {where}{predicted}. Nothing was changed."
            )
        parts = [
            f"deleted {plural(s.deleted, 'tag')}{attached} ({plural(s.manifests_deleted, 'manifest')}){rewritten}",
            f"kept {s.kept}",
        ]
        if s.skipped:
            parts.append(f"skipped {s.skipped}")
        if s.failed:
            parts.append(f"FAILED {s.failed}")
        orphaned = len(self.execution.by_status(Status.MANIFEST_FAILED))
        if orphaned:
            parts.append(f"FAILED {plural(orphaned, 'manifest')} whose tags are gone")
        if s.not_attempted:
            parts.append(f"not attempted {s.not_attempted}")
        if s.repaired:
            parts.append(f"repaired {plural(s.repaired, 'ghost tag')}")
        text = f"prune {name}: " + ", ".join(parts) + f" {where}{predicted}."
        if s.manifests_deleted:
            text += " Run garbage collection to free the disk space (registry-prune gc)."
        return text


def _prediction_note(plan: Plan, *, direct: bool, unreadable: str = "") -> str | None:
    """What the reclaim prediction covers, in words."""
    reclaim = plan.reclaim
    if reclaim is None or not plan.step_count:
        return None
    if reclaim.catalog_wide:
        count = reclaim.repositories_scanned
        every = "the one repository" if count == 1 else f"all {count} repositories"
        scope = f"checked against {every} of the catalog"
    else:
        count = reclaim.repositories_scanned
        selected = plural(count, "selected repository", "selected repositories")
        scope = unreadable + (
            f"an upper bound: only the {selected} {'was' if count == 1 else 'were'} checked "
            "for layers shared with others (--predict catalog checks them all)"
        )
    if not direct:
        scope += "; untagged manifests, invisible through the API, may keep a few more"
    return f"reclaim prediction ({format_bytes(reclaim.bytes)} in {plural(reclaim.blobs, 'blob')}): {scope}"


def orphan_bytes(plan: Plan) -> int | None:
    """What garbage collection could free if every orphan were deleted; None without orphans."""
    orphans = [orphan for p in plan.repositories for orphan in p.orphans]
    if not orphans:
        return None
    freed, _ = reclaimable_blobs(
        [plan.inventories[p.repository] for p in plan.repositories],
        {name: {o.digest for o in orphans if o.repository == name} for name in plan.inventories},
    )
    return sum(freed.values())


def orphan_note(plan: Plan, held: int) -> str:
    """How many orphans there are, what they hold, and what becomes of them."""
    orphans = [orphan for p in plan.repositories for orphan in p.orphans]
    doomed = sum(1 for o in orphans if o.action is Action.DELETE)
    fates = []
    if doomed:
        fates.append(f"{doomed} deleted")
    if len(orphans) > doomed:
        fates.append(f"{len(orphans) - doomed} kept (see each one's reason)")
    return (
        f"{plural(len(orphans), 'orphan')} (attachments whose subject is gone) hold {format_bytes(held)} "
        f"that garbage collection could free: {', '.join(fates)}"
    )


def interrupted_deletions(plan: Plan, history: Mapping[tuple[str, str], AuditedDeletion]) -> list[AuditedDeletion]:
    """Deletions an earlier run was killed in: tags still listed, resolving to nothing, whose
    manifest the undo log holds. The registry's own DELETE removes the manifest's revision before
    its tags, so a DELETE cut short by the client's death leaves exactly these."""
    found: dict[tuple[str, str], AuditedDeletion] = {}
    for inventory in plan.inventories.values():
        for tag in sorted(inventory.vanished):
            deletion = history.get((inventory.name, tag))
            if deletion is not None:
                found.setdefault((deletion.repository, deletion.digest), deletion)
    return list(found.values())


def describe_interrupted(deletion: AuditedDeletion) -> str:
    tags = ", ".join(deletion.tags)
    return (
        f"an interrupted deletion: {deletion.repository}@{short(deletion.digest)} ({tags}) was half deleted; "
        "its manifest is put back from the undo log so its tags resolve again, then it is planned anew"
    )


def prune(
    backend: Backend,
    configuration: Configuration,
    *,
    dry_run: bool,
    command: str = "prune",
    repositories: list[str] | None = None,
    predict: str = "selected",
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
    audit: AuditSink | None = None,
    history: Callable[[], Mapping[tuple[str, str], AuditedDeletion]] | None = None,
) -> PruneRun:
    """Plan every selected repository and, unless ``dry_run``, delete what the plan says.

    ``history`` reads the undo records of earlier runs (``latest_intents``), only when some tag
    resolves to nothing: it lets a run finish a deletion an earlier run was killed in.

    ``predict`` is ``catalog`` to check the reclaim prediction against every
    repository of the catalog (exact), or ``selected`` (an upper bound).
    """
    started = datetime.now(timezone.utc)
    stop = stop or threading.Event()

    earlier: set[tuple[str, str]] | None = None

    def deleted_before() -> set[tuple[str, str]]:
        nonlocal earlier
        if earlier is None:
            earlier = {(d.repository, d.digest) for d in history().values()} if history is not None else set()
        return earlier

    def planned() -> Plan:
        return build_plan(
            backend,
            configuration,
            registry=backend.label,
            repositories=repositories,
            progress=progress,
            stop=stop,
            deleted_before=deleted_before,
        )

    plan = planned()
    notes: list[str] = []
    vanished = any(inventory.vanished for inventory in plan.inventories.values())
    first = next(iter(plan.inventories), None)
    line = backend.registry_line(first) if first is not None else None
    # Through the API an unfinished deletion can leave a manifest no tag names (3.x's untagged ones, an
    # index's children): only the undo log still knows it. Direct mode sees every revision itself.
    records = history() if history is not None and (vanished or not backend.direct) else {}
    interrupted = interrupted_deletions(plan, records) if vanished else []
    if interrupted and dry_run:
        notes.extend(f"would finish {describe_interrupted(d)}" for d in interrupted)
    elif interrupted:
        for deletion in interrupted:
            if backend.reinstate(deletion.repository, deletion.digest, deletion.manifest, deletion.media_type):
                notes.append(f"finished {describe_interrupted(deletion)}")
        plan = planned()  # its tags resolve again: plan them like any other
    if records and not backend.direct:
        leftovers = unfinished_manifests(backend, plan, records)
        for repository_plan in plan.repositories:
            plan_leftovers(repository_plan, plan.inventories[repository_plan.repository],
                           leftovers.get(repository_plan.repository, []))  # fmt: skip
    execution: ExecutionResult | None = None
    if not dry_run and (plan.step_count or any(p.repairs for p in plan.repositories)):
        bar = progress("delete", plan.step_count)

        def advance(_: StepOutcome) -> None:
            bar.advance()

        executor = Executor(
            backend, concurrency=configuration.settings.concurrency, stop=stop, audit=audit, on_step=advance
        )
        try:
            execution = executor.run(plan.pairs())
        finally:
            bar.close()
    elif not dry_run:
        execution = ExecutionResult()
    notes[:0] = [note for repository in plan.repositories for note in repository.notes]
    held = orphan_bytes(plan)
    if held is not None:
        notes.append(orphan_note(plan, held))
    run = PruneRun(command, dry_run, plan, execution, started, notes, line, orphan_bytes=held)
    unreadable = ""
    if predict == "catalog" and plan.step_count and not stop.is_set():
        try:
            plan.reclaim = predict_catalog_reclaim(backend, plan, progress=progress, stop=stop)
        except AuthenticationError as exc:
            unreadable = f"the catalog could not be read ({exc.message}), so "
    note = _prediction_note(plan, direct=backend.direct, unreadable=unreadable)
    if note is not None:
        run.notes.append(note)
    if execution is not None and execution.by_status(Status.DELETED):
        run.notes.extend(backend.notes)
    return run
