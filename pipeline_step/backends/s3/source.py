"""Build inventories from the registry's bucket: the filesystem backend's rules, fed by S3.

Per repository: one listing of ``_manifests/`` (1,000 keys a page), which
tells most tag links by their ETags (the rest are read with parallel GETs),
and the revision manifests read with parallel GETs, every manifest verified
against its digest; config blobs only when the policy needs creation
times. Ghost tags, legacy links and half-finished deletions are judged exactly
as on the filesystem (:class:`~pipeline_step.backends.filesystem.source.StorageInventorySource`).
"""

from __future__ import annotations

import threading
from typing import Callable

from pipeline_step.backends.filesystem.source import StorageInventorySource
from pipeline_step.backends.s3.layout import S3Layout
from pipeline_step.errors import RegistryError
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.support.concurrency import run_bounded
from pipeline_step.support.progress import ProgressFactory, null_progress


class S3InventorySource(StorageInventorySource):
    def __init__(
        self,
        layout: S3Layout,
        *,
        concurrency: int,
        stop: threading.Event | None = None,
        listed: Callable[[str], list[str]] | None = None,
    ) -> None:
        super().__init__(layout, concurrency=concurrency, stop=stop, listed=listed)
        self.s3_layout = layout

    def collect(
        self,
        repository: str,
        *,
        needs_created: Callable[[str], bool] = lambda tag: False,
        progress: ProgressFactory = null_progress,
    ) -> RepositoryInventory:
        layout = self.s3_layout
        snapshot = layout.snapshot(repository)
        lock = threading.Lock()

        def prefetch(tag: str) -> None:
            try:
                found: str | RegistryError | None = layout.read_tag_link(repository, tag)
            except RegistryError as exc:
                found = exc
            with lock:
                snapshot.digests[tag] = found

        try:
            # Links whose ETag names no index digest are read; the others are known from the listing.
            with_links = [tag for tag, entry in snapshot.tags.items() if entry.has_current and entry.inferred() is None]
            run_bounded(with_links, prefetch, workers=self.concurrency, stop=self.stop.is_set)
            return super().collect(repository, needs_created=needs_created, progress=progress)
        finally:
            layout.forget(repository)
