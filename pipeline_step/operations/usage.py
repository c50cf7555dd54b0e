"""``usage``: where the registry's space goes, and what pruning under a policy would reclaim.

Every repository in the catalog is scanned, because garbage collection keeps a
blob that *any* surviving manifest in *any* repository references: a base
layer shared by two repositories is counted once, and is reclaimable only if
no survivor anywhere still uses it.

Through the API only tagged manifests (and index children) are visible; an
untagged revision that shares a layer with a deleted manifest keeps it alive
without us knowing, so API figures can overstate the reclaim. Direct mode
reads every revision and is exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from pipeline_step.errors import ExitCode
from pipeline_step.operations.outcome import Outcome
from pipeline_step.planning.attachments import find_attachments
from pipeline_step.planning.build import InventorySource, Plan, build_plan, select_repositories
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.reclaim import (
    PendingGarbage,
    ReclaimEstimate,
    check_stop,
    reclaimable_blobs,
    referenced,
)
from pipeline_step.policy.config import Configuration
from pipeline_step.registry.model import Manifest
from pipeline_step.support.progress import ProgressFactory, null_progress
from pipeline_step.support.units import format_bytes, plural


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    repository: str
    tags: int
    manifests: int
    referenced_bytes: int  # every blob its manifests reference, each once (may be shared with others)
    reclaimable_bytes: int  # blobs GC would free that this repository's deletions reference
    tags_to_delete: int
    selected: bool  # the policy applies here (else it is scanned only to protect shared blobs)
    blocked: str | None = None
    attachments: int = 0  # signatures, attestations, SBOMs and referrers (manifests), counted apart from images
    attachments_to_delete: int = 0
    orphans: int = 0  # attachments whose subject is gone (selected repositories only: they are planned)
    orphan_bytes: int = 0  # what GC could free if this repository's orphans went


@dataclass(frozen=True, slots=True)
class Schema1Tag:
    repository: str
    tag: str
    digest: str | None  # None where the registry (3.x) cannot even say which


@dataclass
class Usage:
    """What ``usage`` measured, the whole registry and each repository."""

    generated_at: datetime
    policy_scope: list[str]
    exact: bool  # direct mode sees untagged revisions too
    repositories: list[RepositoryUsage] = field(default_factory=list)
    tags: int = 0
    manifests: int = 0
    referenced_bytes: int = 0  # each blob once across the whole registry
    reclaimable_bytes: int = 0  # each blob once; can be less than the sum of the rows
    reclaimable_blobs: int = 0
    schema1: list[Schema1Tag] = field(default_factory=list)
    upgrade_check: bool = False  # schema1 manifests make the outcome "blocked" (exit 8)
    waiting_for_gc: PendingGarbage | None = None  # already unreferenced, freed by the next GC
    attachments: int = 0
    orphans: int = 0
    orphan_bytes: int = 0  # each blob once, whole registry
    plan: Plan | None = None

    def outcome(self) -> Outcome:
        count = len(self.repositories)
        attached = f" (and {self.attachments} attachments)" if self.attachments else ""
        orphans = (
            f"; {self.orphans} orphaned attachments hold {format_bytes(self.orphan_bytes)}" if self.orphans else ""
        )
        waiting = ""
        if self.waiting_for_gc is not None:
            at_least = "" if self.waiting_for_gc.exact else "at least "
            waiting = f"; {at_least}{format_bytes(self.waiting_for_gc.bytes)} already waiting for garbage collection"
        message = (
            f"{plural(count, 'repository', 'repositories')}, {plural(self.tags, 'tag')}{attached}, "
            f"{format_bytes(self.referenced_bytes)} referenced{waiting}; pruning under the policy would reclaim "
            f"{format_bytes(self.reclaimable_bytes)} more{orphans}"
        )
        if self.schema1:
            where = sorted({entry.repository for entry in self.schema1})
            message += (
                f"; {plural(len(self.schema1), 'tag')} in {', '.join(where[:5])}{' …' if len(where) > 5 else ''} "
                "name schema1 manifests, which registry 3.x cannot read and whose garbage collection they stop"
            )
            if self.upgrade_check:
                return Outcome("blocked", ExitCode.UPGRADE_BLOCKED, f"not ready for registry 3.x: {message}")
        elif self.upgrade_check:
            message += "; no schema1 manifests: ready for registry 3.x"
        return Outcome("ok", ExitCode.OK, message)


def _blob_bytes(manifests: Iterable[Manifest]) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for manifest in manifests:
        blobs.update(referenced(manifest))
    return blobs


def measure_usage(
    source: InventorySource,
    configuration: Configuration,
    *,
    registry: str,
    patterns: list[str],
    exact: bool = False,
    upgrade_check: bool = False,
    now: datetime | None = None,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
    pending: Callable[[set[str]], PendingGarbage] | None = None,
) -> Usage:
    """Scan the whole catalog; plan the repositories ``patterns`` select; attribute the reclaim.
    ``pending`` counts the blobs outside the set of every digest still referenced: what already
    waits for GC, before any prune."""
    now = now or datetime.now(timezone.utc)
    selected = select_repositories(source, patterns)
    others: list[RepositoryInventory] = []
    for name in source.catalog():
        if name not in selected:
            others.append(source.collect(name, progress=progress))
            check_stop(stop)
    plan = build_plan(
        source,
        configuration,
        registry=registry,
        repositories=selected,
        now=now,
        progress=progress,
        stop=stop,
        extra_inventories=others,
    )
    inventories = [*plan.inventories.values(), *others]
    deleted = plan.deleted_digests()
    freed, count = reclaimable_blobs(inventories, deleted)
    plan.reclaim = ReclaimEstimate(sum(freed.values()), len(freed), count, catalog_wide=True)
    plans = {repo_plan.repository: repo_plan for repo_plan in plan.repositories}
    usage = Usage(generated_at=now, policy_scope=list(patterns), exact=exact, upgrade_check=upgrade_check, plan=plan)
    everything: dict[str, int] = {}
    all_orphans: set[tuple[str, str]] = set()
    for inventory in sorted(inventories, key=lambda inv: inv.name):
        schema1 = sorted(inventory.schema1.items())
        usage.schema1.extend(Schema1Tag(inventory.name, tag, digest) for tag, digest in schema1)
        blobs = _blob_bytes(inventory.manifests.values())
        everything.update(blobs)
        repo_plan = plans.get(inventory.name)
        gone = deleted.get(inventory.name, set())
        freed_here = _blob_bytes(inventory.manifests[d] for d in gone if d in inventory.manifests)
        found = find_attachments(inventory)
        orphans = repo_plan.orphans if repo_plan else []
        orphan_freed, _ = reclaimable_blobs(inventories, {inventory.name: {o.digest for o in orphans}})
        all_orphans.update((inventory.name, o.digest) for o in orphans)
        usage.repositories.append(
            RepositoryUsage(
                repository=inventory.name,
                tags=len(inventory.tags) + len(inventory.unresolved) + len(inventory.schema1),
                manifests=len(inventory.manifests),
                referenced_bytes=sum(blobs.values()),
                reclaimable_bytes=sum(size for digest, size in freed_here.items() if digest in freed),
                tags_to_delete=sum(1 for d in repo_plan.deletions if d.tag is not None) if repo_plan else 0,
                selected=repo_plan is not None,
                blocked=repo_plan.blocked if repo_plan else None,
                attachments=len(found.attachments) + len(found.contained),
                attachments_to_delete=sum(1 for step in repo_plan.deleting if step.attachment) if repo_plan else 0,
                orphans=len(orphans),
                orphan_bytes=sum(orphan_freed.values()),
            )
        )
    usage.tags = sum(row.tags for row in usage.repositories)
    usage.manifests = sum(row.manifests for row in usage.repositories)
    usage.referenced_bytes = sum(everything.values())
    usage.reclaimable_bytes = plan.reclaim.bytes
    usage.reclaimable_blobs = plan.reclaim.blobs
    if pending is not None:
        usage.waiting_for_gc = pending(set(everything))  # every manifest and blob still referenced
    usage.attachments = sum(row.attachments for row in usage.repositories)
    usage.orphans = len(all_orphans)
    freed_orphans, _ = reclaimable_blobs(
        inventories, {name: {d for repo, d in all_orphans if repo == name} for name in plan.inventories}
    )
    usage.orphan_bytes = sum(freed_orphans.values())
    return usage
