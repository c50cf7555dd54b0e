"""Direct-storage mode: read and prune the registry's filesystem storage itself.

A manifest DELETE through the API makes distribution scan every tag link of
the repository, so an API prune of one big repository costs O(tags²). Here the
tool reads the tag and revision links directly and removes exactly the links
the registry's own DELETE removes, in O(tags). Blobs are never touched:
garbage collection frees them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pipeline_step.backends.filesystem.deleter import StorageDeleter
from pipeline_step.backends.filesystem.layout import StorageLayout
from pipeline_step.backends.filesystem.source import StorageInventorySource
from pipeline_step.planning.reclaim import PendingGarbage

RESTART_NOTE = (
    "direct mode: restart the registry before relying on the result (or run `registry-prune gc`/`recover`, "
    "which restart it): the registry did not make these changes itself, so its caches (in-memory or redis blob "
    "descriptors) were not told and can still answer for removed content until then"
)


class FilesystemBackend(StorageInventorySource, StorageDeleter):
    name = "filesystem"
    direct = True

    def __init__(
        self,
        layout: StorageLayout,
        *,
        concurrency: int,
        stop: threading.Event | None = None,
        label: str | None = None,
        listed: Callable[[str], list[str]] | None = None,
    ) -> None:
        StorageInventorySource.__init__(self, layout, concurrency=concurrency, stop=stop, listed=listed)
        StorageDeleter.__init__(self, layout)
        self.label = label or layout.label

    @property
    def notes(self) -> list[str]:
        return [RESTART_NOTE]

    def close(self) -> None:
        return None

    def pending_garbage(self, live: set[str], *, undo_logs: Path | None = None) -> PendingGarbage:
        """Exact: every blob in the store that no manifest revision (tagged or not) references,
        which is what GC's sweep deletes."""
        total = count = 0
        for digest, size in self.layout.blobs():
            if digest not in live:
                total += size
                count += 1
        return PendingGarbage(total, count, exact=True, source=f"the blob store under {self.layout.root}")
