"""Build inventories through the registry API.

Requests per repository: one tag list, one manifest GET per tag (a GET, not a
HEAD, costs the registry the same and gives us the verified body: children,
config and layer sizes), one GET per index child, and one config blob GET per
distinct digest only when the policy needs creation times.

Attachments cost no more than one request each: a signature or referrers tag is
a tag like any other, a referrer listed in a referrers index or a buildx
attestation manifest is an index child, and a subject not among them gets one
HEAD by digest (it may exist untagged). The referrers API is asked only about
manifests a plan deletes; its first 404 (distribution 2.8 and 3.x) ends that for
the run.
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
from pipeline_step.planning.attachments import find_attachments
from pipeline_step.planning.inventory import (
    MAX_INDEX_CHILDREN,
    MAX_INDEX_DEPTH,
    RepositoryInventory,
    config_digests,
    created_of,
    refuse_unsound_trees,
)
from pipeline_step.registry.artifacts import REFERRERS_INDEX, parse_scheme_tag
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.model import parse_created
from pipeline_step.registry.referrers import list_referrers
from pipeline_step.support.concurrency import run_bounded
from pipeline_step.support.progress import ProgressFactory, null_progress

log = logging.getLogger(__name__)


class ApiInventorySource:
    """Reads repositories through a :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, *, concurrency: int, stop: threading.Event | None = None) -> None:
        self.client = client
        self.concurrency = concurrency
        self.stop = stop or threading.Event()
        self.referrers_api: bool | None = None  # None until asked; False after its first 404
        self._asked: set[tuple[str, str]] = set()

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
                scheme = parse_scheme_tag(tag)
                with lock:
                    # Tags sharing a manifest share its digest string and object (100,000 tags
                    # over 1,000 images would otherwise keep 100,000 copies alive).
                    kept = inventory.manifests.setdefault(manifest.digest, manifest)
                    inventory.tags[tag] = kept.digest
                    if scheme is not None and scheme.kind == REFERRERS_INDEX and manifest.is_index:
                        inventory.raw[kept.digest] = fetched.raw  # to rewrite it without an entry
            bar.advance()

        try:
            run_bounded(tag_list, resolve, workers=self.concurrency, stop=self.stop.is_set)
        finally:
            bar.close()
        self._collect_children(inventory, lock)
        refuse_unsound_trees(inventory)
        self._check_subjects(inventory, lock)
        wanted = {digest for tag, digest in inventory.tags.items() if needs_created(tag)}
        if wanted:
            self._collect_created(inventory, wanted, lock)
        return inventory

    def _check_subjects(self, inventory: RepositoryInventory, lock: threading.Lock) -> None:
        """A subject that no tag or index reaches may still exist untagged: one HEAD by digest each."""
        missing = find_attachments(inventory).subjects_missing(inventory)

        def check(digest: str) -> None:
            try:
                head = self.client.head_manifest(inventory.name, digest)
            except RegistryError as exc:
                with lock:
                    inventory.uncertain[digest] = exc.message  # its attachments are kept
                return
            if head is not None:
                with lock:
                    inventory.present.add(digest)

        run_bounded(sorted(missing), check, workers=self.concurrency, stop=self.stop.is_set)

    def locate(self, digests: set[str], *, outside: str) -> dict[str, str]:
        """One HEAD per (other repository, digest not found yet); a failed HEAD fails the search."""
        found: dict[str, str] = {}
        lock = threading.Lock()
        for repository in sorted(self.client.catalog()):
            pending = sorted(d for d in digests if d not in found)
            if repository == outside or not pending:
                continue

            def check(digest: str, repository: str = repository) -> None:
                if self.client.head_manifest(repository, digest) is not None:
                    with lock:
                        found.setdefault(digest, repository)

            run_bounded(pending, check, workers=self.concurrency, stop=self.stop.is_set)
        return found

    def add_referrers(self, inventory: RepositoryInventory, subjects: set[str]) -> int:
        """Ask the referrers API about ``subjects`` (once each); fetch, verified, what it lists that the
        inventory lacks. A referrer counts only if its own ``subject`` names the subject asked about."""
        if self.referrers_api is False:
            return 0
        pending = sorted(d for d in subjects if (inventory.name, d) not in self._asked)
        if not pending:
            return 0
        added: list[str] = []
        lock = threading.Lock()

        def ask(subject: str) -> None:
            self._asked.add((inventory.name, subject))
            try:
                listed = list_referrers(self.client, inventory.name, subject)
            except (RegistryServerError, RegistryProtocolError) as exc:
                # Not knowing an untagged referrer leaves it behind as an orphan; it deletes nothing.
                log.warning("cannot list the referrers of %s@%s: %s", inventory.name, subject, exc)
                return
            if listed is None:
                self.referrers_api = False
                return
            self.referrers_api = True
            for digest in listed:
                if digest in inventory.manifests:
                    continue
                try:
                    manifest = self.client.get_manifest(inventory.name, digest).manifest
                except (NotFoundError, RegistryServerError, RegistryProtocolError) as exc:
                    log.warning("cannot read referrer %s of %s@%s: %s", digest, inventory.name, subject, exc)
                    continue
                if manifest.subject == subject:
                    with lock:
                        inventory.manifests.setdefault(digest, manifest)
                        added.append(digest)

        ask(pending[0])  # the first answer tells whether the registry offers the API at all
        if self.referrers_api:
            run_bounded(pending[1:], ask, workers=self.concurrency, stop=self.stop.is_set)
        if added:
            self._collect_children(inventory, lock)
            refuse_unsound_trees(inventory)
        return len(added)

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
