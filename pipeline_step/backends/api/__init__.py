"""The registry's HTTP API as a backend: read through GETs, delete by digest."""

from __future__ import annotations

import threading

from pipeline_step.backends.api.deleter import ApiDeleter
from pipeline_step.backends.api.source import ApiInventorySource
from pipeline_step.registry.client import RegistryClient


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
