"""Where the registry keeps its content, read from the registry's own configuration file.

``--registry-config /etc/docker/registry/config.yml`` points the tool at the
file the registry runs with, so the storage settings exist once. Like the
registry, the ``REGISTRY_STORAGE_*`` environment variables override the file
(``REGISTRY_STORAGE_S3_BUCKET=b`` sets ``storage.s3.bucket``; values are YAML,
``REGISTRY_STORAGE=s3`` switches the driver). Supported drivers: ``filesystem``
(its ``rootdirectory``) and ``s3`` (bucket, region, regionendpoint,
rootdirectory, accesskey, secretkey, secure, skipverify). Any other driver is
refused with the advice to use the API.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipeline_step.errors import ConfigError

ENV_PREFIX = "REGISTRY_STORAGE"
# Keys of ``storage`` that configure the registry, not a driver (configuration.go).
NOT_DRIVERS = frozenset({"delete", "cache", "maintenance", "redirect", "tag"})
S3_DRIVERS = frozenset({"s3", "s3aws", "s3-aws"})
SECRET_FIELDS = frozenset({"accesskey", "secretkey", "sessiontoken"})
DEFAULT_FILESYSTEM_ROOT = "/var/lib/registry"


class _S3Parameters(BaseModel):
    """``storage.s3`` as distribution 2.8 reads it (the fields this tool needs; the rest are ignored)."""

    model_config = ConfigDict(extra="ignore")

    bucket: str
    region: str
    regionendpoint: str | None = None
    rootdirectory: str = ""
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    secure: bool = True
    skipverify: bool = False

    @field_validator("bucket", "region", "regionendpoint", "rootdirectory", "accesskey", "secretkey", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # Env values are YAML: a bucket named 2024 arrives as an int.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class S3Location:
    """The registry's bucket, and how to reach it. ``repr`` never shows the keys."""

    bucket: str
    region: str
    endpoint: str | None  # None: AWS itself
    rootdirectory: str  # key prefix without slashes at either end ("" for the bucket's top)
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    verify_tls: bool = True

    def __repr__(self) -> str:
        return f"S3Location(bucket={self.bucket!r}, endpoint={self.endpoint!r}, rootdirectory={self.rootdirectory!r})"

    @property
    def v2_prefix(self) -> str:
        """The key prefix of ``docker/registry/v2/`` (the s3 driver's s3Path: root + path, no leading slash)."""
        return f"{self.rootdirectory}/docker/registry/v2/" if self.rootdirectory else "docker/registry/v2/"

    @property
    def label(self) -> str:
        """Stands in for the registry URL in reports, audit logs and lock names."""
        where = f"/{self.rootdirectory}" if self.rootdirectory else ""
        return f"s3://{self.bucket}{where}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(value for value in (self.access_key, self.secret_key, self.session_token) if value)


@dataclass(frozen=True)
class RegistryStorage:
    """What ``--registry-config`` says: one of ``filesystem_root`` or ``s3``."""

    source: Path
    driver: str
    filesystem_root: Path | None = None
    s3: S3Location | None = None
    readonly: bool = False  # storage.maintenance.readonly.enabled


def _fail(source: Path, field: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"registry config {source}: {field}: {problem}", hint=fix)


def _env_overrides(storage: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply REGISTRY_STORAGE* the way distribution's configuration parser does (shortest name first)."""
    result: dict[str, Any] = dict(storage)
    for name in sorted(key for key in environ if key == ENV_PREFIX or key.startswith(ENV_PREFIX + "_")):
        value = yaml.safe_load(environ[name]) if environ[name].strip() else ""
        parts = [part.lower() for part in name.split("_")[2:]]
        if not parts:
            # REGISTRY_STORAGE=s3: the driver itself; its parameters follow in longer names.
            drivers = [key for key in result if key not in NOT_DRIVERS]
            for driver in drivers:
                del result[driver]
            result[str(value)] = {}
            continue
        target = result
        for part in parts[:-1]:
            existing = next((key for key in target if str(key).lower() == part), part)
            child = target.get(existing)
            if not isinstance(child, dict):
                child = {}
            target[existing] = child = dict(child)
            target = child
        target[parts[-1]] = value
    return result


def _endpoint(value: str | None, secure: bool) -> str | None:
    if not value:
        return None
    if "://" in value:
        return value.rstrip("/")
    return f"{'https' if secure else 'http'}://{value.rstrip('/')}"


def _s3(source: Path, parameters: object) -> S3Location:
    if not isinstance(parameters, dict):
        raise _fail(source, "storage.s3", "is not a mapping", "give bucket and region (and regionendpoint) there")
    try:
        params = _S3Parameters.model_validate(parameters)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        shown = "" if field in SECRET_FIELDS or error["type"] == "missing" else f" (got {error.get('input')!r})"
        problem = "missing" if error["type"] == "missing" else f"{error['msg']}{shown}"
        raise _fail(
            source,
            f"storage.s3.{field}",
            problem,
            f"set it in the file or in ${ENV_PREFIX}_S3_{field.upper()}, as the registry reads it",
        ) from None
    if not params.bucket.strip():
        raise _fail(source, "storage.s3.bucket", "is empty", f"name the bucket (or set ${ENV_PREFIX}_S3_BUCKET)")
    if bool(params.accesskey) != bool(params.secretkey):
        raise _fail(
            source,
            "storage.s3.accesskey/secretkey",
            "only one of the two is set",
            "set both, or neither to use the AWS credential chain (environment, profile, instance role)",
        )
    return S3Location(
        bucket=params.bucket,
        region=params.region,
        endpoint=_endpoint(params.regionendpoint, params.secure),
        rootdirectory=params.rootdirectory.strip("/"),
        access_key=params.accesskey or None,
        secret_key=params.secretkey or None,
        session_token=params.sessiontoken or None,
        verify_tls=not params.skipverify,
    )


def load_registry_storage(path: Path, *, environ: Mapping[str, str] | None = None) -> RegistryStorage:
    """Read the storage settings of the registry's config file, with its environment overrides."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"--registry-config {path}: cannot read it: {exc.strerror or exc}",
            hint="pass the file the registry runs with, e.g. /etc/docker/registry/config.yml",
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"--registry-config {path}: not valid YAML{where}", hint="fix the file (the registry could not read it)"
        ) from None
    storage = document.get("storage") if isinstance(document, dict) else None
    if isinstance(storage, str):
        storage = {storage: {}}
    if storage is None and any(key == ENV_PREFIX or key.startswith(ENV_PREFIX + "_") for key in env):
        storage = {}
    if not isinstance(storage, dict):
        raise _fail(
            path,
            "storage",
            "no storage section",
            "pass the registry's own config.yml (it has storage.filesystem or storage.s3), or --storage-root DIR",
        )
    storage = _env_overrides(storage, env)
    drivers = [str(key) for key in storage if str(key) not in NOT_DRIVERS]
    if len(drivers) != 1:
        problem = "names no storage driver" if not drivers else f"names several drivers ({', '.join(drivers)})"
        raise _fail(path, "storage", problem, "the registry runs with exactly one: filesystem or s3 here")
    driver = drivers[0]
    maintenance = storage.get("maintenance")
    readonly_section = maintenance.get("readonly") if isinstance(maintenance, dict) else None
    readonly = bool(readonly_section.get("enabled")) if isinstance(readonly_section, dict) else False
    if driver == "filesystem":
        parameters = storage[driver] if isinstance(storage[driver], dict) else {}
        root = str(parameters.get("rootdirectory") or DEFAULT_FILESYSTEM_ROOT)
        return RegistryStorage(path, driver, filesystem_root=Path(root), readonly=readonly)
    if driver in S3_DRIVERS:
        return RegistryStorage(path, "s3", s3=_s3(path, storage[driver] or {}), readonly=readonly)
    raise _fail(
        path,
        "storage",
        f"the {driver} driver is not supported by the direct backends",
        "use the API: pass --registry URL instead of --registry-config (direct mode reads filesystem and s3)",
    )
