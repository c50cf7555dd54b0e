"""Backends: where inventories are read from and deletions are done. See base.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pipeline_step.backends.api import ApiBackend
from pipeline_step.backends.base import Backend
from pipeline_step.backends.filesystem import FilesystemBackend
from pipeline_step.backends.filesystem.layout import StorageLayout
from pipeline_step.errors import UsageError
from pipeline_step.registry.client import RegistryClient

__all__ = ["ApiBackend", "Backend", "FilesystemBackend", "open_backend"]


def open_backend(
    *,
    client: RegistryClient | None = None,
    storage_root: Path | None = None,
    label: str | None = None,
    concurrency: int = 4,
    stop: threading.Event | None = None,
    listed: Callable[[str], list[str]] | None = None,
) -> Backend:
    """The filesystem backend for ``storage_root``, else the API backend for ``client``.

    ``label`` names the registry in reports, audit logs and locks; a direct run
    given the registry's URL uses it, so direct and API runs exclude each other.
    ``listed`` is that registry's tag list, compared with the storage tree's.
    """
    stop = stop or threading.Event()
    if storage_root is not None:
        return FilesystemBackend(
            StorageLayout.open(storage_root), concurrency=concurrency, stop=stop, label=label, listed=listed
        )
    if client is None:
        raise UsageError("no registry given", hint="pass --registry URL, or --storage-root DIR for direct mode")
    return ApiBackend(client, concurrency=concurrency, stop=stop)
