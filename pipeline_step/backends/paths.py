"""Distribution's storage layout as pure paths, shared by the filesystem and the S3 backend.

registry/storage/paths.go (2.8) names every file relative to ``docker/registry/v2``:

    blobs/<alg>/<hex[:2]>/<hex>/data
    repositories/<name>/_layers/<alg>/<hex>/link
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link

A filesystem backend prefixes these with ``<rootdirectory>/docker/registry/v2``;
the S3 backend with the bucket's ``<rootdirectory>/docker/registry/v2`` key
prefix. Every name that becomes part of a path is validated first (repository
names, tags, digests), so nothing read from storage can point outside it.
No I/O here.
"""

from __future__ import annotations

from pipeline_step.errors import RegistryProtocolError, UsageError
from pipeline_step.registry.digest import is_digest
from pipeline_step.registry.reference import is_valid_tag, validate_repository

V2_PARTS = ("docker", "registry", "v2")
V2 = "/".join(V2_PARTS)
MANIFEST_LIMIT = 4 * 1024 * 1024  # distribution refuses larger manifests
CONFIG_LIMIT = 16 * 1024 * 1024
# A tag without a link younger than this may be a push writing it right now: leave it.
GHOST_MIN_AGE = 60.0


def split_digest(digest: str) -> tuple[str, str]:
    if not is_digest(digest):
        raise UsageError(f"{digest!r} is not a digest")
    algorithm, _, hexpart = digest.partition(":")
    return algorithm, hexpart


def repository_path(name: str) -> str:
    return f"repositories/{validate_repository(name)}"


def manifests_path(name: str) -> str:
    return f"{repository_path(name)}/_manifests"


def tags_path(name: str) -> str:
    return f"{repository_path(name)}/_manifests/tags"


def tag_path(name: str, tag_name: str) -> str:
    if not is_valid_tag(tag_name):
        raise RegistryProtocolError(f"invalid tag {tag_name!r} in {name}")
    return f"{repository_path(name)}/_manifests/tags/{tag_name}"


def tag_current_link(name: str, tag_name: str) -> str:
    return f"{tag_path(name, tag_name)}/current/link"


def revisions_path(name: str) -> str:
    return f"{repository_path(name)}/_manifests/revisions"


def revision_link(name: str, digest: str) -> str:
    algorithm, hexpart = split_digest(digest)
    return f"{repository_path(name)}/_manifests/revisions/{algorithm}/{hexpart}/link"


def layer_link(name: str, digest: str) -> str:
    """Blobs (and, from registry 2.1.0, some manifests: the "legacy" link a DELETE also clears)."""
    algorithm, hexpart = split_digest(digest)
    return f"{repository_path(name)}/_layers/{algorithm}/{hexpart}/link"


def blob_data(digest: str) -> str:
    algorithm, hexpart = split_digest(digest)
    return f"blobs/{algorithm}/{hexpart[:2]}/{hexpart}/data"


def parse_link(content: bytes, where: str) -> str:
    """A link file's digest; anything else is a protocol error (nothing that names it is deleted)."""
    text = content.decode("ascii", errors="replace")
    if not is_digest(text):
        raise RegistryProtocolError(f"{where} does not hold a digest (got {text[:80]!r})")
    return text


def revision_digest(relative: str) -> str | None:
    """``<alg>/<hex>/link`` below ``_manifests/revisions/``, as a digest; None for anything else."""
    parts = relative.split("/")
    if len(parts) != 3 or parts[2] != "link":
        return None
    digest = f"{parts[0]}:{parts[1]}"
    return digest if is_digest(digest) else None
