"""Flags shared by several commands, and their translation into a Configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline_step.cli.secret_flags import add_refused_flag
from pipeline_step.policy.config import Configuration, load_configuration
from pipeline_step.registry.http.choose import TRANSPORT_ENV, TRANSPORT_KINDS

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
    "policy.attachments": ("attachments", "--attachments"),
    "policy.orphans": ("orphans", "--orphans"),
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
    group.add_argument(
        "--no-cross-check",
        action="store_true",
        help="direct mode with --registry: do not compare the registry's tag lists with the storage's "
        "(by default a repository whose registry hides a stored tag is left alone)",
    )
    # Direct mode from the registry's own config file (filesystem or s3 driver).
    group.add_argument(
        "--registry-config",
        type=Path,
        metavar="FILE",
        help="direct mode from the registry's own configuration (e.g. /etc/docker/registry/config.yml): its "
        "storage.filesystem.rootdirectory, or storage.s3 (bucket, region, regionendpoint, rootdirectory, keys), "
        "with the registry's REGISTRY_STORAGE_* environment overrides; S3 credentials not in the file come from "
        "the AWS chain (environment, profile, instance role). Restart the registry afterwards",
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
    group.add_argument(
        "--attachments",
        choices=("delete", "keep"),
        help="signatures, attestations, SBOMs and referrers of a deleted image: deleted after it, or kept "
        "(default: delete). Those of a kept image are always kept",
    )
    group.add_argument(
        "--orphans",
        choices=("keep", "delete"),
        help="attachments whose image is gone: listed and kept, or deleted once no repository of the "
        "catalog holds their subject (default: keep)",
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
