"""Flags shared by several commands, and their translation into a Configuration."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipeline_step.audit import AuditLog, default_audit_dir
from pipeline_step.backend import Backend, api_backend, storage_backend
from pipeline_step.cli.runtime import Runtime
from pipeline_step.cli.secret_flags import add_refused_flag
from pipeline_step.connect import TRANSPORT_ENV, TRANSPORT_KINDS, open_client, resolve_credentials
from pipeline_step.errors import UsageError
from pipeline_step.locking import RegistryLock, default_lock_dir
from pipeline_step.policy.config import Configuration, load_configuration
from pipeline_step.registry.client import RegistryClient
from pipeline_step.storage.layout import StorageLayout

# dotted config key -> (argparse dest, flag label)
_FLAG_KEYS: dict[str, tuple[str, str]] = {
    "registry.url": ("registry", "--registry"),
    "registry.username": ("username", "--username"),
    "registry.password_env": ("password_env", "--password-env"),
    "registry.ca_bundle": ("ca_bundle", "--ca-bundle"),
    "registry.insecure": ("insecure", "--insecure"),
    "registry.timeout": ("timeout", "--timeout"),
    "repositories": ("repo", "--repo"),
    "concurrency": ("concurrency", "--concurrency"),
    "lock_dir": ("lock_dir", "--lock-dir"),
    "audit_dir": ("audit_dir", "--audit-dir"),
    "policy.match": ("match", "--match"),
    "policy.exclude": ("exclude", "--exclude"),
    "policy.keep": ("keep", "--keep"),
    "policy.order": ("order", "--order"),
    "policy.older_than": ("older_than", "--older-than"),
    "policy.protect": ("protect", "--protect"),
}


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry")
    group.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file (flags override it)")
    group.add_argument("--registry", metavar="URL", help="registry base URL, e.g. https://registry.example:5000")
    group.add_argument("--username", metavar="USER", help="registry user (default: $REGISTRY_USERNAME)")
    group.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the password (default: REGISTRY_PASSWORD)"
    )
    group.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add_refused_flag(
        group,
        "--password",
        "password",
        "export REGISTRY_PASSWORD (or name another variable with --password-env VAR), or pipe it to --password-stdin",
    )
    group.add_argument("--ca-bundle", type=Path, metavar="FILE", help="CA certificate(s) to verify the registry's TLS")
    group.add_argument(
        "--insecure", action="store_true", default=None, help="skip TLS verification (warns; prefer --ca-bundle)"
    )
    group.add_argument("--timeout", type=float, metavar="SECONDS", help="per-request timeout (default: 30)")
    group.add_argument("--concurrency", type=int, metavar="N", help="parallel requests (default: 4)")
    group.add_argument(
        "--transport",
        choices=TRANSPORT_KINDS,
        help=f"HTTP client: lean (least CPU per request), httpx (speaks HTTP proxies), or auto: lean unless "
        f"a proxy from the environment applies (default: ${TRANSPORT_ENV} or auto)",
    )
    group.add_argument(
        "--storage-root",
        type=Path,
        metavar="DIR",
        help="direct-storage mode: read and prune the registry's filesystem storage "
        "(its storage.filesystem.rootdirectory) instead of the API; --registry is then optional. "
        "Run on the registry host or in its container; restart the registry afterwards",
    )


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("retention policy (overrides the config file)")
    group.add_argument(
        "--repo",
        action="append",
        metavar="GLOB",
        help="repository name or glob, repeatable (* stays within a path component, ** crosses)",
    )
    group.add_argument(
        "--match",
        metavar="REGEX",
        help=r"candidate tags: unanchored regex (default: ^v?\d+\.\d+\.\d+- , any semver pre-release)",
    )
    group.add_argument("--exclude", metavar="REGEX", help="never treat tags matching this as candidates")
    group.add_argument(
        "--keep", type=int, metavar="N", help="keep the newest N candidates per repository (default: 10)"
    )
    group.add_argument(
        "--protect",
        action="append",
        metavar="REGEX",
        help="never delete matching tags; adds to the defaults ^latest$ and ^v?X.Y.Z$ (repeatable)",
    )
    group.add_argument("--order", choices=("semver", "created"), help="how 'newest' is decided (default: semver)")
    group.add_argument(
        "--older-than",
        metavar="DURATION",
        help="delete only candidates older than this, e.g. 14d; unknown ages are kept",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", metavar="FILE", help="write the JSON report to FILE (- for stdout)")
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")


def add_predict_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predict",
        choices=("catalog", "selected"),
        help="check the predicted reclaim against every repository of the catalog (exact: shared layers "
        "are not counted), or only the selected ones (an upper bound, no extra reads). Default: catalog "
        "in direct mode, selected through the API (there the scan costs a request per tag of every other "
        "repository)",
    )


def predict_scope(args: argparse.Namespace, *, direct: bool) -> str:
    """``catalog`` costs nothing extra in direct mode; through the API it costs a request per tag of
    every other repository, and literal --repo names promise not to touch the catalog."""
    chosen: str | None = getattr(args, "predict", None)
    return chosen or ("catalog" if direct else "selected")


def add_safety_options(parser: argparse.ArgumentParser, *, audit: bool = True) -> None:
    """Locking flags, and ``--audit-dir`` for commands that delete (``audit``)."""
    group = parser.add_argument_group("locking and undo")
    group.add_argument(
        "--lock-dir",
        type=Path,
        metavar="DIR",
        help="directory for the per-registry lock file; share it between agents "
        "(default: $REGISTRY_PRUNE_LOCK_DIR or the temp dir)",
    )
    group.add_argument("--no-wait", action="store_true", help="fail at once (exit 6) if another run holds the lock")
    group.add_argument("--lock-timeout", type=float, metavar="SECONDS", help="give up waiting for the lock after this")
    if not audit:
        return
    group.add_argument(
        "--audit-dir",
        type=Path,
        metavar="DIR",
        help="where the undo log of deleted manifests goes "
        "(default: $REGISTRY_PRUNE_AUDIT_DIR or ~/.local/state/registry-prune/audit)",
    )


def load(args: argparse.Namespace) -> Configuration:
    flags: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, (dest, label) in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            flags[key] = value
            labels[key] = label
    if getattr(args, "protect", None) is not None:
        flags["policy.protect"] = list(args.protect)
    return load_configuration(getattr(args, "config", None), flags=flags, flag_labels=labels)


def open_backend(
    args: argparse.Namespace, configuration: Configuration, client: RegistryClient | None, runtime: Runtime
) -> Backend:
    """The storage backend with ``--storage-root``, else the API backend."""
    concurrency = configuration.settings.concurrency
    storage_root: Path | None = getattr(args, "storage_root", None)
    if storage_root is not None:
        return storage_backend(StorageLayout.open(storage_root), concurrency=concurrency, stop=runtime.stop)
    if client is None:
        raise UsageError("no registry given", hint="pass --registry URL, or --storage-root DIR for direct mode")
    return api_backend(client, concurrency=concurrency, stop=runtime.stop)


@dataclass
class Target:
    """What a command works on: the registry through its API, or its storage directory."""

    label: str  # the registry URL, or file://<storage root> when direct mode has no --registry
    backend: Backend
    client: RegistryClient | None  # None in direct mode: the registry is not contacted

    @property
    def direct(self) -> bool:
        return self.backend.name == "storage"

    def requests(self) -> int:
        return self.client.stats.requests if self.client is not None else 0


@contextlib.contextmanager
def open_target(args: argparse.Namespace, configuration: Configuration, runtime: Runtime) -> Iterator[Target]:
    """Direct mode never contacts the registry (it may be stopped or read-only); the API mode pings it first.

    In direct mode the lock and the audit log are keyed by ``--registry`` when
    given, so direct and API runs against one registry still exclude each other.
    """
    storage_root: Path | None = getattr(args, "storage_root", None)
    if storage_root is not None:
        layout = StorageLayout.open(storage_root)
        url = configuration.settings.registry.url if configuration.settings.registry is not None else None
        backend = storage_backend(layout, concurrency=configuration.settings.concurrency, stop=runtime.stop)
        yield Target(url or layout.label, backend, None)
        return
    with connect(args, configuration) as client:
        client.ping()
        yield Target(client.url, open_backend(args, configuration, client, runtime), client)


@contextlib.contextmanager
def registry_lock(
    args: argparse.Namespace, configuration: Configuration, registry_url: str, runtime: Runtime, *, command: str
) -> Iterator[RegistryLock]:
    """Hold the registry's lock for the body; tell the operator when we queue."""

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
    with lock:
        yield lock


def open_audit(configuration: Configuration, registry_url: str) -> AuditLog:
    return AuditLog(configuration.settings.audit_dir or default_audit_dir(), registry_url)


def connect(args: argparse.Namespace, configuration: Configuration) -> RegistryClient:
    credentials = resolve_credentials(configuration, password_stdin=sys.stdin if args.password_stdin else None)
    if configuration.registry.insecure:
        print("registry-prune: warning: --insecure: the registry's TLS certificate is not verified", file=sys.stderr)
    return open_client(configuration, credentials, transport=getattr(args, "transport", None))
