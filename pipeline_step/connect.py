"""Turn validated settings into credentials and a registry client."""

from __future__ import annotations

import os
from typing import Mapping, TextIO

from pipeline_step.errors import UsageError
from pipeline_step.policy.config import Configuration
from pipeline_step.registry.auth import Credentials
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.transport import TLSSettings


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


def open_client(
    configuration: Configuration, credentials: Credentials | None, *, concurrency: int | None = None
) -> RegistryClient:
    registry = configuration.registry
    workers = concurrency or configuration.settings.concurrency
    return RegistryClient(
        registry.url,
        credentials=credentials,
        tls=TLSSettings(ca_bundle=registry.ca_bundle, insecure=registry.insecure),
        timeout=registry.timeout,
        max_connections=workers + 2,
    )
