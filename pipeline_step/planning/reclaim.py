"""Predict the bytes garbage collection will free after a plan is executed.

GC frees a blob when no remaining manifest in any repository references it.
So the prediction is: every blob (layers, configs and the manifests' own
bytes) referenced by a deleted manifest, minus every blob still referenced by
a surviving manifest in any repository scanned, each blob counted once.
Repositories not scanned cannot protect a shared layer, so a prediction over
fewer repositories than the catalog is an upper bound; the catalog-wide
prediction (:func:`predict_catalog_reclaim`) reads every other repository too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from pipeline_step.errors import InterruptedRunError
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.registry.model import Manifest
from pipeline_step.support.progress import ProgressFactory, null_progress

if TYPE_CHECKING:
    from pipeline_step.planning.build import InventorySource, Plan


@dataclass(frozen=True, slots=True)
class ReclaimEstimate:
    bytes: int
    blobs: int
    repositories_scanned: int
    catalog_wide: bool = False  # every repository of the catalog was scanned


@dataclass(frozen=True, slots=True)
class PendingGarbage:
    """Bytes already waiting for garbage collection: blobs that no manifest references any more
    (a prune deleted their manifests, or an upload was abandoned), on disk until GC runs."""

    bytes: int
    blobs: int
    exact: bool  # the blob store itself was listed; else a lower bound from the undo logs
    source: str  # where the figure comes from, in the operator's words


def referenced(manifest: Manifest) -> Iterator[tuple[str, int]]:
    """(digest, size) of the manifest's own blob and every blob it references directly."""
    yield manifest.digest, manifest.size
    for blob in manifest.blobs():
        yield blob.digest, blob.size


def reclaimable_blobs(
    inventories: Iterable[RepositoryInventory], deleted: Mapping[str, set[str]]
) -> tuple[dict[str, int], int]:
    """(digest -> size of every blob GC would free, repositories scanned)."""
    surviving: set[str] = set()
    freed: dict[str, int] = {}
    count = 0
    for inventory in inventories:
        count += 1
        gone = deleted.get(inventory.name, set())
        for digest, manifest in inventory.manifests.items():
            target = freed if digest in gone else None
            for blob_digest, size in referenced(manifest):
                if target is None:
                    surviving.add(blob_digest)
                else:
                    target[blob_digest] = size
        # Untagged revisions (seen only in direct mode) keep their blobs alive.
        for digest in inventory.untagged - gone:
            surviving.add(digest)
            revision = inventory.manifests.get(digest)
            if revision is not None:
                surviving.update(d for d, _ in referenced(revision))
    return {digest: size for digest, size in freed.items() if digest not in surviving}, count


def predict_reclaim(
    inventories: Iterable[RepositoryInventory], deleted: Mapping[str, set[str]], *, catalog_wide: bool = False
) -> ReclaimEstimate:
    """``deleted`` maps repository name to the manifest digests the plan deletes."""
    reclaimable, count = reclaimable_blobs(inventories, deleted)
    return ReclaimEstimate(sum(reclaimable.values()), len(reclaimable), count, catalog_wide)


def check_stop(stop: threading.Event | None) -> None:
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
            check_stop(stop)
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
