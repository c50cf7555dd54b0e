"""Turn validated settings into credentials, a transport and a registry client."""

from __future__ import annotations

import os
import urllib.request
from typing import Literal, Mapping, TextIO, get_args
from urllib.parse import urlsplit

from pipeline_step.errors import UsageError
from pipeline_step.policy.config import Configuration
from pipeline_step.registry.auth import Credentials
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.fast_transport import LeanTransport
from pipeline_step.registry.transport import HttpxTransport, TLSSettings, Transport

TransportKind = Literal["auto", "lean", "httpx"]
TRANSPORT_KINDS: tuple[str, ...] = get_args(TransportKind)
TRANSPORT_ENV = "REGISTRY_PRUNE_TRANSPORT"


def resolve_credentials(
    configuration: Configuration,
    *,
    password_stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Username from settings or REGISTRY_USERNAME; password from stdin or the named variable.

    A password is never accepted as a flag value or a config value.
    """
    env = os.environ if environ is None else environ
    registry = configuration.registry
    username = registry.username or env.get("REGISTRY_USERNAME") or None
    if password_stdin is not None:
        password = password_stdin.readline().rstrip("\r\n")
        source = "stdin"
    else:
        password = env.get(registry.password_env, "")
        source = f"${registry.password_env}"
    if username and not password:
        raise UsageError(
            f"user {username!r} was given but no password arrived on {source}",
            hint=f"export {registry.password_env}=... (or pass --password-env VAR or --password-stdin)",
        )
    if password and not username:
        if password_stdin is not None:
            raise UsageError("a password arrived on stdin but no user was given", hint="pass --username USER")
        return None  # a stray REGISTRY_PASSWORD in the environment is not a login
    if not username:
        return None
    return Credentials(username, password)


def proxy_applies(url: str) -> bool:
    """True when the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...) routes ``url`` through a proxy."""
    proxies = urllib.request.getproxies()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.netloc)


def transport_kind(requested: str | None, url: str) -> str:
    """``lean`` or ``httpx``: the flag, else $REGISTRY_PRUNE_TRANSPORT, else ``auto``.

    ``auto`` is the lean transport (a quarter of the CPU per request, see the
    README's Performance section) unless a proxy from the environment applies
    to the registry URL: only httpx speaks to proxies.
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
        return HttpxTransport(tls, timeout, max_connections)
    return LeanTransport(tls, timeout, max_connections)


def open_client(
    configuration: Configuration,
    credentials: Credentials | None,
    *,
    concurrency: int | None = None,
    transport: str | None = None,
) -> RegistryClient:
    registry = configuration.registry
    workers = concurrency or configuration.settings.concurrency
    tls = TLSSettings(ca_bundle=registry.ca_bundle, insecure=registry.insecure)
    kind = transport_kind(transport, registry.url)
    return RegistryClient(
        registry.url,
        credentials=credentials,
        tls=tls,
        timeout=registry.timeout,
        max_connections=workers + 2,
        transport=make_transport(kind, tls, timeout=registry.timeout, max_connections=workers + 2),
    )
