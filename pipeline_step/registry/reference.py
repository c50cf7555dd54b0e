"""Names the registry API uses, parsed and validated without any I/O.

Registry URLs, repository names, tags and image references. The policy, the
planner and the storage backends validate names here, so none of them needs
the HTTP client.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline_step.errors import UsageError
from pipeline_step.registry.digest import is_digest

# distribution's reference grammar: path components of lower-case alphanumerics and separators.
_REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
REPOSITORY_NAME_MAX = 255


def validate_registry_url(url: str) -> str:
    """Return ``url`` without a trailing slash, or raise a :class:`UsageError` naming the fix."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"registry URL {url!r} has no http:// or https:// scheme",
            hint=f"write it as https://{url.rsplit('://', maxsplit=1)[-1].rstrip('/')} "
            "(or http:// for a plain-HTTP registry)",
        )
    if parts.username or parts.password:
        raise UsageError(
            "the registry URL contains credentials",
            hint="remove user:password@ from the URL and pass --username with REGISTRY_PASSWORD instead",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"registry URL {parts.scheme}://{parts.netloc}{parts.path} must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def validate_repository(name: str) -> str:
    if len(name) > REPOSITORY_NAME_MAX or not _REPOSITORY_NAME.match(name):
        raise UsageError(
            f"{name!r} is not a valid repository name",
            hint="use lower-case path components such as team/app",
        )
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG.match(tag) is not None


@dataclass(frozen=True, slots=True)
class ImageRef:
    repository: str
    reference: str  # a tag or a digest

    def __str__(self) -> str:
        separator = "@" if is_digest(self.reference) else ":"
        return f"{self.repository}{separator}{self.reference}"


def parse_image_ref(text: str, registry_url: str | None = None) -> ImageRef:
    """``[host[:port]/]repo[:tag|@digest]`` -> ImageRef (the host, when given, must be the registry's)."""
    value = text.removeprefix("docker://")
    host = urlsplit(registry_url).netloc if registry_url else None
    if host and value.startswith(host + "/"):
        value = value[len(host) + 1 :]
    if "@" in value:
        repository, reference = value.split("@", 1)
    else:
        last = value.rsplit("/", 1)[-1]
        if ":" in last:
            repository, reference = value.rsplit(":", 1)
        else:
            repository, reference = value, "latest"
    return ImageRef(repository, reference)


def infer_image_ref(command: str, registry_url: str) -> ImageRef | None:
    """Find the pushed image in a push command: the last word naming this registry."""
    host = urlsplit(registry_url).netloc
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in reversed(words):
        candidate = word.removeprefix("docker://")
        if candidate.startswith(host + "/"):
            return parse_image_ref(candidate, registry_url)
    return None
