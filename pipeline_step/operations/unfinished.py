"""Deletions an earlier API run began but never finished, found through its undo log.

Through the API some manifests cannot be seen once their deletion has begun: on 3.x a manifest whose
tags were deleted first, and anywhere the children of an index deleted before them. A run stopped
in between (killed, or its DELETE failed) leaves them behind, and only the undo log still names them.
Each is looked up (one GET) before it is planned; the planner then keeps any that something it can
see now depends on (planning/leftovers.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pipeline_step.backends.base import Backend
from pipeline_step.errors import NotFoundError, RegistryError
from pipeline_step.execution.audit import AuditedDeletion
from pipeline_step.execution.executor import Status
from pipeline_step.planning.build import Plan
from pipeline_step.planning.leftovers import Leftover
from pipeline_step.registry.digest import is_digest
from pipeline_step.registry.mediatypes import INDEX_TYPES

UNFINISHED = frozenset({None, Status.TAGS_DELETED.value, Status.MANIFEST_FAILED.value})
FINISHED = frozenset({Status.DELETED.value, Status.ALREADY_GONE.value})


def _children(deletion: AuditedDeletion) -> list[tuple[str, str]]:
    """(digest, media type) of each child an index's undo record lists; none if it cannot be read."""
    try:
        document = json.loads(deletion.manifest)
    except ValueError:
        return []
    entries = document.get("manifests") if isinstance(document, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        media_type = entry.get("mediaType") if isinstance(entry, dict) else None
        if isinstance(digest, str) and is_digest(digest):
            found.append((digest, media_type if isinstance(media_type, str) else ""))
    return found


def unfinished_manifests(
    backend: Backend, plan: Plan, history: Mapping[tuple[str, str], AuditedDeletion]
) -> dict[str, list[Leftover]]:
    """repository -> manifests still present whose deletion an earlier run began but did not finish."""
    records = list({(d.repository, d.digest): d for d in history.values()}.values())
    done = {(d.repository, d.digest) for d in records if d.status in FINISHED}
    found: dict[str, dict[str, Leftover]] = {}

    def present(repository: str, digest: str) -> bool:
        try:
            backend.manifest_bytes(repository, digest)
        except NotFoundError:
            return False  # finished since: by a later run, or by garbage collection
        except RegistryError:
            return False  # unknown: left alone, and looked for again next time
        return True

    for deletion in records:
        repository = deletion.repository
        if repository not in plan.inventories:
            continue
        leftovers = found.setdefault(repository, {})
        index = deletion.media_type in INDEX_TYPES
        unfinished = deletion.status in UNFINISHED and deletion.digest not in leftovers
        if unfinished and present(repository, deletion.digest):
            leftovers[deletion.digest] = Leftover(repository, deletion.digest, deletion.media_type, deletion.tags)
        if not index or deletion.status not in FINISHED | UNFINISHED:
            continue
        # The index is gone, or is about to be: its children follow, unless already deleted.
        for child, media_type in _children(deletion):
            if (repository, child) in done or child in leftovers:
                continue
            if present(repository, child):
                leftovers[child] = Leftover(repository, child, media_type, (), child=True)
    return {repository: list(leftovers.values()) for repository, leftovers in found.items() if leftovers}
