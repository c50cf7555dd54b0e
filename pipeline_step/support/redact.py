"""Secret redaction: a process-wide set of values that must never be printed.

Secrets are registered where they enter (credentials, tokens, webhook URLs).
The CLI's output, logging and reports run through :func:`redact`, so a secret
that slipped into a message by mistake is still masked.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` (and its URL-encoded form) as a secret."""
    if not value or len(value) < _MIN_LEN:
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not _secrets:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_values(value: Any, *, payloads: frozenset[str] = frozenset()) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every string redacted, except the
    values of keys named in ``payloads``: encoded bytes such as an audit record's manifest,
    which a mask would corrupt and which carry no secret of ours."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: item if key in payloads else redact_values(item, payloads=payloads) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(item, payloads=payloads) for item in value]
    return value


def clear_secrets() -> None:
    """Forget every secret (for tests and long-lived embedding processes)."""
    with _lock:
        _secrets.clear()


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
