"""The transport contract: send one request, return status, headers and body.

The session above handles authentication, retries and the registry's error
model, so a transport only moves bytes. Two implement it: the lean HTTP/1.1
client (lean.py, the default) and httpx (httpx_transport.py, which speaks HTTP
proxies); choose.py picks one.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol


@dataclass(slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # keys are lower-case
    body: bytes
    url: str
    attempts: int = 1  # set by the session: how many tries this answer took

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def retried(self) -> bool:
        return self.attempts > 1


class TransportError(Exception):
    """A request failed below HTTP. ``retryable`` marks the transient kinds."""

    retryable = True


class ConnectFailedError(TransportError):
    pass


class TimedOutError(TransportError):
    pass


class BrokenResponseError(TransportError):
    """The connection dropped or the response was truncated."""


class TLSFailedError(TransportError):
    retryable = False


class BodyTooLargeError(TransportError):
    """The answer's body is larger than the caller allows; it was not read (memory stays bounded)."""

    retryable = False


@dataclass(frozen=True, slots=True)
class TLSSettings:
    ca_bundle: Path | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)


class Transport(Protocol):
    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        *,
        follow_redirects: bool = False,
        max_body: int | None = None,
    ) -> Response:
        """``max_body``: raise :class:`BodyTooLargeError` instead of reading a longer body."""
        ...

    def close(self) -> None: ...
