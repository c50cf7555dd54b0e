"""Run the CLI and SIGKILL it at the k-th event of a kind: the crash half of crash-anywhere tests.

    python -m tests.support.killpoint KIND:K -- COMMAND [flags]
    python -m tests.support.killpoint count:FILE -- COMMAND [flags]

Kinds:
  request-before:K  just before the k-th HTTP request is sent
  request-after:K   just after the k-th HTTP answer arrived (its effect happened, nobody knows)
  fileop:K          just before the k-th change to the storage tree (rename, unlink, rmtree)
  intent:K          just after the k-th undo record reached the disk, before its DELETE
  batch-before:K    just before the k-th DeleteObjects batch of the S3 backend is sent
  batch-after:K     just after the k-th DeleteObjects batch was answered (more rounds may follow)
``count:FILE`` kills nothing and writes how many events of each kind the run had, as JSON.

Everything is patched in this process only, before the CLI is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

COUNTS: dict[str, int] = {"request": 0, "fileop": 0, "intent": 0, "batch": 0}
_lock = threading.Lock()


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(kind: str, at: int | None) -> Callable[[], None]:
    """A hook that counts one ``kind`` event and kills at the ``at``-th one (None: only counts)."""

    def hook() -> None:
        with _lock:
            COUNTS[kind] += 1
            number = COUNTS[kind]
        if at is not None and number == at:
            _kill()

    return hook


def install(spec: str) -> Callable[[], None]:
    """Patch the hooks for ``spec``; returns what to call at a clean exit."""
    kind, _, value = spec.partition(":")
    at = int(value) if kind != "count" else None
    from pipeline_step.execution import audit  # noqa: PLC0415
    from pipeline_step.registry.http import lean  # noqa: PLC0415

    request = lean.LeanTransport.request
    request_hook = _counter("request", at if kind.startswith("request") else None)

    def patched_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kind == "request-before":
            request_hook()
        response = request(self, *args, **kwargs)
        if kind != "request-before":
            request_hook()
        return response

    lean.LeanTransport.request = patched_request  # type: ignore[method-assign]

    file_hook = _counter("fileop", at if kind == "fileop" else None)
    for module, name in ((os, "rename"), (os, "unlink"), (shutil, "rmtree")):
        original = getattr(module, name)

        def patched(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            file_hook()
            return __original(*args, **kwargs)

        setattr(module, name, patched)

    record_intent = audit.AuditLog.record_intent
    intent_hook = _counter("intent", at if kind == "intent" else None)

    def patched_intent(self: Any, *args: Any, **kwargs: Any) -> None:
        record_intent(self, *args, **kwargs)
        intent_hook()

    audit.AuditLog.record_intent = patched_intent  # type: ignore[method-assign]

    from pipeline_step.backends.s3 import bucket  # noqa: PLC0415

    delete_batch = bucket.Bucket.delete_batch
    batch_hook = _counter("batch", at if kind.startswith("batch") else None)

    def patched_batch(self: Any, keys: list[str]) -> dict[str, str]:
        if kind == "batch-before":
            batch_hook()
        failed = delete_batch(self, keys)
        if kind != "batch-before":
            batch_hook()
        return failed

    bucket.Bucket.delete_batch = patched_batch  # type: ignore[method-assign]

    def finish() -> None:
        if kind == "count":
            with open(value, "w", encoding="utf-8") as handle:
                json.dump(COUNTS, handle)

    return finish


def main(argv: list[str]) -> int:
    spec = argv[0]
    if argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.killpoint KIND:K -- COMMAND [flags]")
    finish = install(spec)
    from pipeline_step.cli.main import main as cli_main  # noqa: PLC0415

    code = cli_main(argv[2:])
    finish()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
