"""Configuration: the YAML file and the command-line flags, validated by pydantic.

Precedence for each knob of a repository's policy, highest first: a flag
(the operator's word for this run), the most specific matching entry of
``overrides``, the file's ``policy``, the built-in default. The report's
``policy.source`` names, per knob, which one it came from. ``--protect`` adds
to the protect list; ``protect:`` in the file replaces the default list (write
``protect: []`` to protect nothing).

Regular expressions (``match``, ``exclude``, ``protect``) are Python regexes
searched anywhere in the tag, like ``grep``: anchor them with ``^`` and ``$``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline_step.errors import ConfigError, UsageError
from pipeline_step.policy.globs import glob_matches, specificity
from pipeline_step.registry.artifacts import is_scheme_tag
from pipeline_step.registry.reference import validate_registry_url
from pipeline_step.support.units import format_duration, parse_duration

Order = Literal["semver", "created"]
AttachmentRule = Literal["delete", "keep"]  # attachments of a deleted image: deleted with it, or kept
OrphanRule = Literal["keep", "delete"]  # attachments whose subject is gone: listed only, or pruned

DEFAULT_MATCH = r"^v?\d+\.\d+\.\d+-"  # any semver pre-release: 3.3.0-alpha.74, 1.0.0-rc.1
DEFAULT_KEEP = 10
DEFAULT_ORDER: Order = "semver"
DEFAULT_PROTECT = (r"^latest$", r"^v?\d+\.\d+\.\d+$")  # latest and plain X.Y.Z releases
DEFAULT_ATTACHMENTS: AttachmentRule = "delete"
DEFAULT_ORPHANS: OrphanRule = "keep"
DEFAULT_CONCURRENCY = 4  # the registry saturates 2 cores by c=4 (see README, Performance)


def _check_regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class PolicySettings(BaseModel):
    """Retention knobs. All optional, so an override can set just one."""

    model_config = ConfigDict(extra="forbid")

    match: str | None = None
    exclude: str | None = None
    keep: int | None = Field(default=None, ge=0)
    order: Order | None = None
    older_than: str | None = None
    protect: list[str] | None = None
    attachments: AttachmentRule | None = None
    orphans: OrphanRule | None = None

    @field_validator("match", "exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @field_validator("protect")
    @classmethod
    def _protect(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for pattern in value:
                _check_regex(pattern)
        return value

    @field_validator("older_than")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    username: str | None = None
    password_env: str = "REGISTRY_PASSWORD"  # noqa: S105 - a variable name, not a password
    ca_bundle: Path | None = None
    insecure: bool = False
    timeout: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            return validate_registry_url(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("ca_bundle")
    @classmethod
    def _bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {str(value)!r} is not a readable file")
        return value


class Settings(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid")

    registry: RegistrySettings | None = None
    repositories: list[str] = Field(default_factory=list)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    overrides: dict[str, PolicySettings] = Field(default_factory=dict)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=64)
    lock_dir: Path | None = None
    audit_dir: Path | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    """The effective policy of one repository, with compiled patterns."""

    match: re.Pattern[str]
    exclude: re.Pattern[str] | None
    keep: int
    order: Order
    older_than: timedelta | None
    protect: tuple[re.Pattern[str], ...]
    attachments: AttachmentRule = DEFAULT_ATTACHMENTS
    orphans: OrphanRule = DEFAULT_ORPHANS
    # Where each knob's value came from: "flag --keep", "override team/big", "file policy", "default".
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_created(self) -> bool:
        return self.order == "created" or self.older_than is not None

    def protected_by(self, tag: str) -> str | None:
        for pattern in self.protect:
            if pattern.search(tag):
                return pattern.pattern
        return None

    def not_candidate_reason(self, tag: str) -> str | None:
        """Why ``tag`` is kept regardless of order and age; None for a deletion candidate."""
        protected = self.protected_by(tag)
        if protected is not None:
            return f"protected by '{protected}'"
        if not self.match.search(tag):
            return f"does not match '{self.match.pattern}'"
        if self.exclude is not None and self.exclude.search(tag):
            return f"excluded by '{self.exclude.pattern}'"
        return None

    def needs_age_of(self, tag: str) -> bool:
        # Signatures and referrers tags are never candidates: their age is never asked.
        return self.needs_created and not is_scheme_tag(tag) and self.not_candidate_reason(tag) is None

    def describe(self) -> dict[str, Any]:
        return {
            "match": self.match.pattern,
            "exclude": self.exclude.pattern if self.exclude else None,
            "keep": self.keep,
            "order": self.order,
            "older_than": format_duration(self.older_than) if self.older_than else None,
            "protect": [pattern.pattern for pattern in self.protect],
            "attachments": self.attachments,
            "orphans": self.orphans,
            "source": dict(self.sources),
        }

    def with_keep(self, keep: int, *, why: str) -> RetentionPolicy:
        return replace(self, keep=keep, sources={**self.sources, "keep": why})


@dataclass
class Configuration:
    """Validated settings plus the policy given on the command line."""

    settings: Settings
    flag_policy: PolicySettings = field(default_factory=PolicySettings)
    origin: str = "flags"

    @property
    def registry(self) -> RegistrySettings:
        if self.settings.registry is None:
            raise UsageError("no registry given", hint="pass --registry URL or set registry.url in the config file")
        return self.settings.registry

    def policy_for(self, repository: str) -> RetentionPolicy:
        """The effective policy of ``repository``, each knob from the highest layer that sets it:
        a flag, then the most specific matching override, then the file's ``policy``, then the
        built-in default. (``--protect`` adds to the protect list of the layers below.)"""
        layers: list[tuple[str, PolicySettings]] = [("file policy", self.settings.policy)]
        matching = [pattern for pattern in self.settings.overrides if glob_matches(pattern, repository)]
        if matching:
            # Most specific wins; ties go to the first one written in the file.
            best = max(matching, key=lambda p: (specificity(p), -list(self.settings.overrides).index(p)))
            layers.append((f"override {best}", self.settings.overrides[best]))
        layers.append(("flag", self.flag_policy))
        values: dict[str, Any] = {
            "match": DEFAULT_MATCH,
            "exclude": None,
            "keep": DEFAULT_KEEP,
            "order": DEFAULT_ORDER,
            "older_than": None,
            "protect": list(DEFAULT_PROTECT),
            "attachments": DEFAULT_ATTACHMENTS,
            "orphans": DEFAULT_ORPHANS,
        }
        sources = dict.fromkeys(values, "default")
        for name, layer in layers:
            for key, value in layer.model_dump(exclude_none=True).items():
                label = f"flag --{key.replace('_', '-')}" if name == "flag" else name
                if key == "protect" and name == "flag":
                    values["protect"] = [*values["protect"], *value]
                    sources["protect"] = f"{sources['protect']} + {label}"
                else:
                    values[key] = value
                    sources[key] = label
        return RetentionPolicy(
            match=re.compile(values["match"]),
            exclude=re.compile(values["exclude"]) if values["exclude"] else None,
            keep=values["keep"],
            order=values["order"],
            older_than=parse_duration(values["older_than"]) if values["older_than"] else None,
            protect=tuple(re.compile(pattern) for pattern in values["protect"]),
            attachments=values["attachments"],
            orphans=values["orphans"],
            sources=sources,
        )


# -- loading -----------------------------------------------------------------

_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "missing": "is required",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "literal_error": "must be one of {expected}",
}


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid keys at ``loc[:-1]``, for did-you-mean hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
            args = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
            candidates = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not candidates:
                # dict[str, PolicySettings]: the next part is the user's key
                if args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
                    current = args[-1]
                    continue
                return []
            current = candidates[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            continue  # a user key inside a dict
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def render_validation_error(exc: ValidationError, labels: Mapping[tuple[Any, ...], str] | None = None) -> str:
    """One line per problem, like ``policy.keep: must be >= 0 (got -1)``."""
    lines: list[str] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        label = (labels or {}).get(loc) or ".".join(str(part) for part in loc) or "config"
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            if key == "password":
                lines.append(
                    f"{label}: passwords are never read from files or flags; put it in an environment "
                    "variable and name that variable in registry.password_env"
                )
                continue
            valid = _field_names(Settings, loc)
            close = difflib.get_close_matches(key, valid, n=1)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            lines.append(f"{label}: unknown key ({suggestion}valid keys: {', '.join(valid)})")
            continue
        if kind == "value_error":
            message = str(error.get("ctx", {}).get("error", error["msg"]))
        elif kind in _MESSAGES:
            try:
                message = _MESSAGES[kind].format(**error.get("ctx", {}))
            except (KeyError, IndexError):
                message = error["msg"]
        else:
            message = error["msg"]
        if kind == "missing":
            lines.append(f"{label}: {message}")
        else:
            lines.append(f"{label}: {message} (got {error['input']!r})")
    return "; ".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file {str(path)!r} does not exist", hint="check the --config path") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (registry:, repositories:, policy:, ...)")
    return document


def load_configuration(
    path: Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    flag_labels: Mapping[str, str] | None = None,
) -> Configuration:
    """Read the config file (if any), apply flag values, validate everything once.

    ``flags`` maps dotted keys (``registry.url``, ``policy.keep``,
    ``repositories``) to values; ``flag_labels`` maps the same keys to the flag
    names used in error messages (``--keep``).
    """
    document = _read_yaml(path) if path is not None else {}
    flags = dict(flags or {})
    flag_policy_values = {key.split(".", 1)[1]: value for key, value in flags.items() if key.startswith("policy.")}
    for key, value in flags.items():
        if key.startswith("policy."):
            continue
        target: dict[str, Any] = document
        parts = key.split(".")
        for part in parts[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = {}
                target[part] = existing
            target = existing
        target[parts[-1]] = value
    labels: dict[tuple[Any, ...], str] = {}
    for key, label in (flag_labels or {}).items():
        labels[tuple(key.split("."))] = label
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        where = f" (in {path})" if path is not None else ""
        raise ConfigError(render_validation_error(exc, labels) + where) from None
    try:
        flag_policy = PolicySettings.model_validate(flag_policy_values)
    except ValidationError as exc:
        policy_labels = {
            (key.split(".", 1)[1],): label for key, label in (flag_labels or {}).items() if key.startswith("policy.")
        }
        raise ConfigError(render_validation_error(exc, policy_labels)) from None
    return Configuration(settings, flag_policy, origin=str(path) if path else "flags")
