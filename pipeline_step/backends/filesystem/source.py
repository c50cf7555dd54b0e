"""Build inventories from the storage tree instead of the API.

Per repository: one directory listing of the tags, one ``current/link`` read
per tag, one read of every revision's manifest blob (verified against its
digest, like the API client does), and one config blob read per distinct
digest only when the policy needs creation times. Untagged revisions are
read too: garbage collection keeps their blobs, so the reclaim prediction
must count them as survivors. So are untagged referrers (manifests with a
``subject``) that no referrers index lists: the API sees them only where the
registry offers the referrers API; here every one is seen.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from pipeline_step.backends.paths import CONFIG_LIMIT, GHOST_MIN_AGE
from pipeline_step.backends.reader import StorageReader
from pipeline_step.errors import RegistryError, RegistryProtocolError, RepositoryNotFoundError, Schema1ManifestError
from pipeline_step.planning.attachments import find_attachments
from pipeline_step.planning.inventory import RepositoryInventory, config_digests, created_of, refuse_unsound_trees
from pipeline_step.registry import mediatypes
from pipeline_step.registry.artifacts import REFERRERS_INDEX, parse_scheme_tag
from pipeline_step.registry.model import Manifest, parse_created, parse_manifest
from pipeline_step.support.concurrency import run_bounded
from pipeline_step.support.progress import Progress, ProgressFactory, null_progress

log = logging.getLogger(__name__)


def read_manifest(layout: StorageReader, digest: str) -> tuple[Manifest, bytes]:
    body = layout.read_blob(digest)
    # Schema1 has no mediaType field; the API would answer it as schema1, which the
    # client refuses, so refuse it here too (the repository is then left alone).
    content_type = mediatypes.DOCKER_SCHEMA1_SIGNED if b'"fsLayers"' in body else None
    return parse_manifest(body, digest, content_type), body


class StorageInventorySource:
    """Reads repositories from the storage. ``listed`` (the registry's own tag list, when its URL
    is known) is compared with the storage: a tag the registry hides is one its DELETE would still remove."""

    def __init__(
        self,
        layout: StorageReader,
        *,
        concurrency: int,
        stop: threading.Event | None = None,
        listed: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.reader = layout
        self.concurrency = concurrency
        self.stop = stop or threading.Event()
        self.listed = listed

    def catalog(self) -> list[str]:
        return self.reader.repositories()

    def collect(
        self,
        repository: str,
        *,
        needs_created: Callable[[str], bool] = lambda tag: False,
        progress: ProgressFactory = null_progress,
    ) -> RepositoryInventory:
        layout = self.reader
        inventory = RepositoryInventory(repository)
        shown = self._listed(inventory)  # first: a tag pushed in between then looks hidden, which is safe
        revisions = layout.revisions(repository)
        tag_names = layout.tags(repository)
        if shown is not None:
            inventory.hidden = set(tag_names) - shown
        bar = progress(f"read {repository}", len(revisions) + len(tag_names))
        try:
            schema1 = self._read_manifests(inventory, revisions, bar)
            pending = self._read_tags(inventory, tag_names, bar)
        finally:
            bar.close()
        for tag, digest in pending:
            if digest in schema1:
                inventory.schema1[tag] = digest
            elif digest in revisions:
                inventory.unresolved[tag] = f"cannot read manifest {digest} from the storage"
            elif layout.has_revision(repository, digest):
                # Linked only the legacy way (2.1.0 linked some manifests into _layers).
                self._read_manifests(inventory, {digest}, null_progress("", 0))
                if digest in inventory.manifests:
                    inventory.tags[tag] = inventory.manifests[digest].digest
                else:
                    inventory.unresolved[tag] = f"cannot read manifest {digest} from the storage"
            else:
                # The API answers 404 for a tag whose revision is gone: the registry's own DELETE removes
                # the revision first and the tags after, so one cut short (its client killed) leaves these.
                self._vanished_or_ghost(inventory, tag)
        refuse_unsound_trees(inventory)
        tagged = set(inventory.tags.values())
        inventory.untagged = {digest for digest in inventory.manifests if digest not in tagged}
        self._read_attachment_facts(inventory)
        wanted = {digest for tag, digest in inventory.tags.items() if needs_created(tag)}
        if wanted:
            self._collect_created(inventory, wanted)
        return inventory

    def _listed(self, inventory: RepositoryInventory) -> set[str] | None:
        if self.listed is None:
            return None
        try:
            return set(self.listed(inventory.name))
        except RepositoryNotFoundError:
            return set()  # the registry lists none of its tags
        except RegistryError as exc:
            inventory.unchecked = exc.message
            return None

    def _read_attachment_facts(self, inventory: RepositoryInventory) -> None:
        """The bytes of referrers indexes (to rewrite one without an entry), and which missing subjects
        are linked the legacy way (2.1.0 linked some manifests into ``_layers`` only)."""
        for tag, digest in inventory.tags.items():
            scheme = parse_scheme_tag(tag)
            manifest = inventory.manifests.get(digest)
            if scheme is not None and scheme.kind == REFERRERS_INDEX and manifest is not None and manifest.is_index:
                try:
                    inventory.raw[digest] = self.reader.read_blob(digest)
                except RegistryError as exc:
                    log.warning("cannot read referrers index %s of %s: %s", digest, inventory.name, exc)
        for digest in find_attachments(inventory).subjects_missing(inventory):
            if self.reader.has_revision(inventory.name, digest):
                inventory.present.add(digest)

    def locate(self, digests: set[str], *, outside: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for repository in self.reader.repositories():
            if repository == outside:
                continue
            for digest in sorted(digests - set(found)):
                if self.reader.has_revision(repository, digest):
                    found[digest] = repository
        return found

    def add_referrers(self, inventory: RepositoryInventory, subjects: set[str]) -> int:
        return 0  # every revision was read: untagged referrers are in the inventory already

    def _read_tags(self, inventory: RepositoryInventory, tag_names: list[str], bar: Progress) -> list[tuple[str, str]]:
        """Resolve tags to the manifests already read; returns the (tag, digest) pairs still open."""
        manifests = inventory.manifests
        pending: list[tuple[str, str]] = []
        for tag in tag_names:
            if self.stop.is_set():
                break
            try:
                digest = self.reader.tag_digest(inventory.name, tag)
            except RegistryError as exc:
                inventory.unresolved[tag] = str(exc)
            else:
                if digest is None:
                    self._vanished_or_ghost(inventory, tag)  # a tag directory without current/link
                elif digest in manifests:
                    # The manifest's own digest string: one copy per digest, not one per tag.
                    inventory.tags[tag] = manifests[digest].digest
                else:
                    pending.append((tag, digest))
            bar.advance()
        return pending

    def _vanished_or_ghost(self, inventory: RepositoryInventory, tag: str) -> None:
        """A tag that resolves to nothing is a ghost to repair, unless a push may be writing it right now."""
        age = self.reader.tag_age(inventory.name, tag)
        if age is not None and age >= GHOST_MIN_AGE:
            inventory.ghosts.add(tag)
        else:
            inventory.vanished.add(tag)

    def _read_manifests(self, inventory: RepositoryInventory, digests: set[str], bar: Progress) -> set[str]:
        """Read ``digests`` into the inventory; returns those stored as schema1."""
        lock = threading.Lock()
        schema1: set[str] = set()

        def read(digest: str) -> None:
            try:
                manifest, _ = read_manifest(self.reader, digest)
            except Schema1ManifestError:
                with lock:
                    schema1.add(digest)
            except RegistryError as exc:
                log.warning("cannot read manifest %s of %s: %s", digest, inventory.name, exc)
                if isinstance(exc, RegistryProtocolError):  # corrupt, not missing: what references it is refused
                    with lock:
                        inventory.unreadable[digest] = exc.message
            else:
                with lock:
                    inventory.manifests[digest] = manifest
            bar.advance()

        run_bounded(digests, read, workers=self.concurrency, stop=self.stop.is_set)
        return schema1

    def _collect_created(self, inventory: RepositoryInventory, digests: set[str]) -> None:
        configs: dict[str, datetime | None] = {}
        needed = {config for digest in digests for config in config_digests(digest, inventory.manifests)}
        for config_digest in sorted(needed):
            try:
                configs[config_digest] = parse_created(self.reader.read_blob(config_digest, limit=CONFIG_LIMIT))
            except RegistryError as exc:
                log.warning("cannot read config %s in %s: %s", config_digest, inventory.name, exc)
                configs[config_digest] = None
        for digest in digests:
            inventory.created[digest] = created_of(digest, inventory.manifests, configs)
