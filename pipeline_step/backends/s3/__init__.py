"""Direct mode on object storage: read and prune the registry's S3 bucket itself.

The same role as the filesystem backend, for ``storage.s3``: the same planner,
inventory rules and undo log, exactly the keys the registry's own DELETE
removes (in batched DeleteObjects), never a blob. Through the API an S3
registry spends about a second per DELETE listing every tag of the repository;
here a prune costs a few requests per tag.
"""

from __future__ import annotations

import threading
from typing import Callable

from pipeline_step.backends.filesystem import RESTART_NOTE
from pipeline_step.backends.registry_config import S3Location
from pipeline_step.backends.s3.bucket import Bucket
from pipeline_step.backends.s3.deleter import S3Deleter
from pipeline_step.backends.s3.layout import S3Layout
from pipeline_step.backends.s3.source import S3InventorySource

READ_WORKERS = 8  # parallel GETs while reading: S3 answers each in milliseconds, latency dominates


class S3Backend(S3InventorySource, S3Deleter):
    name = "s3"
    direct = True

    def __init__(
        self,
        location: S3Location,
        *,
        concurrency: int,
        stop: threading.Event | None = None,
        label: str | None = None,
        bucket: Bucket | None = None,
        listed: Callable[[str], list[str]] | None = None,
    ) -> None:
        workers = max(READ_WORKERS, concurrency)
        self.bucket = bucket or Bucket(location, workers=workers)
        layout = S3Layout(self.bucket, location)
        S3InventorySource.__init__(self, layout, concurrency=workers, stop=stop, listed=listed)
        S3Deleter.__init__(self, layout, workers=workers)
        self.location = location
        self.label = label or location.label

    @classmethod
    def open(cls, location: S3Location, **options: object) -> S3Backend:
        backend = cls(location, **options)  # type: ignore[arg-type]
        try:
            backend.s3_layout.check()
        except BaseException:
            backend.close()
            raise
        return backend

    @property
    def requests(self) -> int:
        return self.bucket.requests

    @property
    def notes(self) -> list[str]:
        return [RESTART_NOTE]

    def close(self) -> None:
        self.bucket.close()
