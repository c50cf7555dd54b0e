"""One run per registry at a time: an OS-level lock file in a shared directory.

``flock`` is released by the kernel when the process dies, so a crashed run
never leaves a stale lock. Point ``--lock-dir`` at a directory every agent can
see (an NFS mount works with NFSv4 locks) to serialize runs across agents;
the Jenkins step also takes a Lockable Resources lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Callable
from urllib.parse import urlsplit

from pipeline_step.errors import InterruptedRunError, LockBusyError, UsageError

POLL_INTERVAL = 0.2


def default_lock_dir() -> Path:
    configured = os.environ.get("REGISTRY_PRUNE_LOCK_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir())


def lock_path(directory: Path, registry_url: str) -> Path:
    host = urlsplit(registry_url).netloc or registry_url
    return directory / f"registry-prune-{re.sub(r'[^A-Za-z0-9._-]+', '_', host)}.lock"


class RegistryLock:
    """``with RegistryLock(dir, url, wait=True): ...`` holds the registry's lock."""

    def __init__(
        self,
        directory: Path,
        registry_url: str,
        *,
        wait: bool = True,
        timeout: float | None = None,
        stop: threading.Event | None = None,
        command: str = "",
        on_wait: Callable[[str], None] = lambda holder: None,
    ) -> None:
        self.path = lock_path(directory, registry_url)
        self.registry_url = registry_url
        self.wait = wait
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.command = command
        self.on_wait = on_wait
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as written by them (best effort)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "another registry-prune run"
        parts = [f"pid {info.get('pid')} on {info.get('host')}"]
        if info.get("build_url"):
            parts.append(f"build {info['build_url']}")
        if info.get("since"):
            parts.append(f"since {info['since']}")
        return "registry-prune " + ", ".join(parts)

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            raise UsageError(
                f"cannot create the lock file {self.path}: {exc.strerror}",
                hint="pass --lock-dir DIR with a writable directory shared by the agents",
            ) from None
        started = time.monotonic()
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait:
                    holder = self.holder()
                    os.close(fd)
                    raise LockBusyError(
                        f"{holder} holds the lock for {self.registry_url} ({self.path})",
                        hint="wait for it to finish, or rerun without --no-wait to queue behind it",
                    ) from None
                if not announced:
                    self.on_wait(self.holder())
                    announced = True
                if self.stop.is_set():
                    os.close(fd)
                    raise InterruptedRunError(
                        "interrupted while waiting for the registry lock; nothing was done"
                    ) from None
                if self.timeout is not None and time.monotonic() - started > self.timeout:
                    holder = self.holder()
                    os.close(fd)
                    raise LockBusyError(
                        f"gave up after {self.timeout:g}s waiting for {holder} ({self.path})",
                        hint="raise --lock-timeout, or check whether that run is stuck",
                    ) from None
                self.stop.wait(POLL_INTERVAL)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "build_url": os.environ.get("BUILD_URL"),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
