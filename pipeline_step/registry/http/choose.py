"""Which transport a registry URL gets, and the client built on it."""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Callable, Literal, get_args
from urllib.parse import urlsplit

from pipeline_step.errors import UsageError
from pipeline_step.registry.auth import Credentials
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.http.lean import LeanTransport
from pipeline_step.registry.http.session import RetryPolicy, Session
from pipeline_step.registry.http.transport import TLSSettings, Transport
from pipeline_step.registry.reference import validate_registry_url

TransportKind = Literal["auto", "lean", "httpx"]
TRANSPORT_KINDS: tuple[str, ...] = get_args(TransportKind)
TRANSPORT_ENV = "REGISTRY_PRUNE_TRANSPORT"


def proxy_applies(url: str) -> bool:
    """True when the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...) routes ``url`` through a proxy."""
    proxies = urllib.request.getproxies()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.netloc)


def transport_kind(requested: str | None, url: str) -> str:
    """``lean`` or ``httpx``: the flag, else $REGISTRY_PRUNE_TRANSPORT, else ``auto``.

    ``auto`` is the lean transport (far less CPU per request, see the README's
    Performance section) unless a proxy from the environment applies to the
    registry URL: only httpx speaks to proxies.
    """
    kind = requested or os.environ.get(TRANSPORT_ENV) or "auto"
    if kind not in TRANSPORT_KINDS:
        raise UsageError(
            f"unknown transport {kind!r}",
            hint=f"use one of {', '.join(TRANSPORT_KINDS)} (--transport or ${TRANSPORT_ENV})",
        )
    if kind == "auto":
        return "httpx" if proxy_applies(url) else "lean"
    if kind == "lean" and proxy_applies(url):
        raise UsageError(
            f"the lean transport cannot use the HTTP proxy the environment sets for {url}",
            hint="use --transport httpx (or auto), or add the registry host to NO_PROXY",
        )
    return kind


def make_transport(kind: str, tls: TLSSettings, *, timeout: float, max_connections: int) -> Transport:
    if kind == "httpx":
        from pipeline_step.registry.http.httpx_transport import HttpxTransport  # noqa: PLC0415 - heavy; only when chosen

        return HttpxTransport(tls, timeout, max_connections)
    return LeanTransport(tls, timeout, max_connections)


def open_client(
    url: str,
    *,
    credentials: Credentials | None = None,
    tls: TLSSettings | None = None,
    timeout: float = 30.0,
    concurrency: int = 4,
    transport: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_secret: Callable[[str], None] | None = None,
) -> RegistryClient:
    """A client for ``url`` with the transport ``transport`` (or auto) and a pool sized to ``concurrency``."""
    url = validate_registry_url(url)
    tls = tls or TLSSettings()
    pool = concurrency + 2  # the workers, plus the main thread's re-checks
    chosen = make_transport(transport_kind(transport, url), tls, timeout=timeout, max_connections=pool)
    session = Session(
        url,
        chosen,
        credentials=credentials,
        tls=tls,
        timeout=timeout,
        retry=retry,
        sleep=sleep,
        on_secret=on_secret,
    )
    return RegistryClient(session)
