"""A backend pairs where inventories come from with how deletions are done.

The API backend reads and deletes through the registry's HTTP API. The
direct-storage backend (``--storage-root``) reads the registry's filesystem
storage and removes the same links a manifest DELETE removes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipeline_step.execution.api_deleter import ApiDeleter
from pipeline_step.execution.executor import Deleter
from pipeline_step.inventory.api import ApiInventorySource
from pipeline_step.planning.build import InventorySource
from pipeline_step.registry.client import RegistryClient
from pipeline_step.storage.deleter import StorageDeleter
from pipeline_step.storage.layout import StorageLayout
from pipeline_step.storage.source import StorageInventorySource

RESTART_NOTE = (
    "direct mode: restart the registry before relying on the result (or run `registry-prune gc`/`recover`, "
    "which restart it): the registry did not make these changes itself, so its caches (in-memory or redis blob "
    "descriptors) were not told and can still answer for removed content until then"
)


@dataclass
class Backend:
    name: str
    source: InventorySource
    deleter: Deleter
    notes: list[str] = field(default_factory=list)  # printed after a run that deleted, e.g. "restart the registry"


def api_backend(client: RegistryClient, *, concurrency: int, stop: threading.Event) -> Backend:
    return Backend("api", ApiInventorySource(client, concurrency=concurrency, stop=stop), ApiDeleter(client))


def storage_backend(layout: StorageLayout, *, concurrency: int, stop: threading.Event) -> Backend:
    return Backend(
        "storage",
        StorageInventorySource(layout, concurrency=concurrency, stop=stop),
        StorageDeleter(layout),
        notes=[RESTART_NOTE],
    )
