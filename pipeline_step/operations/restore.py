"""Undo a prune from its audit log: put the deleted manifests back and re-tag them.

A manifest DELETE removes only the registry's link to the manifest; its blobs
stay on disk until garbage collection. So until GC runs, PUTting the audited
manifest bytes back restores the image exactly (same bytes, same digest).

For each audited deletion, children first (an index needs its children):

1. If the manifest exists again (never deleted, or already restored), its
   bytes are PUT once more (a registry pruned directly answers from its cache
   for links that are gone until it restarts), then its tags are checked.
2. Otherwise every blob it references must still be readable (an index: every
   child manifest must exist). A blob is *read*, not HEADed: after GC a
   running registry's blob cache still answers HEAD for blobs that are gone.
   Anything missing makes the image unrestorable, and says which blobs.
3. PUT by digest, then PUT each tag. A tag that now points at another digest
   was re-pushed after the prune; it is left alone unless ``force``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from pipeline_step.errors import (
    AuthenticationError,
    ExitCode,
    RegistryError,
    RegistryProtocolError,
    RegistryUnreachableError,
    TLSVerificationError,
    UsageError,
)
from pipeline_step.execution.audit import AuditedDeletion
from pipeline_step.operations.outcome import Outcome
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.digest import compute_digest, short
from pipeline_step.registry.model import Manifest, parse_manifest
from pipeline_step.support.units import plural

# These stop the whole restore: nothing else would work either.
FATAL_ERRORS = (AuthenticationError, TLSVerificationError, RegistryUnreachableError)


class RestoreStatus(str, Enum):
    RESTORED = "restored"  # the manifest was PUT back (or would be, in a dry run)
    PRESENT = "present"  # the manifest was still (or again) there
    UNRESTORABLE = "unrestorable"  # a blob or child manifest is gone: GC ran
    FAILED = "failed"  # the registry refused or broke
    NOT_ATTEMPTED = "not-attempted"  # the run was interrupted first


class TagStatus(str, Enum):
    RESTORED = "restored"
    PRESENT = "present"  # already points at the audited digest
    CONFLICT = "conflict"  # points elsewhere now; left alone without force
    OVERWRITTEN = "overwritten"  # pointed elsewhere; force moved it back
    NOT_RESTORED = "not-restored"  # its manifest could not be restored
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TagOutcome:
    tag: str
    status: TagStatus
    detail: str = ""


@dataclass
class RestoreOutcome:
    deletion: AuditedDeletion
    status: RestoreStatus
    detail: str = ""
    missing: tuple[str, ...] = ()  # blobs or child manifests that are gone
    tags: list[TagOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (RestoreStatus.RESTORED, RestoreStatus.PRESENT) and all(
            t.status in (TagStatus.RESTORED, TagStatus.PRESENT, TagStatus.OVERWRITTEN) for t in self.tags
        )


@dataclass(frozen=True, slots=True)
class RestoreRow:
    """One tag (or one untagged manifest), filed under what happened to it."""

    section: str  # restored | present | unrestorable | conflicts | failed | not_attempted
    repository: str
    tag: str | None
    digest: str
    status: str
    detail: str
    missing: tuple[str, ...]


_TAG_SECTION = {
    TagStatus.RESTORED: "restored",
    TagStatus.OVERWRITTEN: "restored",
    TagStatus.PRESENT: "present",
    TagStatus.CONFLICT: "conflicts",
    TagStatus.FAILED: "failed",
}
_MANIFEST_SECTION = {
    RestoreStatus.RESTORED: "restored",
    RestoreStatus.PRESENT: "present",
    RestoreStatus.UNRESTORABLE: "unrestorable",
    RestoreStatus.FAILED: "failed",
    RestoreStatus.NOT_ATTEMPTED: "not_attempted",
}


@dataclass
class RestoreResult:
    registry: str
    outcomes: list[RestoreOutcome] = field(default_factory=list)
    dry_run: bool = False
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)

    def with_status(self, status: RestoreStatus) -> list[RestoreOutcome]:
        return [o for o in self.outcomes if o.status is status]

    def tags_with(self, *statuses: TagStatus) -> list[tuple[RestoreOutcome, TagOutcome]]:
        return [(o, t) for o in self.outcomes for t in o.tags if t.status in statuses]

    def rows(self) -> list[RestoreRow]:
        """A row per tag of a manifest that is back, else a row per tag (or one, untagged) of the manifest."""
        rows: list[RestoreRow] = []
        for item in self.outcomes:
            deletion = item.deletion
            cells: list[tuple[str | None, str, str, str]]  # tag, section, status, detail
            if deletion.tags and item.status in (RestoreStatus.RESTORED, RestoreStatus.PRESENT):
                cells = [(t.tag, _TAG_SECTION[t.status], t.status.value, t.detail) for t in item.tags]
            else:
                tags: list[str | None] = list(deletion.tags) or [None]
                section = _MANIFEST_SECTION[item.status]
                cells = [(tag, section, item.status.value, item.detail) for tag in tags]
            rows.extend(
                RestoreRow(section, deletion.repository, tag, deletion.digest, status, detail, item.missing)
                for tag, section, status, detail in cells
            )
        return rows

    def outcome(self) -> Outcome:
        """ok | partial (something could not be restored) | interrupted."""
        if self.interrupted:
            name, code = "interrupted", ExitCode.INTERRUPTED
        elif self.ok:
            name, code = "ok", ExitCode.OK
        else:
            name, code = "partial", ExitCode.PARTIAL
        return Outcome(name, code, self._summary(name))

    def _summary(self, name: str) -> str:
        count: dict[str, int] = {}
        tags_back = 0
        for row in self.rows():
            count[row.section] = count.get(row.section, 0) + 1
            tags_back += row.section == "restored" and row.tag is not None
        verb = "would restore" if self.dry_run else "restored"
        restored = len(self.with_status(RestoreStatus.RESTORED))
        parts = [f"{verb} {plural(restored, 'manifest')} ({plural(tags_back, 'tag')})"]
        if count.get("present"):
            parts.append(f"{count['present']} already there")
        if count.get("unrestorable"):
            parts.append(f"{len(self.with_status(RestoreStatus.UNRESTORABLE))} CANNOT be restored")
        if count.get("conflicts"):
            parts.append(f"{plural(count['conflicts'], 'tag')} re-pushed since (left alone)")
        if count.get("failed"):
            parts.append(f"FAILED {count['failed']}")
        if count.get("not_attempted"):
            parts.append(f"not attempted {count['not_attempted']}")
        mode = " (dry run: nothing was changed)" if self.dry_run else ""
        return f"restore {name}: " + ", ".join(parts) + f" into {self.registry}{mode}."

    def notes(self) -> list[str]:
        notes = []
        if self.with_status(RestoreStatus.UNRESTORABLE):
            notes.append(
                "garbage collection ran after the prune and removed the blobs listed above: those images can only "
                "be rebuilt and pushed again; whatever survived because another repository shares it was restored. "
                "Garbage collection closes the undo window."
            )
        if self.tags_with(TagStatus.CONFLICT):
            notes.append("re-pushed tags were left alone; rerun with --force to move them back to the pruned images")
        return notes


def select(
    deletions: Iterable[AuditedDeletion], *, tags: Iterable[str] = (), repositories: Iterable[str] = ()
) -> list[AuditedDeletion]:
    """The deletions to restore: all, or those of ``repositories`` / carrying ``tags``.

    An index that is selected brings the untagged children deleted with it.
    """
    pool = list(deletions)
    wanted_repos = set(repositories)
    if wanted_repos:
        unknown = sorted(wanted_repos - {d.repository for d in pool})
        if unknown:
            raise UsageError(
                f"repository {unknown[0]!r} is not in the audit log",
                hint=f"it has: {', '.join(sorted({d.repository for d in pool})) or 'no deletions'}",
            )
        pool = [d for d in pool if d.repository in wanted_repos]
    for deletion in pool:
        _parse(deletion)  # a damaged record stops the restore before anything is sent
    wanted_tags = set(tags)
    if not wanted_tags:
        return pool
    audited = {tag for d in pool for tag in d.tags}
    unknown = sorted(wanted_tags - audited)
    if unknown:
        sample = ", ".join(sorted(audited)[:8]) + (", ..." if len(audited) > 8 else "")
        raise UsageError(
            f"tag {unknown[0]!r} is not in the audit log",
            hint=f"it records these tags: {sample or 'none'}",
        )
    chosen = [d for d in pool if wanted_tags & set(d.tags)]
    by_key = {(d.repository, d.digest): d for d in pool}
    stack = list(chosen)
    while stack:
        parent = stack.pop()
        for child in _parse(parent).children:
            extra = by_key.get((parent.repository, child.digest))
            if extra is not None and extra not in chosen:
                chosen.append(extra)
                stack.append(extra)
    return chosen


def _parse(deletion: AuditedDeletion) -> Manifest:
    if compute_digest(deletion.manifest) != deletion.digest:
        raise UsageError(
            f"the audit record of {deletion.repository}@{deletion.digest} holds bytes of another digest",
            hint="the audit file was altered; restore from an unmodified copy",
        )
    return parse_manifest(deletion.manifest, deletion.digest, deletion.media_type or None)


def children_first(deletions: list[AuditedDeletion]) -> list[AuditedDeletion]:
    """Images before indexes, and an index after any index it references."""
    parsed = {(d.repository, d.digest): _parse(d) for d in deletions}
    depth: dict[tuple[str, str], int] = {}

    def depth_of(key: tuple[str, str]) -> int:
        if key not in depth:
            manifest = parsed[key]
            inner = [depth_of((key[0], c.digest)) for c in manifest.children if (key[0], c.digest) in parsed]
            depth[key] = 1 + max(inner, default=0) if manifest.is_index else 0
        return depth[key]

    return sorted(deletions, key=lambda d: (depth_of((d.repository, d.digest)), d.repository, d.digest))


class Restorer:
    """Restores audited deletions through one client. ``echo`` gets a line per image."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        force: bool = False,
        dry_run: bool = False,
        echo: Callable[[str], None] = lambda line: None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.force = force
        self.dry_run = dry_run
        self.echo = echo
        self.stop = stop
        self._readable: dict[tuple[str, str], bool] = {}
        self._not_restored: set[tuple[str, str]] = set()  # audited manifests this run could not put back
        self._would_exist: set[tuple[str, str]] = set()  # restored in a dry run

    def run(self, deletions: list[AuditedDeletion]) -> RestoreResult:
        result = RestoreResult(self.client.url, dry_run=self.dry_run)
        for deletion in children_first(deletions):
            if self.stop():
                result.interrupted = True
                result.outcomes.append(RestoreOutcome(deletion, RestoreStatus.NOT_ATTEMPTED, "interrupted"))
                continue
            outcome = self._restore(deletion)
            if outcome.status in (RestoreStatus.UNRESTORABLE, RestoreStatus.FAILED):
                self._not_restored.add((deletion.repository, deletion.digest))
            result.outcomes.append(outcome)
            self.echo(describe(outcome, dry_run=self.dry_run))
        result.interrupted = result.interrupted or self.stop()  # like a prune: a stop request makes it interrupted
        return result

    # -- one manifest --------------------------------------------------------

    def _restore(self, deletion: AuditedDeletion) -> RestoreOutcome:
        repo, digest = deletion.repository, deletion.digest
        manifest = _parse(deletion)
        try:
            if self._exists(repo, digest):
                detail = self._relink(repo, digest, deletion, manifest)
                outcome = RestoreOutcome(deletion, RestoreStatus.PRESENT, detail)
            else:
                missing = self._missing(repo, manifest)
                if missing:
                    return RestoreOutcome(
                        deletion,
                        RestoreStatus.UNRESTORABLE,
                        self._unrestorable_detail(repo, manifest, missing),
                        missing=tuple(missing),
                        tags=[TagOutcome(t, TagStatus.NOT_RESTORED) for t in deletion.tags],
                    )
                self._put(repo, digest, deletion, manifest)
                outcome = RestoreOutcome(deletion, RestoreStatus.RESTORED)
        except FATAL_ERRORS:
            raise
        except RegistryError as exc:
            return RestoreOutcome(
                deletion,
                RestoreStatus.FAILED,
                str(exc),
                tags=[TagOutcome(t, TagStatus.NOT_RESTORED) for t in deletion.tags],
            )
        outcome.tags = [self._retag(deletion, manifest, tag) for tag in deletion.tags]
        return outcome

    def _relink(self, repo: str, digest: str, deletion: AuditedDeletion, manifest: Manifest) -> str:
        """PUT the audited bytes even so: after a direct prune the registry's cache answers for a manifest
        whose link is gone until it restarts, and the same bytes again change nothing where it is real."""
        try:
            self._put(repo, digest, deletion, manifest)
        except FATAL_ERRORS:
            raise
        except RegistryError as exc:
            return f"the manifest is still there (not written again: {exc.message})"
        return "the manifest is still there"

    def _unrestorable_detail(self, repo: str, manifest: Manifest, missing: list[str]) -> str:
        plural = "s" if len(missing) > 1 else ""
        listed = ", ".join(missing)
        if manifest.is_index and all((repo, digest) in self._not_restored for digest in missing):
            return f"its child manifest{plural} {listed} could not be restored (see above)"
        what = "child manifest" if manifest.is_index else "blob"
        return (
            f"{what}{plural} {listed} no longer exist{'' if plural else 's'}: "
            "garbage collection ran after the prune, so this image cannot be restored"
        )

    def _exists(self, repo: str, reference: str) -> bool:
        if (repo, reference) in self._would_exist:
            return True
        return self.client.head_manifest(repo, reference) is not None

    def _missing(self, repo: str, manifest: Manifest) -> list[str]:
        if manifest.is_index:
            return [child.digest for child in manifest.children if not self._exists(repo, child.digest)]
        return [blob.digest for blob in manifest.blobs() if not self._blob_readable(repo, blob.digest)]

    def _blob_readable(self, repo: str, digest: str) -> bool:
        key = (repo, digest)
        if key not in self._readable:
            self._readable[key] = self.client.blob_readable(repo, digest)
        return self._readable[key]

    def _put(self, repo: str, reference: str, deletion: AuditedDeletion, manifest: Manifest) -> None:
        if self.dry_run:
            self._would_exist.add((repo, reference))
            return
        stored = self.client.put_manifest(repo, reference, deletion.manifest, manifest.media_type)
        if stored != deletion.digest:  # put_manifest verifies this too; never re-tag the wrong bytes
            raise RegistryProtocolError(f"the registry stored {repo}:{reference} as {stored}, not {deletion.digest}")

    def _retag(self, deletion: AuditedDeletion, manifest: Manifest, tag: str) -> TagOutcome:
        repo = deletion.repository
        try:
            head = None if (repo, tag) in self._would_exist else self.client.head_manifest(repo, tag)
            if head is not None and head.digest == deletion.digest:
                return TagOutcome(tag, TagStatus.PRESENT)
            if head is not None and not self.force:
                return TagOutcome(
                    tag,
                    TagStatus.CONFLICT,
                    f"now points at {short(head.digest)} (pushed after the prune?); "
                    "left alone, pass --force to move it back",
                )
            self._put(repo, tag, deletion, manifest)
        except FATAL_ERRORS:
            raise
        except RegistryError as exc:
            return TagOutcome(tag, TagStatus.FAILED, str(exc))
        if head is not None:
            return TagOutcome(tag, TagStatus.OVERWRITTEN, f"moved back from {short(head.digest)} (--force)")
        return TagOutcome(tag, TagStatus.RESTORED)


def describe(outcome: RestoreOutcome, *, dry_run: bool = False) -> str:
    """One line per image: ``restored team/app:1.0 (sha256:…)``."""
    deletion = outcome.deletion
    names = ", ".join(f"{deletion.repository}:{t}" for t in deletion.tags) or f"{deletion.repository} (untagged)"
    where = f"{names} ({short(deletion.digest)})"
    if outcome.status is RestoreStatus.UNRESTORABLE:
        return f"cannot restore {where}: {outcome.detail}"
    if outcome.status is RestoreStatus.FAILED:
        return f"FAILED to restore {where}: {outcome.detail}"
    if outcome.status is RestoreStatus.RESTORED:
        verb = "would restore" if dry_run else "restored"
    elif any(t.status in (TagStatus.RESTORED, TagStatus.OVERWRITTEN) for t in outcome.tags):
        verb = "would re-tag" if dry_run else "re-tagged"
    else:
        verb = "already there:"
    problems = [f"tag {t.tag} {t.status.value}: {t.detail}" for t in outcome.tags if t.detail]
    return f"{verb} {where}" + ("; " + "; ".join(problems) if problems else "")
