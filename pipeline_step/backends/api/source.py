"""Build inventories through the registry API.

Requests per repository: one tag list, one manifest GET per tag (a GET, not a
HEAD, costs the registry the same and gives us the verified body: children,
config and layer sizes), one GET per index child, and one config blob GET per
distinct digest only when the policy needs creation times.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from pipeline_step.errors import (
    NotFoundError,
    RegistryError,
    RegistryProtocolError,
    RegistryServerError,
    Schema1ManifestError,
)
from pipeline_step.planning.inventory import (
    MAX_INDEX_CHILDREN,
    MAX_INDEX_DEPTH,
    RepositoryInventory,
    config_digests,
    created_of,
    refuse_unsound_trees,
)
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.model import parse_created
from pipeline_step.support.concurrency import run_bounded
from pipeline_step.support.progress import ProgressFactory, null_progress

log = logging.getLogger(__name__)


class ApiInventorySource:
    """Reads repositories through a :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, *, concurrency: int, stop: threading.Event | None = None) -> None:
        self.client = client
        self.concurrency = concurrency
        self.stop = stop or threading.Event()

    def catalog(self) -> list[str]:
        return list(self.client.catalog())

    def collect(
        self,
        repository: str,
        *,
        needs_created: Callable[[str], bool] = lambda tag: False,
        progress: ProgressFactory = null_progress,
    ) -> RepositoryInventory:
        """Resolve every tag of ``repository``; fetch ages for tags where ``needs_created``."""
        inventory = RepositoryInventory(repository)
        tag_list = self.client.tags(repository)
        bar = progress(f"resolve {repository}", len(tag_list))
        lock = threading.Lock()

        def resolve(tag: str) -> None:
            try:
                fetched = self.client.get_manifest(repository, tag)
            except NotFoundError:
                with lock:
                    inventory.vanished.add(tag)
            except Schema1ManifestError as exc:
                with lock:
                    inventory.schema1[tag] = exc.digest
            except (RegistryServerError, RegistryProtocolError) as exc:
                # Per-tag trouble: keep going, but the planner will delete nothing
                # in this repository. Auth, TLS and connection errors propagate.
                log.warning("cannot resolve %s:%s: %s", repository, tag, exc)
                with lock:
                    inventory.unresolved[tag] = str(exc)
            else:
                manifest = fetched.manifest
                with lock:
                    # Tags sharing a manifest share its digest string and object (100,000 tags
                    # over 1,000 images would otherwise keep 100,000 copies alive).
                    kept = inventory.manifests.setdefault(manifest.digest, manifest)
                    inventory.tags[tag] = kept.digest
            bar.advance()

        try:
            run_bounded(tag_list, resolve, workers=self.concurrency, stop=self.stop.is_set)
        finally:
            bar.close()
        self._collect_children(inventory, lock)
        refuse_unsound_trees(inventory)
        wanted = {digest for tag, digest in inventory.tags.items() if needs_created(tag)}
        if wanted:
            self._collect_created(inventory, wanted, lock)
        return inventory

    def _collect_children(self, inventory: RepositoryInventory, lock: threading.Lock) -> None:
        """Fetch the children of every index (recursively) so their blobs and ages are known."""
        attempted: set[str] = set()
        for _ in range(MAX_INDEX_DEPTH + 1):  # deeper trees are refused anyway: do not fetch them
            if self.stop.is_set():
                return
            pending = self._missing_children(inventory) - attempted
            if not pending:
                return
            attempted |= pending

            def fetch(digest: str) -> None:
                try:
                    child = self.client.get_manifest(inventory.name, digest).manifest
                except RegistryProtocolError as exc:
                    # A corrupt answer (digest mismatch, garbage) is not a missing child: refuse the tree.
                    with lock:
                        inventory.unreadable[digest] = exc.message
                    return
                except RegistryError as exc:
                    # An index whose child is missing stays fully protected by
                    # the planner's reference rules; we only lack its size.
                    log.warning("cannot fetch child %s of an index in %s: %s", digest, inventory.name, exc)
                    return
                with lock:
                    inventory.manifests.setdefault(digest, child)

            run_bounded(sorted(pending), fetch, workers=self.concurrency, stop=self.stop.is_set)

    @staticmethod
    def _missing_children(inventory: RepositoryInventory) -> set[str]:
        return {
            child.digest
            for manifest in list(inventory.manifests.values())
            if manifest.is_index and len(manifest.children) <= MAX_INDEX_CHILDREN  # wider: refused, not fetched
            for child in manifest.children
            if child.digest not in inventory.manifests
        }

    def _collect_created(self, inventory: RepositoryInventory, digests: set[str], lock: threading.Lock) -> None:
        configs: dict[str, datetime | None] = {}
        needed = {config for digest in digests for config in config_digests(digest, inventory.manifests)}

        def fetch(config_digest: str) -> None:
            try:
                body = self.client.get_blob(inventory.name, config_digest)
            except RegistryError as exc:
                log.warning("cannot read config %s in %s: %s", config_digest, inventory.name, exc)
                created = None
            else:
                created = parse_created(body)
            with lock:
                configs[config_digest] = created

        run_bounded(sorted(needed), fetch, workers=self.concurrency, stop=self.stop.is_set)
        for digest in digests:
            inventory.created[digest] = created_of(digest, inventory.manifests, configs)
