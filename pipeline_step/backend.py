"""A backend pairs where inventories come from with how deletions are done.

The API backend reads and deletes through the registry's HTTP API. A
direct-storage backend (``--storage-root``) can plug in the same two roles.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipeline_step.execution.api_deleter import ApiDeleter
from pipeline_step.execution.executor import Deleter
from pipeline_step.inventory.api import ApiInventorySource
from pipeline_step.planning.build import InventorySource
from pipeline_step.registry.client import RegistryClient


@dataclass
class Backend:
    name: str
    source: InventorySource
    deleter: Deleter
    notes: list[str] = field(default_factory=list)  # printed after a run, e.g. "restart the registry"


def api_backend(client: RegistryClient, *, concurrency: int, stop: threading.Event) -> Backend:
    return Backend("api", ApiInventorySource(client, concurrency=concurrency, stop=stop), ApiDeleter(client))
