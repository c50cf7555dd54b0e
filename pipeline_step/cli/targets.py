"""What a command works on, opened from its flags: a registry client, a backend, the lock
and the audit log."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pipeline_step.backends import Backend, open_backend, s3_backend
from pipeline_step.backends.registry_config import S3Location, load_registry_storage
from pipeline_step.cli.credentials import resolve_credentials
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import RegistryError, UsageError
from pipeline_step.execution.audit import AuditLog, default_audit_dir
from pipeline_step.policy.config import Configuration
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.http.choose import open_client
from pipeline_step.registry.http.session import RetryPolicy
from pipeline_step.registry.http.transport import TLSSettings
from pipeline_step.support.locking import RegistryLock, default_lock_dir
from pipeline_step.support.redact import redact, register_secret


def connect(
    args: argparse.Namespace, configuration: Configuration, *, retry: RetryPolicy | None = None
) -> RegistryClient:
    registry = configuration.registry
    credentials = resolve_credentials(registry, password_stdin=sys.stdin if args.password_stdin else None)
    if registry.insecure:
        print("registry-prune: warning: --insecure: the registry's TLS certificate is not verified", file=sys.stderr)
    return open_client(
        registry.url,
        credentials=credentials,
        tls=TLSSettings(ca_bundle=registry.ca_bundle, insecure=registry.insecure),
        timeout=registry.timeout,
        concurrency=configuration.settings.concurrency,
        transport=getattr(args, "transport", None),
        retry=retry,
        on_secret=register_secret,
    )


def replica_clients(args: argparse.Namespace, client: RegistryClient) -> list[RegistryClient]:
    """Clients for ``--replica-url``: the same credentials, TLS and timeout as ``client``."""
    session = client.session
    return [
        open_client(
            url,
            credentials=session.credentials,
            tls=session.tls,
            timeout=session.timeout,
            transport=getattr(args, "transport", None),
            on_secret=register_secret,
        )
        for url in dict.fromkeys(getattr(args, "replica_url", None) or ())
        if url.rstrip("/") != client.url
    ]


@dataclass
class Target:
    """The registry through its API, or its storage in direct mode (then ``client`` may be None)."""

    backend: Backend
    client: RegistryClient | None

    @property
    def label(self) -> str:
        return self.backend.label

    @property
    def direct(self) -> bool:
        return self.backend.direct

    def requests(self) -> int:
        """Requests sent to the registry (none in direct mode), or to S3 by the S3 backend."""
        s3 = s3_backend(self.backend)
        if s3 is not None:
            return s3.requests
        return self.client.stats.requests if self.client is not None else 0


@dataclass(frozen=True)
class DirectStorage:
    """Where direct mode reads: ``--storage-root``, or what ``--registry-config`` names."""

    root: Path | None = None
    s3: S3Location | None = None

    @property
    def given(self) -> bool:
        return self.root is not None or self.s3 is not None


def direct_storage(args: argparse.Namespace) -> DirectStorage:
    """``--storage-root`` or ``--registry-config`` (the registry's own file, with REGISTRY_STORAGE_*)."""
    root: Path | None = getattr(args, "storage_root", None)
    config: Path | None = getattr(args, "registry_config", None)
    if config is None:
        return DirectStorage(root=root)
    if root is not None:
        raise UsageError(
            "--storage-root and --registry-config both given",
            hint="give one: --registry-config reads the storage root (or bucket) from the registry's config",
        )
    storage = load_registry_storage(config)
    if storage.s3 is not None:
        for secret in storage.s3.secrets:  # the keys enter here: never printed from now on
            register_secret(secret)
    return DirectStorage(root=storage.filesystem_root, s3=storage.s3)


@contextlib.contextmanager
def open_target(args: argparse.Namespace, configuration: Configuration, runtime: Runtime) -> Iterator[Target]:
    """Direct mode never contacts the registry (it may be stopped or read-only); the API mode pings it first.

    In direct mode the lock and the audit log are keyed by ``--registry`` when
    given, so direct and API runs against one registry still exclude each other.
    """
    direct = direct_storage(args)
    concurrency = configuration.settings.concurrency
    if direct.given:
        url = configuration.settings.registry.url if configuration.settings.registry is not None else None
        with contextlib.ExitStack() as stack:
            listed = None
            if url is not None and not getattr(args, "no_cross_check", False):
                listed = _tag_lister(args, configuration, stack)
            backend = open_backend(
                storage_root=direct.root, s3=direct.s3, label=url, concurrency=concurrency, stop=runtime.stop,
                listed=listed,
            )  # fmt: skip
            try:
                yield Target(backend, None)
            finally:
                backend.close()
        return
    with connect(args, configuration) as client:
        client.ping()
        yield Target(open_backend(client=client, concurrency=concurrency, stop=runtime.stop), client)


def _tag_lister(
    args: argparse.Namespace, configuration: Configuration, stack: contextlib.ExitStack
) -> Callable[[str], list[str]] | None:
    """The registry's tag list, to compare with the storage's; None (said on stderr) when it does not
    answer at once: direct mode is for a registry that may be stopped."""
    client = stack.enter_context(
        contextlib.closing(connect(args, configuration, retry=RetryPolicy(attempts=1, max_elapsed=5)))
    )
    try:
        client.ping()
    except RegistryError as exc:
        print(
            redact(f"registry-prune: note: tag lists not compared with the registry's: {exc.message}"),
            file=sys.stderr,
        )
        return None
    return client.tags


@contextlib.contextmanager
def registry_lock(
    args: argparse.Namespace,
    configuration: Configuration,
    registry_url: str,
    runtime: Runtime,
    *,
    command: str,
    backend: Backend | None = None,
) -> Iterator[RegistryLock]:
    """Hold the registry's lock for the body; tell the operator when we queue.

    With the S3 backend, also the bucket's lease: the flock serializes this agent's runs, the lease
    those of every host.
    """

    def waiting(holder: str) -> None:
        print(f"registry-prune: waiting for the lock on {registry_url}: held by {holder}", file=sys.stderr)

    lock = RegistryLock(
        configuration.settings.lock_dir or default_lock_dir(),
        registry_url,
        wait=not getattr(args, "no_wait", False),
        timeout=getattr(args, "lock_timeout", None),
        stop=runtime.stop,
        command=command,
        on_wait=waiting,
    )
    with lock, contextlib.ExitStack() as stack:
        s3 = s3_backend(backend)
        if s3 is not None:
            from pipeline_step.backends.s3.lease import S3Lease  # noqa: PLC0415 - boto3 loads only for S3

            stack.enter_context(
                S3Lease(
                    s3.bucket,
                    wait=lock.wait,
                    timeout=lock.timeout,
                    stop=runtime.stop,
                    command=command,
                    on_wait=waiting,
                )
            )
        yield lock


def open_audit(configuration: Configuration, registry_url: str) -> AuditLog:
    return AuditLog(configuration.settings.audit_dir or default_audit_dir(), registry_url)
