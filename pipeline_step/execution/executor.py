"""Execute a plan: DELETE by digest, safely, at bounded concurrency.

Before the first DELETE in a repository the executor

* checks that the registry accepts deletes at all (a DELETE of a digest that
  cannot exist: 404 means yes, 405 means no, and nothing is changed), and
* re-lists the tags and re-resolves every tag it is *not* deleting; a tag that
  now points at a digest about to be deleted withdraws that deletion.

Immediately before each DELETE it re-resolves the step's own tags; a tag that
was re-pushed since planning makes the step a skip. Indexes go before images,
images before orphaned children. Fatal errors (deletes disabled, auth, TLS,
connection) stop the run at once; other failures are recorded, and five in a
row stop it too. A stop request (SIGINT/SIGTERM) lets in-flight DELETEs finish.

A :class:`BatchDeleter` (the S3 backend) gets the same order a hundred steps
at a time: re-resolve all their tags at once, write their undo records, then
delete them together.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import Enum
from itertools import groupby
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

from pipeline_step.errors import (
    AuditWriteError,
    AuthenticationError,
    DeleteDisabledError,
    NotFoundError,
    PruneError,
    RegistryError,
    RegistryUnreachableError,
    Schema1ManifestError,
    TLSVerificationError,
)
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import DeleteStep, Phase, RepositoryPlan
from pipeline_step.registry.digest import short
from pipeline_step.registry.model import DeleteResult, RegistryLine
from pipeline_step.support.concurrency import run_bounded

log = logging.getLogger(__name__)

FATAL_ERRORS = (DeleteDisabledError, AuthenticationError, TLSVerificationError, RegistryUnreachableError)
MAX_CONSECUTIVE_FAILURES = 5
BATCH_STEPS = 100  # steps a BatchDeleter gets at once: few requests, and a short window after the re-check


class Status(str, Enum):
    DELETED = "deleted"
    ALREADY_GONE = "already-gone"
    SKIPPED = "skipped"
    UNTAGGED = "untagged"  # its planned tags are gone, the manifest stays: a tag nobody planned still names it
    TAGS_DELETED = "tags-deleted"  # its planned tags are gone; the run stopped before the manifest (a rerun ends it)
    MANIFEST_FAILED = "manifest-failed"  # its planned tags are gone, but the manifest's DELETE failed
    FAILED = "failed"
    NOT_ATTEMPTED = "not-attempted"


# The outcomes after which a step's tags are gone (its manifest may not be: UNTAGGED, TAGS_DELETED, MANIFEST_FAILED).
TAGS_GONE = (Status.DELETED, Status.ALREADY_GONE, Status.UNTAGGED, Status.TAGS_DELETED, Status.MANIFEST_FAILED)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    step: DeleteStep
    status: Status
    detail: str


class Deleter(Protocol):
    """What the executor needs from a backend (the API, or storage in direct mode)."""

    def check_delete_enabled(self, repository: str) -> None: ...

    def list_tags(self, repository: str) -> list[str]: ...

    def resolve_tag(self, repository: str, tag: str) -> str | None: ...

    def resolve_tag_manifest(self, repository: str, tag: str) -> tuple[str, bytes] | None:
        """The tag's digest and its manifest's verified bytes; None if the tag is gone."""
        ...

    def index_children(self, repository: str, digest: str) -> tuple[str, ...]: ...

    def manifest_bytes(self, repository: str, digest: str) -> bytes: ...

    def delete(self, step: DeleteStep) -> DeleteResult: ...

    def remove_ghost(self, repository: str, tag: str) -> bool:
        """Remove a tag listed without a link; False when it is not (or no longer) such a ghost."""
        ...

    def tidy(self, repository: str) -> None:
        """Finish what an interrupted run left half done (e.g. moved-out tag directories)."""
        ...

    def registry_line(self, repository: str) -> RegistryLine | None:
        """Which distribution line serves this content, or None where no registry is asked (direct)."""
        ...

    def untags(self, repository: str) -> bool:
        """Whether planned tags go one by one before their manifest (registries that delete single tags)."""
        ...

    def untag(self, repository: str, tag: str) -> DeleteResult:
        """Delete one tag and nothing else."""
        ...

    def reinstate(self, repository: str, digest: str, manifest: bytes, media_type: str) -> bool:
        """Put back a manifest whose deletion was cut short (its tags still listed), so it can be
        planned again; False where the backend repairs such tags itself (direct mode)."""
        ...


@runtime_checkable
class BatchDeleter(Deleter, Protocol):
    """A backend that does many steps in a few requests (S3: one listing re-checks every tag, and
    DeleteObjects takes 1,000 keys), where one request per step would cost more than the deletion."""

    def resolve_tags(self, repository: str, tags: Sequence[str]) -> dict[str, str | None]:
        """What ``resolve_tag`` answers for each tag, read fresh."""
        ...

    def manifests(self, repository: str, digests: Sequence[str]) -> dict[str, bytes | RegistryError]:
        """Each manifest's verified bytes for the undo log, or why it cannot be read."""
        ...

    def delete_many(self, steps: Sequence[DeleteStep]) -> list[DeleteResult | RegistryError]:
        """Delete one repository's steps; each step's result or error, in order."""
        ...


class AuditSink(Protocol):
    """Records a deletion's undo information before the DELETE is sent."""

    def record_intent(self, step: DeleteStep, manifest: bytes) -> None: ...

    def record_outcome(self, step: DeleteStep, status: str, detail: str) -> None: ...


@dataclass
class ExecutionResult:
    outcomes: list[StepOutcome] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (repository, ghost tag) removed
    fatal: PruneError | None = None
    interrupted: bool = False

    def by_status(self, status: Status) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.status in (Status.FAILED, Status.MANIFEST_FAILED)]

    @property
    def ok(self) -> bool:
        return self.fatal is None and not self.interrupted and not self.failed


class Executor:
    def __init__(
        self,
        deleter: Deleter,
        *,
        concurrency: int,
        stop: threading.Event | None = None,
        audit: AuditSink | None = None,
        on_step: Callable[[StepOutcome], None] = lambda outcome: None,
    ) -> None:
        self.deleter = deleter
        self.concurrency = concurrency
        self.stop = stop or threading.Event()
        self.audit = audit
        self.on_step = on_step
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._result = ExecutionResult()
        self._recorded: set[tuple[str, str]] = set()
        self._untagged: set[tuple[str, str]] = set()  # (repository, digest) whose planned tags are deleted

    def run(self, plans: Iterable[tuple[RepositoryPlan, RepositoryInventory]]) -> ExecutionResult:
        pending = [(plan, inventory) for plan, inventory in plans if plan.steps or plan.repairs]
        for plan, inventory in pending:
            if self._halted():
                self._mark_not_attempted(plan.steps)
                continue
            try:
                self.deleter.check_delete_enabled(plan.repository)
                withdrawn = self._revalidate(plan, inventory)
            except PruneError as exc:
                self._halt(exc)
                self._mark_not_attempted(plan.steps)
                continue
            steps = []
            for step in plan.steps:
                if step.digest in withdrawn:
                    self._record(StepOutcome(step, Status.SKIPPED, withdrawn[step.digest]))
                else:
                    steps.append(step)
            try:
                untagging = self.deleter.untags(plan.repository) and any(
                    step.tags and step.phase is not Phase.REWRITE for step in steps
                )
            except PruneError as exc:
                self._halt(exc)
                self._mark_not_attempted(steps)
                continue
            if untagging:
                steps = self._untag_first(plan, inventory, steps)
            for _, phase_steps in groupby(steps, key=lambda s: s.phase):
                batch = list(phase_steps)
                if isinstance(self.deleter, BatchDeleter):
                    for start in range(0, len(batch), BATCH_STEPS):
                        if self._halted():
                            break
                        self._execute_many(self.deleter, batch[start : start + BATCH_STEPS])
                else:
                    run_bounded(batch, self._execute, workers=self.concurrency, stop=self._halted)
                self._mark_not_attempted([s for s in batch if (s.repository, s.digest) not in self._recorded])
            self._repair(plan)
        self._result.interrupted = self.stop.is_set()
        return self._result

    # -- internals ---------------------------------------------------------

    def _repair(self, plan: RepositoryPlan) -> None:
        """Ghost tags, then the leftovers of interrupted runs: nothing here touches a manifest."""
        if self._halted():
            return
        try:
            for tag in plan.repairs:
                if self.deleter.remove_ghost(plan.repository, tag):
                    log.warning("%s:%s: removed a ghost tag (listed without its link)", plan.repository, tag)
                    self._result.repaired.append((plan.repository, tag))
            self.deleter.tidy(plan.repository)
        except PruneError as exc:
            self._halt(exc)

    def _halted(self) -> bool:
        return self.stop.is_set() or self._abort.is_set()

    def _revalidate(self, plan: RepositoryPlan, inventory: RepositoryInventory) -> dict[str, str]:
        """Withdraw deletions that a tag changed since planning now depends on."""
        doomed = {step.digest for step in plan.steps}
        own_tags = {tag for step in plan.steps for tag in step.tags}
        withdrawn: dict[str, str] = {}
        lock = threading.Lock()

        def check(tag: str, current: str | None) -> None:
            if current is None:
                return
            hits: list[tuple[str, str]] = []
            if current in doomed:
                hits.append((current, f"tag {tag} now points at this digest (changed after planning)"))
            if current != inventory.tags.get(tag):
                # New or moved: a new index could reference something we would delete.
                for child in self.deleter.index_children(plan.repository, current):
                    if child in doomed:
                        hits.append((child, f"new index tag {tag} references this digest"))
            if hits:
                with lock:
                    for digest, reason in hits:
                        withdrawn.setdefault(digest, reason)

        others = [tag for tag in self.deleter.list_tags(plan.repository) if tag not in own_tags]
        if isinstance(self.deleter, BatchDeleter):
            for tag, current in self.deleter.resolve_tags(plan.repository, others).items():
                check(tag, current)
        else:
            schema1 = inventory.schema1
            run_bounded(
                others, lambda tag: check(tag, self._current(plan.repository, tag, schema1=tag in schema1)),
                workers=self.concurrency, stop=self.stop.is_set,
            )  # fmt: skip
        for digest, reason in sorted(withdrawn.items()):
            log.warning("%s@%s: not deleting: %s", plan.repository, short(digest), reason)
        return withdrawn

    def _untag_first(
        self, plan: RepositoryPlan, inventory: RepositoryInventory, steps: list[DeleteStep]
    ) -> list[DeleteStep]:
        """Registries that delete single tags (3.x): remove every planned tag first, then ask the
        registry which tags are left. A tag it did not list at planning (hidden by its tag list, or
        pushed since) that names a doomed manifest keeps that manifest. Returns the steps whose
        manifest may now go by digest; that DELETE then scans only the tags left."""
        # A referrers index rewritten in place keeps its tag. The rest go phase by phase, so an
        # attachment's tag is never gone while its image still has one (the order the plan gives).
        tagged = [step for step in steps if step.tags and step.phase is not Phase.REWRITE]
        for _, phase_steps in groupby(tagged, key=lambda s: s.phase):
            run_bounded(list(phase_steps), self._untag, workers=self.concurrency, stop=self._halted)
        untagged = [step for step in tagged if (step.repository, step.digest) in self._untagged]
        self._mark_not_attempted([s for s in tagged if (s.repository, s.digest) not in self._recorded | self._untagged])
        if self._halted():
            self._stopped_after_untagging(untagged)
            return []
        doomed = {step.digest for step in untagged}
        known = set(inventory.tags) | set(inventory.unresolved) | set(inventory.schema1)
        known |= {tag for step in steps for tag in step.tags}
        keepers: dict[str, str] = {}
        lock = threading.Lock()

        def check(tag: str) -> None:
            current = self.deleter.resolve_tag(plan.repository, tag)
            if current in doomed:
                with lock:
                    keepers.setdefault(current, tag)

        try:
            unseen = [tag for tag in self.deleter.list_tags(plan.repository) if tag not in known]
            run_bounded(unseen, check, workers=self.concurrency, stop=self.stop.is_set)
        except PruneError as exc:
            self._halt(exc)
            self._stopped_after_untagging(untagged)
            return []
        for step in untagged:
            if step.digest in keepers:
                tag = keepers[step.digest]
                log.warning(
                    "%s@%s: kept: tag %s, unseen at planning, names it", plan.repository, short(step.digest), tag
                )
                self._record(
                    StepOutcome(
                        step,
                        Status.UNTAGGED,
                        f"its planned tags were deleted; the manifest stays: tag {tag}, which the registry's tag "
                        "list did not show at planning (hidden, or pushed since), still names it",
                    )
                )
        return [
            step
            for step in steps
            if not step.tags or step.phase is Phase.REWRITE or (step in untagged and step.digest not in keepers)
        ]

    def _stopped_after_untagging(self, steps: list[DeleteStep]) -> None:
        for step in steps:
            self._record(
                StepOutcome(
                    step,
                    Status.TAGS_DELETED,
                    "its tags were deleted; the run stopped before its manifest, which a rerun deletes "
                    "(from the undo log)",
                )
            )

    def _current(self, repository: str, tag: str, *, schema1: bool) -> str | None:
        """The digest ``tag`` names now. A schema1 tag by GET: 3.x fails a HEAD of one with a bare 500."""
        if not schema1:
            return self.deleter.resolve_tag(repository, tag)
        try:
            found = self.deleter.resolve_tag_manifest(repository, tag)
        except Schema1ManifestError:
            return None  # still schema1, so none of the digests planned (schema2 or OCI, all)
        return None if found is None else found[0]

    def _untag(self, step: DeleteStep) -> None:
        """Stage one on registries that delete single tags: re-check, write the undo record, untag."""
        if not self._prepare(step):
            return
        try:
            for tag in step.tags:
                self.deleter.untag(step.repository, tag)
        except RegistryError as exc:
            self._fail(step, exc, fatal=isinstance(exc, FATAL_ERRORS))
            return
        with self._lock:
            self._untagged.add((step.repository, step.digest))

    def _execute(self, step: DeleteStep) -> None:
        if (step.repository, step.digest) not in self._untagged and not self._prepare(step):
            return
        try:
            result = self.deleter.delete(step)
        except RegistryError as exc:
            note = self._check_after_error(step, exc)
            if note is not None:
                self._fail(step, exc, fatal=isinstance(exc, FATAL_ERRORS), note=note)
            return
        self._succeeded(step, result)

    def _succeeded(self, step: DeleteStep, result: DeleteResult) -> None:
        status = Status.DELETED if result is DeleteResult.DELETED else Status.ALREADY_GONE
        with self._lock:
            self._consecutive_failures = 0
        detail = (
            "deleted" if status is Status.DELETED else "already gone (deleted by an earlier attempt or someone else)"
        )
        log.debug("%s@%s: %s", step.repository, short(step.digest), detail)
        self._record(StepOutcome(step, status, detail))

    def _prepare(self, step: DeleteStep) -> bool:
        """Re-resolve the step's own tags and write its undo record; False (recorded) when it must not go on."""
        manifest: bytes | None = None
        try:
            for index, tag in enumerate(step.tags):
                if index == 0 and self.audit is not None:
                    # One GET both re-checks the tag and yields the bytes the undo log needs.
                    found = self.deleter.resolve_tag_manifest(step.repository, tag)
                    current = None if found is None else found[0]
                    if found is not None and current == step.digest:
                        manifest = found[1]
                else:
                    current = self.deleter.resolve_tag(step.repository, tag)
                if current is not None and current != step.digest:
                    self._record(
                        StepOutcome(
                            step,
                            Status.SKIPPED,
                            f"tag {tag} was re-pushed after planning (now {short(current)}); not deleted",
                        )
                    )
                    return False
            if self.audit is not None:
                if manifest is None:  # untagged (a child of a deleted index), or the tag vanished meanwhile
                    manifest = self.deleter.manifest_bytes(step.repository, step.digest)
                self.audit.record_intent(step, manifest)
        except AuditWriteError as exc:
            # No undo record, no DELETE: this step was not attempted, and nothing after it will be.
            self._record(StepOutcome(step, Status.NOT_ATTEMPTED, f"not deleted: {exc.message}"))
            self._halt(exc)
            return False
        except RegistryError as exc:
            self._fail(step, exc, fatal=isinstance(exc, FATAL_ERRORS))
            return False
        return True

    def _execute_many(self, deleter: BatchDeleter, steps: list[DeleteStep]) -> None:
        """``_execute`` for many steps of one repository: re-resolve, undo records, delete."""
        repository = steps[0].repository
        try:
            current = deleter.resolve_tags(repository, sorted({tag for step in steps for tag in step.tags}))
        except RegistryError as exc:
            for step in steps:
                self._fail(step, exc, fatal=isinstance(exc, FATAL_ERRORS))
            return
        ready: list[DeleteStep] = []
        for step in steps:
            moved = next((tag for tag in step.tags if current.get(tag) not in (None, step.digest)), None)
            if moved is not None:
                now = short(current[moved] or "")
                detail = f"tag {moved} was re-pushed after planning (now {now}); not deleted"
                self._record(StepOutcome(step, Status.SKIPPED, detail))
            else:
                ready.append(step)
        if self.audit is not None and ready:
            manifests = deleter.manifests(repository, [step.digest for step in ready])
            recorded: list[DeleteStep] = []
            for number, step in enumerate(ready):
                body = manifests.get(step.digest)
                if not isinstance(body, bytes):
                    error = body or RegistryError(f"manifest {step.digest} could not be read")
                    self._fail(step, error, fatal=isinstance(error, FATAL_ERRORS))
                    continue
                try:
                    self.audit.record_intent(step, body)
                except AuditWriteError as exc:
                    # No undo record, no deletion: none of these steps is deleted, and nothing after them.
                    for left in [*recorded, *ready[number:]]:
                        self._record(StepOutcome(left, Status.NOT_ATTEMPTED, f"not deleted: {exc.message}"))
                    self._halt(exc)
                    return
                recorded.append(step)
            ready = recorded
        if not ready or self._halted():
            return  # a stop before the deletions: the caller marks these not attempted
        try:
            results = deleter.delete_many(ready)
        except RegistryError as exc:
            results = [exc] * len(ready)
        for step, result in zip(ready, results, strict=True):
            if isinstance(result, RegistryError):
                note = self._check_after_error(step, result)
                if note is not None:
                    self._fail(step, result, fatal=isinstance(result, FATAL_ERRORS), note=note)
                continue
            self._succeeded(step, result)

    def _check_after_error(self, step: DeleteStep, exc: PruneError) -> str | None:
        """After a DELETE that errored: None if the manifest is gone anyway (recorded as done),
        else a note for the failure.

        A timeout or a dropped connection can hide a DELETE the registry did
        apply; reporting it as failed would send the operator after a deletion
        that happened. A refusal (405, 401, 403) changed nothing: no re-check.
        """
        if isinstance(exc, (DeleteDisabledError, AuthenticationError, TLSVerificationError)):
            return ""
        try:
            self.deleter.manifest_bytes(step.repository, step.digest)
        except NotFoundError:
            with self._lock:
                self._consecutive_failures = 0
            self._record(
                StepOutcome(
                    step,
                    Status.ALREADY_GONE,
                    f"the DELETE's answer was lost ({exc.message}), but the manifest is gone: it was deleted",
                )
            )
            return None
        except RegistryError as check:
            return f"; whether the registry applied the DELETE is unknown (re-check failed: {check.message})"
        return ""

    def _fail(self, step: DeleteStep, exc: PruneError, *, fatal: bool, note: str = "") -> None:
        if (step.repository, step.digest) in self._untagged:
            # The report must not call these tags failed: they are gone; only the manifest is left.
            detail = f"its tags were deleted, but the manifest's DELETE failed: {exc}{note}"
            self._record(StepOutcome(step, Status.MANIFEST_FAILED, detail))
        else:
            self._record(StepOutcome(step, Status.FAILED, f"{exc}{note}"))
        with self._lock:
            self._consecutive_failures += 1
            if fatal and self._result.fatal is None:
                self._result.fatal = exc
            elif self._consecutive_failures >= MAX_CONSECUTIVE_FAILURES and self._result.fatal is None:
                self._result.fatal = RegistryError(
                    f"stopped after {MAX_CONSECUTIVE_FAILURES} failed deletions in a row; last: {exc}",
                    hint="check the registry's health and logs, then rerun: the plan is recomputed",
                )
            else:
                return
        self._abort.set()

    def _record(self, outcome: StepOutcome) -> None:
        with self._lock:
            self._result.outcomes.append(outcome)
            self._recorded.add((outcome.step.repository, outcome.step.digest))
        if self.audit is not None and outcome.status is not Status.NOT_ATTEMPTED:
            try:
                self.audit.record_outcome(outcome.step, outcome.status.value, outcome.detail)
            except AuditWriteError as exc:
                self._halt(exc)  # the deletion itself is recorded: its intent is in the log
        self.on_step(outcome)

    def _halt(self, error: PruneError) -> None:
        with self._lock:
            if self._result.fatal is None:
                self._result.fatal = error
        self._abort.set()

    def _mark_not_attempted(self, steps: Iterable[DeleteStep]) -> None:
        reason = (
            "not attempted: the run was interrupted" if self.stop.is_set() else "not attempted: the run stopped early"
        )
        for step in steps:
            self._record(StepOutcome(step, Status.NOT_ATTEMPTED, reason))
