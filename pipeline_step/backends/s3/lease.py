"""One run per bucket across hosts: a lease object written with a conditional put.

A flock serializes runs on one agent only; agents on different hosts share
nothing but the bucket. The lease is ``<rootdirectory>/registry-prune/lease.json``
(outside ``docker/registry/v2``, so neither the registry nor GC ever reads it),
created with ``If-None-Match: *``: of two runs, S3 lets exactly one write it.
It names its holder and lasts ``ttl`` seconds from its last write; the holder
rewrites it (``If-Match`` its own ETag) every third of that. A crashed holder
stops renewing, and once the lease is older than its ttl by the bucket's own
clock (the ``Date`` of the answer against the object's ``Last-Modified``, so
the hosts' clocks do not matter) another run takes it over, again only with
``If-Match`` on the expired version, so two waiting runs cannot both win.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Callable

from pipeline_step.backends.s3.bucket import Bucket, Fetched
from pipeline_step.errors import AuthenticationError, InterruptedRunError, LockBusyError

log = logging.getLogger(__name__)

LEASE_NAME = "registry-prune/lease.json"
TTL_ENV = "REGISTRY_PRUNE_LEASE_TTL"
DEFAULT_TTL = 120.0
POLL_INTERVAL = 0.5


def default_ttl() -> float:
    try:
        return max(1.0, float(os.environ.get(TTL_ENV, DEFAULT_TTL)))
    except ValueError:
        return DEFAULT_TTL


def _server_now(fetched: Fetched) -> datetime:
    try:
        return parsedate_to_datetime(fetched.server_time)
    except (TypeError, ValueError):
        return datetime.now(timezone.utc)


class S3Lease:
    """``with S3Lease(bucket, wait=True): ...`` holds the bucket's lease."""

    def __init__(
        self,
        bucket: Bucket,
        *,
        wait: bool = True,
        timeout: float | None = None,
        stop: threading.Event | None = None,
        command: str = "",
        on_wait: Callable[[str], None] = lambda holder: None,
        ttl: float | None = None,
    ) -> None:
        root = bucket.location.rootdirectory
        self.bucket = bucket
        self.key = f"{root}/{LEASE_NAME}" if root else LEASE_NAME
        self.where = f"s3://{bucket.name}/{self.key}"
        self.wait = wait
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.command = command
        self.on_wait = on_wait
        self.ttl = ttl if ttl is not None else default_ttl()
        self.token = uuid.uuid4().hex
        self._etag: str | None = None
        self._renewer: threading.Thread | None = None
        self._released = threading.Event()
        self.lost = False

    def _body(self, *, ttl: float | None = None) -> bytes:
        info = {
            "token": self.token,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "build_url": os.environ.get("BUILD_URL"),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ttl": self.ttl if ttl is None else ttl,
        }
        return json.dumps(info).encode()

    @staticmethod
    def describe(info: dict[str, Any]) -> str:
        parts = [f"pid {info.get('pid')} on {info.get('host')}"]
        if info.get("build_url"):
            parts.append(f"build {info['build_url']}")
        return "registry-prune " + ", ".join(parts)

    def _current(self) -> tuple[Fetched, dict[str, Any], float] | None:
        """The lease as it is now, its holder's info, and the seconds until it expires (<= 0: expired)."""
        fetched = self.bucket.get(self.key, limit=64 * 1024)
        if fetched is None:
            return None
        try:
            info = json.loads(fetched.body)
            ttl = float(info.get("ttl", DEFAULT_TTL))
        except (ValueError, TypeError, AttributeError):
            info, ttl = {}, DEFAULT_TTL  # unreadable: it still holds until it expires
        age = (_server_now(fetched) - fetched.modified).total_seconds()
        return fetched, info if isinstance(info, dict) else {}, ttl - age

    def acquire(self) -> None:
        started = time.monotonic()
        announced = False
        while True:
            etag = self.bucket.put(self.key, self._body(), if_none_match=True)
            if etag is not None:
                break
            current = self._current()
            if current is None:
                continue  # released between our put and our read: try again at once
            fetched, info, remaining = current
            holder = self.describe(info)
            if remaining <= 0:
                etag = self.bucket.put(self.key, self._body(), if_match=fetched.etag)
                if etag is not None:
                    log.warning("took over the expired S3 lease %s of %s", self.where, holder)
                    break
                continue  # someone else took it over first, or its holder renewed it
            if not self.wait:
                raise LockBusyError(
                    f"{holder} holds the lease {self.where} (it expires in {remaining:.0f}s unless renewed)",
                    hint="wait for it to finish, or rerun without --no-wait to queue behind it",
                )
            if not announced:
                self.on_wait(f"{holder} (lease {self.where})")
                announced = True
            if self.stop.is_set():
                raise InterruptedRunError("interrupted while waiting for the S3 lease; nothing was done")
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                raise LockBusyError(
                    f"gave up after {self.timeout:g}s waiting for {holder} ({self.where})",
                    hint="raise --lock-timeout, or check whether that run is stuck",
                )
            self.stop.wait(min(POLL_INTERVAL, max(remaining, 0.05)))
        self._etag = etag
        self._released.clear()
        self._renewer = threading.Thread(target=self._renew, name="s3-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._released.wait(self.ttl / 3):
            try:
                etag = self.bucket.put(self.key, self._body(), if_match=self._etag)
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("could not renew the S3 lease %s: %s", self.where, exc)
                continue
            if etag is None:
                self.lost = True
                log.error("lost the S3 lease %s: another run took it over (this run was stalled past its ttl)",
                          self.where)  # fmt: skip
                return
            self._etag = etag

    def release(self) -> None:
        self._released.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
            self._renewer = None
        if self._etag is not None and not self.lost:
            try:
                self.bucket.delete(self.key, if_match=self._etag)
            except AuthenticationError:
                self._expire()
            except Exception as exc:  # noqa: BLE001 - it expires on its own
                log.warning("could not release the S3 lease %s (it expires in %gs): %s", self.where, self.ttl, exc)
        self._etag = None

    def _expire(self) -> None:
        """Credentials that may write but not delete: leave the lease expired, so the next run takes
        it over at once instead of waiting out the ttl."""
        try:
            self.bucket.put(self.key, self._body(ttl=0), if_match=self._etag)
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            log.warning("could not release the S3 lease %s (it expires in %gs): %s", self.where, self.ttl, exc)

    def __enter__(self) -> S3Lease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
