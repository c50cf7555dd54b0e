"""The audit log: the undo window of every prune.

Until garbage collection runs, a deleted manifest's blobs are still on disk,
so putting the manifest back restores the image. Before each DELETE the
executor writes the manifest's exact bytes, media type, repository, tags and
digest here, with who deleted it and when; after it, the outcome. One JSON
object per line; an intent is fsynced before its DELETE is sent (an outcome is
only flushed: losing it to a crash leaves an intent, which ``restore`` treats
as possibly deleted and checks against the registry).
``registry-prune restore --from FILE`` replays it.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterator

from pipeline_step.errors import AuditWriteError, UsageError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.support.redact import redact_values

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PAYLOADS = frozenset({"manifest_b64"})  # encoded bytes: never redacted, a mask would corrupt the undo record


def default_audit_dir() -> Path:
    configured = os.environ.get("REGISTRY_PRUNE_AUDIT_DIR")
    if configured:
        return Path(configured)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "registry-prune" / "audit"


def current_actor() -> str:
    """Jenkins' BUILD_URL when running in Jenkins, else user@host."""
    build_url = os.environ.get("BUILD_URL")
    if build_url:
        return build_url
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class AuditLog:
    """Appends intent/outcome records for one run to ``<dir>/<time>-<run>.jsonl``."""

    def __init__(self, directory: Path, registry: str, *, actor: str | None = None) -> None:
        self.registry = registry
        self.actor = actor or current_actor()
        self.run_id = uuid.uuid4().hex[:12]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the audit directory {directory}: {exc.strerror}",
                hint="pass --audit-dir DIR with a writable directory",
            ) from None
        self.path = directory / f"{stamp}-{self.run_id}.jsonl"
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.intents = 0

    def _write(self, record: dict[str, Any], *, durable: bool) -> None:
        line = json.dumps(redact_values(record, payloads=PAYLOADS), sort_keys=True) + "\n"
        with self._lock:
            try:
                if self._file is None:
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(line)
                self._file.flush()
                if durable:
                    os.fsync(self._file.fileno())
            except OSError as exc:
                # The agent's own disk is full (or gone): without an undo record, no deletion may happen.
                raise AuditWriteError(
                    f"cannot write the undo log {self.path}: {exc.strerror or exc}",
                    hint="free space where the audit log goes (or pass --audit-dir DIR on another disk), then rerun: "
                    "the plan is recomputed and what was deleted stays in this log",
                ) from None

    def _base(self, event: str, step: DeleteStep) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "event": event,
            "time": datetime.now(timezone.utc).isoformat(),
            "run_id": self.run_id,
            "actor": self.actor,
            "registry": self.registry,
            "repository": step.repository,
            "digest": step.digest,
            "tags": list(step.tags),
        }

    def record_intent(self, step: DeleteStep, manifest: bytes) -> None:
        record = self._base("intent", step)
        record["media_type"] = step.media_type
        record["manifest_b64"] = base64.b64encode(manifest).decode("ascii")
        self._write(record, durable=True)
        self.intents += 1

    def record_outcome(self, step: DeleteStep, status: str, detail: str) -> None:
        record = self._base("outcome", step)
        record["status"] = status
        record["detail"] = detail
        self._write(record, durable=False)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):  # a full disk already stopped the run, and said so
                    self._file.close()
                self._file = None


@dataclass(frozen=True, slots=True)
class AuditedDeletion:
    """One deleted manifest, as read back from an audit log."""

    registry: str
    repository: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    manifest: bytes
    actor: str
    time: str
    status: str | None  # the outcome, or None if the run died between intent and outcome


def read_audit(path: Path) -> Iterator[AuditedDeletion]:
    """Deletions recorded in ``path``: every intent, with its outcome when there is one."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read audit log {path}: {exc.strerror}") from None
    lines = text.splitlines()
    intents: dict[tuple[str, str], dict[str, Any]] = {}
    outcomes: dict[tuple[str, str], str] = {}
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = (record["repository"], record["digest"])
            event = record["event"]
        except (ValueError, KeyError, TypeError):
            if number == last and not text.endswith("\n"):
                # A run killed mid-write leaves a torn last line; every record before it is whole.
                log.warning("%s:%d: ignoring a torn last line (the run that wrote it was killed)", path, number)
                continue
            raise UsageError(
                f"{path}:{number}: not an audit record", hint="pass a file written by registry-prune"
            ) from None
        if event == "intent":
            intents[key] = record
        elif event == "outcome":
            outcomes[key] = str(record.get("status"))
    for key, record in intents.items():
        yield AuditedDeletion(
            registry=record["registry"],
            repository=record["repository"],
            digest=record["digest"],
            media_type=record["media_type"],
            tags=tuple(record.get("tags") or ()),
            manifest=base64.b64decode(record["manifest_b64"]),
            actor=record.get("actor", ""),
            time=record.get("time", ""),
            status=outcomes.get(key),
        )


def registry_deletions(directory: Path, registry: str, *, files: int = 200) -> Iterator[AuditedDeletion]:
    """Every undo record for ``registry`` in the newest ``files`` logs of ``directory``, oldest first."""
    try:
        logs = sorted(directory.glob("*.jsonl"))[-files:]
    except OSError:
        return
    for path in logs:
        try:
            deletions = list(read_audit(path))
        except UsageError as exc:
            log.warning("skipping audit log %s: %s", path, exc)
            continue
        yield from (deletion for deletion in deletions if deletion.registry == registry)


def latest_intents(directory: Path, registry: str, *, files: int = 20) -> dict[tuple[str, str], AuditedDeletion]:
    """(repository, tag) -> the newest undo record naming that tag, over the newest ``files`` logs
    written for ``registry``; a record naming no tag (the child of a deleted index) is keyed by
    (repository, digest), which no tag can be. A rerun uses it to finish a deletion its predecessor
    was killed in. The newest 20 logs: every API run reads them, and a rerun follows its crash soon."""
    found: dict[tuple[str, str], AuditedDeletion] = {}
    for deletion in registry_deletions(directory, registry, files=files):  # oldest first: newer records win
        for tag in deletion.tags:
            found[(deletion.repository, tag)] = deletion
        if not deletion.tags:
            found[(deletion.repository, deletion.digest)] = deletion
    return found


def newest_audit_log(directory: Path) -> Path:
    """The newest undo log in ``directory``: names start with their UTC time, so the last name in
    order is the newest (an archived copy keeps its name, not its mtime)."""
    try:
        logs = sorted(path for path in directory.glob("*.jsonl") if path.is_file())
    except OSError as exc:
        raise UsageError(f"cannot read the audit directory {directory}: {exc.strerror}") from None
    if not directory.is_dir():
        raise UsageError(f"--latest {directory}: no such directory", hint="pass the folder holding the undo logs")
    if not logs:
        raise UsageError(
            f"--latest {directory}: no undo log (*.jsonl) in it", hint="a dry run writes none; pass --from FILE"
        )
    return logs[-1]
