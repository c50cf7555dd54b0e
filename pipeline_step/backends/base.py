"""The face every backend shows: read a repository into an inventory, and delete from it.

One protocol, implemented once per place the registry's content can be
reached: through the registry's HTTP API (``api/``), or directly in its
storage (``filesystem/``). The planner sees only the reading half
(:class:`~pipeline_step.planning.build.InventorySource`), the executor only
the deleting half (:class:`~pipeline_step.execution.executor.Deleter`); a
new backend implements both and slots in beside the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from pipeline_step.execution.executor import Deleter
from pipeline_step.planning.build import InventorySource
from pipeline_step.planning.reclaim import PendingGarbage


class Backend(InventorySource, Deleter, Protocol):
    name: str  # "api", "filesystem"
    label: str  # what reports, audit logs and locks call the registry: its URL, or file://<root>
    direct: bool  # True when the registry itself is bypassed (its caches must be restarted afterwards)

    @property
    def notes(self) -> list[str]:
        """What to tell the operator after a run that deleted (e.g. "restart the registry")."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CountsPendingGarbage(Protocol):
    """A backend that can say how many bytes already wait for GC (``usage``). Optional: a backend
    without it reports the figure as unknown."""

    def pending_garbage(self, live: set[str], *, undo_logs: Path | None = None) -> PendingGarbage:
        """Blobs no digest in ``live`` (every manifest and blob still referenced) accounts for."""
        ...
