"""Credentials at the edge: read from the environment or stdin, and registered for redaction
here, where they enter; the library itself keeps no secret state."""

from __future__ import annotations

import os
from typing import Mapping, TextIO

from pipeline_step.errors import UsageError
from pipeline_step.policy.config import RegistrySettings
from pipeline_step.registry.auth import Credentials
from pipeline_step.support.redact import register_secret


def resolve_credentials(
    registry: RegistrySettings,
    *,
    password_stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Username from settings or REGISTRY_USERNAME; password from stdin or the named variable.

    A password is never accepted as a flag value or a config value.
    """
    env = os.environ if environ is None else environ
    username = registry.username or env.get("REGISTRY_USERNAME") or None
    if password_stdin is not None:
        password = password_stdin.readline().rstrip("\r\n")
        source = "stdin"
    else:
        password = env.get(registry.password_env, "")
        source = f"${registry.password_env}"
    register_secret(password)
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
    credentials = Credentials(username, password)
    register_secret(credentials.basic_token())
    return credentials
