"""Backends: where inventories are read from and deletions are done. See base.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline_step.backends.api import ApiBackend
from pipeline_step.backends.base import Backend
from pipeline_step.backends.filesystem import FilesystemBackend
from pipeline_step.backends.filesystem.layout import StorageLayout
from pipeline_step.backends.registry_config import S3Location
from pipeline_step.errors import UsageError
from pipeline_step.registry.client import RegistryClient

if TYPE_CHECKING:
    from pipeline_step.backends.s3 import S3Backend

__all__ = ["ApiBackend", "Backend", "FilesystemBackend", "open_backend", "s3_backend"]


def open_backend(
    *,
    client: RegistryClient | None = None,
    storage_root: Path | None = None,
    s3: S3Location | None = None,
    label: str | None = None,
    concurrency: int = 4,
    stop: threading.Event | None = None,
    listed: Callable[[str], list[str]] | None = None,
) -> Backend:
    """The filesystem backend for ``storage_root``, the S3 backend for ``s3``, else the API backend.

    ``label`` names the registry in reports, audit logs and locks; a direct run
    given the registry's URL uses it, so direct and API runs exclude each other.
    ``listed`` is that registry's tag list, compared with the storage tree's.
    """
    stop = stop or threading.Event()
    if s3 is not None:
        from pipeline_step.backends.s3 import S3Backend  # noqa: PLC0415 - boto3 loads only for S3

        return S3Backend.open(s3, concurrency=concurrency, stop=stop, label=label, listed=listed)
    if storage_root is not None:
        return FilesystemBackend(
            StorageLayout.open(storage_root), concurrency=concurrency, stop=stop, label=label, listed=listed
        )
    if client is None:
        raise UsageError(
            "no registry given",
            hint="pass --registry URL, or --storage-root DIR / --registry-config FILE for direct mode",
        )
    return ApiBackend(client, concurrency=concurrency, stop=stop)


def s3_backend(backend: Backend | None) -> S3Backend | None:
    """``backend`` when it is the S3 backend. Importing boto3 costs about a second of start-up, so
    nothing imports the S3 backend unless one is in use."""
    if backend is None or backend.name != "s3":
        return None
    from pipeline_step.backends.s3 import S3Backend  # noqa: PLC0415

    return backend if isinstance(backend, S3Backend) else None
