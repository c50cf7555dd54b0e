"""Where the registry's space goes, and what pruning under a policy would reclaim.

Every repository in the catalog is scanned, because garbage collection keeps a
blob that *any* surviving manifest in *any* repository references: a base
layer shared by two repositories is counted once, and is reclaimable only if
no survivor anywhere still uses it. The same catalog-wide check is available
to ``plan``, ``prune``, ``recover`` and ``gc`` as :func:`predict_catalog_reclaim`.

Through the API only tagged manifests (and index children) are visible; an
untagged revision that shares a layer with a deleted manifest keeps it alive
without us knowing, so API figures can overstate the reclaim. Direct mode
(``--storage-root``) reads every revision and is exact.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Iterable, Mapping

from pydantic import BaseModel, Field

from pipeline_step import __version__, jsonout
from pipeline_step.errors import InterruptedRunError
from pipeline_step.inventory.model import RepositoryInventory
from pipeline_step.planning.build import InventorySource, Plan, build_plan, select_repositories
from pipeline_step.planning.reclaim import ReclaimEstimate, reclaimable_blobs, referenced
from pipeline_step.policy.config import Configuration
from pipeline_step.progress import ProgressFactory, null_progress
from pipeline_step.registry.model import Manifest


class RepositoryUsage(BaseModel):
    repository: str
    tags: int
    manifests: int
    referenced_bytes: int  # every blob its manifests reference, each once (may be shared with others)
    reclaimable_bytes: int  # blobs GC would free that this repository's deletions reference
    tags_to_delete: int
    selected: bool  # the policy applies here (else it is scanned only to protect shared blobs)
    blocked: str | None = None


class UsageReport(BaseModel):
    tool: str = "registry-prune"
    version: str = __version__
    command: str = "usage"
    registry: str
    generated_at: datetime
    policy_scope: list[str] = Field(default_factory=list)  # the --repo patterns the policy applied to
    repositories: list[RepositoryUsage] = Field(default_factory=list)
    tags: int = 0
    manifests: int = 0
    referenced_bytes: int = 0  # each blob once across the whole registry
    reclaimable_bytes: int = 0  # each blob once; can be less than the sum of the rows
    reclaimable_blobs: int = 0
    exact: bool = False  # True in direct mode, where untagged revisions are seen too

    def sorted_rows(self) -> list[RepositoryUsage]:
        return sorted(self.repositories, key=lambda r: (-r.reclaimable_bytes, -r.referenced_bytes, r.repository))

    def write(self, target: str | None) -> None:
        jsonout.write(self, target)


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise InterruptedRunError("interrupted while reading the registry; nothing was deleted")


def catalog_inventories(
    source: InventorySource,
    known: Mapping[str, RepositoryInventory],
    *,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
) -> list[RepositoryInventory]:
    """Every repository of the catalog: those in ``known`` as they are, the others collected now."""
    found = dict(known)
    for name in source.catalog():
        if name not in found:
            found[name] = source.collect(name, progress=progress)
            _check_stop(stop)
    return [found[name] for name in sorted(found)]


def predict_catalog_reclaim(
    source: InventorySource,
    plan: Plan,
    *,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
) -> ReclaimEstimate:
    """The reclaim of ``plan`` checked against every repository in the catalog.

    Repositories the plan already holds are not read again; the others are
    read without ages (one request per tag through the API). ``recover`` and
    ``gc`` call this to compare the prediction with what GC measured.
    """
    inventories = catalog_inventories(source, plan.inventories, progress=progress, stop=stop)
    freed, count = reclaimable_blobs(inventories, plan.deleted_digests())
    return ReclaimEstimate(sum(freed.values()), len(freed), count, catalog_wide=True)


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
    now: datetime | None = None,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
) -> tuple[UsageReport, Plan]:
    """Scan the whole catalog; plan the repositories ``patterns`` select; attribute the reclaim."""
    now = now or datetime.now(timezone.utc)
    selected = select_repositories(source, patterns)
    others: list[RepositoryInventory] = []
    for name in source.catalog():
        if name not in selected:
            others.append(source.collect(name, progress=progress))
            _check_stop(stop)
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
    report = UsageReport(registry=registry, generated_at=now, policy_scope=list(patterns), exact=exact)
    everything: dict[str, int] = {}
    for inventory in sorted(inventories, key=lambda inv: inv.name):
        blobs = _blob_bytes(inventory.manifests.values())
        everything.update(blobs)
        repo_plan = plans.get(inventory.name)
        gone = deleted.get(inventory.name, set())
        freed_here = _blob_bytes(inventory.manifests[d] for d in gone if d in inventory.manifests)
        report.repositories.append(
            RepositoryUsage(
                repository=inventory.name,
                tags=len(inventory.tags) + len(inventory.unresolved),
                manifests=len(inventory.manifests),
                referenced_bytes=sum(blobs.values()),
                reclaimable_bytes=sum(size for digest, size in freed_here.items() if digest in freed),
                tags_to_delete=sum(1 for d in repo_plan.deletions if d.tag is not None) if repo_plan else 0,
                selected=repo_plan is not None,
                blocked=repo_plan.blocked if repo_plan else None,
            )
        )
    report.tags = sum(row.tags for row in report.repositories)
    report.manifests = sum(row.manifests for row in report.repositories)
    report.referenced_bytes = sum(everything.values())
    report.reclaimable_bytes = plan.reclaim.bytes
    report.reclaimable_blobs = plan.reclaim.blobs
    return report, plan
