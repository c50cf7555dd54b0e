"""The registry's domain objects, independent of HTTP.

A manifest is either an *image* (config + layers) or an *index* (Docker
manifest list / OCI index) whose children are other manifests.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import lru_cache

from pipeline_step.errors import RegistryProtocolError, Schema1ManifestError
from pipeline_step.registry import mediatypes
from pipeline_step.registry.digest import is_digest


class DeleteResult(Enum):
    """What a delete did, whichever backend did it."""

    DELETED = "deleted"
    ALREADY_GONE = "already-gone"  # a retry found it gone: an earlier attempt (or someone else) got there


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content by digest, with its size and media type."""

    digest: str
    size: int
    media_type: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest. ``size`` is the size of its own bytes."""

    digest: str
    media_type: str
    size: int
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    # OCI 1.1: the manifest this one is attached to (a signature, an SBOM), and what kind of artifact it is.
    subject: str | None = None
    artifact_type: str = ""
    # An index's buildx attestation manifests: (child digest, digest of the platform manifest it describes or "").
    attestations: tuple[tuple[str, str], ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEX_TYPES

    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob this manifest references directly (config first)."""
        if self.config is None:
            return self.layers
        return (self.config, *self.layers)


@dataclass(frozen=True, slots=True)
class ManifestHead:
    """What a HEAD on a manifest tells: its digest, media type and size."""

    digest: str
    media_type: str
    size: int


# Most images share most layers: one Descriptor (and one tuple of them) per distinct layer set
# instead of one per manifest. Bounded, so a long-lived process cannot grow without limit.
_shared_descriptor = lru_cache(maxsize=1 << 16)(Descriptor)


@lru_cache(maxsize=1 << 14)
def _shared_layers(layers: tuple[Descriptor, ...]) -> tuple[Descriptor, ...]:
    return layers


def _where(manifest: str, field: str, index: int) -> str:
    return f"manifest {manifest} {field}" if index < 0 else f"manifest {manifest} {field} {index}"


def _descriptor(raw: object, manifest: str, field: str, index: int = -1, *, shared: bool = False) -> Descriptor:
    """``field`` and ``index`` name it in error messages, built only on error: this runs for every layer."""
    if not isinstance(raw, dict):
        raise RegistryProtocolError(f"{_where(manifest, field, index)} is not a JSON object")
    digest = raw.get("digest")
    size = raw.get("size", 0)
    if not isinstance(digest, str) or not is_digest(digest):
        raise RegistryProtocolError(f"{_where(manifest, field, index)} has no valid digest (got {digest!r})")
    if not digest.startswith("sha256:"):
        raise RegistryProtocolError(
            f"{_where(manifest, field, index)} uses the digest algorithm {digest.split(':', 1)[0]}, "
            "which distribution never stores: a registry answering with it is not to be trusted with deletions"
        )
    if not isinstance(size, int) or size < 0:
        raise RegistryProtocolError(f"{_where(manifest, field, index)} has an invalid size (got {size!r})")
    media_type = raw.get("mediaType", "")
    # Layer digests repeat across thousands of manifests; interning keeps one copy.
    make = _shared_descriptor if shared else Descriptor
    return make(sys.intern(digest), size, sys.intern(media_type) if isinstance(media_type, str) else "")


ATTESTATION_TYPE = "vnd.docker.reference.type"
ATTESTATION_DIGEST = "vnd.docker.reference.digest"


def _attestation(raw: object) -> tuple[bool, str]:
    """Whether an index entry is a buildx attestation manifest, and the digest it describes.

    Docker's attestation storage marks them with two annotations; their platform is
    ``unknown/unknown``, which alone marks them too (the annotations may have been stripped).
    """
    if not isinstance(raw, dict):
        return False, ""
    annotations = raw.get("annotations")
    if isinstance(annotations, dict) and annotations.get(ATTESTATION_TYPE) == "attestation-manifest":
        described = annotations.get(ATTESTATION_DIGEST)
        return True, described if isinstance(described, str) and is_digest(described) else ""
    platform = raw.get("platform")
    if isinstance(platform, dict) and platform.get("os") == "unknown" and platform.get("architecture") == "unknown":
        return True, ""
    return False, ""


def _artifact_fields(document: dict[str, object], digest: str) -> tuple[str | None, str]:
    subject_raw = document.get("subject")
    subject = _descriptor(subject_raw, digest, "subject").digest if subject_raw is not None else None
    artifact_type = document.get("artifactType")
    return subject, sys.intern(artifact_type) if isinstance(artifact_type, str) else ""


def parse_manifest(body: bytes, digest: str, content_type: str | None) -> Manifest:
    """Parse ``body`` (already verified against ``digest``) into a :class:`Manifest`."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryProtocolError(f"manifest {digest} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RegistryProtocolError(f"manifest {digest} is not a JSON object")
    if not digest.startswith("sha256:"):
        raise RegistryProtocolError(
            f"manifest {digest} uses the digest algorithm {digest.split(':', 1)[0]}, which distribution "
            "never stores: a registry answering with it is not to be trusted with deletions"
        )
    media_type = document.get("mediaType")
    announced = (content_type or "").split(";")[0].strip()
    if document.get("schemaVersion") == 1 or announced in mediatypes.SCHEMA1_TYPES:
        media_type = mediatypes.DOCKER_SCHEMA1_SIGNED
    elif not isinstance(media_type, str) or not media_type:
        # An OCI manifest may omit mediaType; the presence of "manifests" tells an index.
        media_type = mediatypes.OCI_INDEX if "manifests" in document else mediatypes.OCI_MANIFEST
    if media_type in mediatypes.SCHEMA1_TYPES:
        # Asked with every v2 type accepted, a registry answers schema1 only for a manifest stored so.
        raise Schema1ManifestError(f"manifest {digest} is schema1", digest=digest)
    if media_type not in mediatypes.MANIFEST_TYPES:
        raise RegistryProtocolError(
            f"manifest {digest} has the media type {media_type[:100]!r}, which this tool does not know",
            hint="nothing in its repository is deleted: what it references cannot be known",
        )
    subject, artifact_type = _artifact_fields(document, digest)
    if media_type in mediatypes.INDEX_TYPES:
        children = document.get("manifests") or []
        if not isinstance(children, list):
            raise RegistryProtocolError(f"index {digest} has a non-list 'manifests'")
        descriptors = tuple(_descriptor(c, digest, "child", i) for i, c in enumerate(children))
        attestations = []
        for descriptor, raw in zip(descriptors, children, strict=True):
            marked, described = _attestation(raw)
            if marked:
                attestations.append((descriptor.digest, described))
        return Manifest(
            digest=digest,
            media_type=sys.intern(media_type),
            size=len(body),
            children=descriptors,
            subject=subject,
            artifact_type=artifact_type,
            attestations=tuple(attestations),
        )
    config_raw = document.get("config")
    layers_raw = document.get("layers") or []
    if not isinstance(layers_raw, list):
        raise RegistryProtocolError(f"manifest {digest} has a non-list 'layers'")
    layers = tuple(_descriptor(layer, digest, "layer", i, shared=True) for i, layer in enumerate(layers_raw))
    return Manifest(
        digest=digest,
        media_type=sys.intern(media_type),
        size=len(body),
        config=_descriptor(config_raw, digest, "config") if config_raw is not None else None,
        layers=_shared_layers(layers),
        subject=subject,
        artifact_type=artifact_type,
    )


def parse_created(config_body: bytes) -> datetime | None:
    """The image config's ``created`` time, or None when absent or unparsable."""
    try:
        document = json.loads(config_body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    created = document.get("created")
    if not isinstance(created, str) or not created:
        return None
    return parse_timestamp(created)


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 with optional nanoseconds (Go writes up to 9 fraction digits)."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, dot, rest = text.partition(".")
    if dot:
        fraction = ""
        index = 0
        while index < len(rest) and rest[index].isdigit():
            fraction += rest[index]
            index += 1
        text = f"{main}.{fraction[:6].ljust(6, '0')}{rest[index:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    # Go's zero time and Docker's "reproducible build" epoch carry no age information.
    if parsed.year <= 1970:
        return None
    return parsed


@dataclass(frozen=True, slots=True)
class RegistryLine:
    """Which distribution line answers, learnt from its answers (never from a version string)."""

    name: str  # "2.8" | "3.x" | "unknown"
    evidence: str

    @property
    def pages_tags(self) -> bool:
        return self.name == "3.x"
