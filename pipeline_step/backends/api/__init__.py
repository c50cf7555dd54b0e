"""The registry's HTTP API as a backend: read through GETs, delete by digest."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pipeline_step.backends.api.deleter import ApiDeleter
from pipeline_step.backends.api.source import ApiInventorySource
from pipeline_step.errors import RegistryError
from pipeline_step.execution.audit import registry_deletions
from pipeline_step.planning.reclaim import PendingGarbage
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.model import parse_manifest

log = logging.getLogger(__name__)


class ApiBackend(ApiInventorySource, ApiDeleter):
    name = "api"
    direct = False

    def __init__(self, client: RegistryClient, *, concurrency: int, stop: threading.Event | None = None) -> None:
        ApiInventorySource.__init__(self, client, concurrency=concurrency, stop=stop)
        ApiDeleter.__init__(self, client)
        self.label = client.url

    @property
    def notes(self) -> list[str]:
        return []

    def close(self) -> None:
        self.client.close()

    def pending_garbage(self, live: set[str], *, undo_logs: Path | None = None) -> PendingGarbage:
        """A lower bound: the API lists no blobs, so only what this agent's undo logs recorded as
        pruned is seen. A blob counts when no live manifest references it and the registry still
        serves its data (read, not HEAD: after GC a stale cache still answers HEAD)."""
        source = f"the undo logs in {undo_logs}" if undo_logs is not None else "no undo logs"
        candidates: dict[str, tuple[str, int]] = {}  # digest -> (a repository that linked it, size)
        for deletion in registry_deletions(undo_logs, self.label) if undo_logs is not None else ():
            if deletion.digest in live:
                continue  # pushed or restored again since
            try:
                manifest = parse_manifest(deletion.manifest, deletion.digest, deletion.media_type or None)
            except RegistryError as exc:
                log.info("skipping the undo record of %s: %s", deletion.digest, exc)
                continue
            for blob in manifest.blobs():
                if blob.digest not in live:
                    candidates.setdefault(blob.digest, (deletion.repository, blob.size))
        total = count = 0
        for digest, (repository, size) in candidates.items():
            if self.client.blob_readable(repository, digest):
                total += size
                count += 1
        return PendingGarbage(total, count, exact=False, source=source)
