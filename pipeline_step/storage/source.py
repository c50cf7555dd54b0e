"""Build inventories from the storage tree instead of the API.

Per repository: one directory listing of the tags, one ``current/link`` read
per tag, one read of every revision's manifest blob (verified against its
digest, like the API client does), and one config blob read per distinct
digest only when the policy needs creation times. Untagged revisions are
read too: garbage collection keeps their blobs, so the reclaim prediction
must count them as survivors.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from pipeline_step.concurrency import run_bounded
from pipeline_step.errors import RegistryError
from pipeline_step.inventory.api import config_digests, created_of
from pipeline_step.inventory.model import RepositoryInventory
from pipeline_step.progress import ProgressFactory, null_progress
from pipeline_step.registry import mediatypes
from pipeline_step.registry.model import Manifest, parse_created, parse_manifest
from pipeline_step.storage.layout import StorageLayout

log = logging.getLogger(__name__)


def read_manifest(layout: StorageLayout, digest: str) -> tuple[Manifest, bytes]:
    body = layout.read_blob(digest)
    # Schema1 has no mediaType field; the API would answer it as schema1, which the
    # client refuses, so refuse it here too (the repository is then left alone).
    content_type = mediatypes.DOCKER_SCHEMA1_SIGNED if b'"fsLayers"' in body else None
    return parse_manifest(body, digest, content_type), body


class StorageInventorySource:
    def __init__(self, layout: StorageLayout, *, concurrency: int, stop: threading.Event | None = None) -> None:
        self.layout = layout
        self.concurrency = concurrency
        self.stop = stop or threading.Event()

    def catalog(self) -> list[str]:
        return self.layout.repositories()

    def collect(
        self,
        repository: str,
        *,
        needs_created: Callable[[str], bool] = lambda tag: False,
        progress: ProgressFactory = null_progress,
    ) -> RepositoryInventory:
        layout = self.layout
        inventory = RepositoryInventory(repository)
        tag_names = layout.tags(repository)
        bar = progress(f"read {repository}", len(tag_names))
        pointed: dict[str, str] = {}
        try:
            for tag in tag_names:
                if self.stop.is_set():
                    break
                try:
                    digest = layout.tag_digest(repository, tag)
                except RegistryError as exc:
                    inventory.unresolved[tag] = str(exc)
                else:
                    if digest is None:
                        inventory.vanished.add(tag)  # a tag directory without current/link
                    else:
                        pointed[tag] = digest
                bar.advance()
        finally:
            bar.close()
        revisions = set(layout.revisions(repository))
        # A tag may point at a manifest linked only the legacy way (2.1.0 linked some into _layers).
        legacy = {d for d in set(pointed.values()) - revisions if layout.has_revision(repository, d)}
        self._read_manifests(inventory, revisions | legacy)
        for tag, digest in pointed.items():
            if digest not in revisions and digest not in legacy:
                inventory.vanished.add(tag)  # the API answers 404 for a tag whose revision is gone
            elif digest in inventory.manifests:
                inventory.tags[tag] = digest
            else:
                inventory.unresolved[tag] = f"cannot read manifest {digest} from the storage"
        tagged = inventory.digests()
        inventory.untagged = {digest for digest in inventory.manifests if digest not in tagged}
        wanted = {digest for tag, digest in inventory.tags.items() if needs_created(tag)}
        if wanted:
            self._collect_created(inventory, wanted)
        return inventory

    def _read_manifests(self, inventory: RepositoryInventory, digests: set[str]) -> None:
        lock = threading.Lock()

        def read(digest: str) -> None:
            try:
                manifest, _ = read_manifest(self.layout, digest)
            except RegistryError as exc:
                log.warning("cannot read manifest %s of %s: %s", digest, inventory.name, exc)
                return
            with lock:
                inventory.manifests[digest] = manifest

        run_bounded(sorted(digests), read, workers=self.concurrency, stop=self.stop.is_set)

    def _collect_created(self, inventory: RepositoryInventory, digests: set[str]) -> None:
        configs: dict[str, datetime | None] = {}
        needed = {config for digest in digests for config in config_digests(digest, inventory.manifests)}
        for config_digest in sorted(needed):
            try:
                configs[config_digest] = parse_created(self.layout.read_blob(config_digest, limit=16 * 1024 * 1024))
            except RegistryError as exc:
                log.warning("cannot read config %s in %s: %s", config_digest, inventory.name, exc)
                configs[config_digest] = None
        for digest in digests:
            inventory.created[digest] = created_of(digest, inventory.manifests, configs)
