"""What is attached to what: the tag schemes and artifact kinds of signatures, attestations and referrers.

No I/O. Four ways an object is attached to an image (its *subject*):

* cosign's tag scheme: ``sha256-<hex>.sig``, ``.att`` and ``.sbom`` name a signature,
  an attestation and an SBOM of ``sha256:<hex>``;
* the OCI referrers tag schema (distribution-spec 1.1, "Unavailable Referrers API"):
  ``sha256-<hex>`` names an image index listing the referrers of ``sha256:<hex>``,
  kept up to date by the clients that push and delete them;
* an OCI 1.1 manifest's ``subject`` field (content-addressed, so it outranks the two above);
* buildx attestation manifests inside an image's own index (``vnd.docker.reference.type:
  attestation-manifest``, :mod:`pipeline_step.registry.model`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipeline_step.registry.model import Manifest

SIGNATURE = "signature"
ATTESTATION = "attestation"
SBOM = "SBOM"
REFERRERS_INDEX = "referrers index"
REFERRER = "referrer"  # an OCI artifact of a type we do not name (scan results, a Helm provenance, ...)

KINDS = (SIGNATURE, ATTESTATION, SBOM, REFERRERS_INDEX, REFERRER)
PLURALS = {
    SIGNATURE: "signatures",
    ATTESTATION: "attestations",
    SBOM: "SBOMs",
    REFERRERS_INDEX: "referrers indexes",
    REFERRER: "referrers",
}

_COSIGN_SUFFIX = {".sig": SIGNATURE, ".att": ATTESTATION, ".sbom": SBOM}
# Only sha256: distribution stores nothing else, and the model refuses other algorithms anyway.
_SCHEME = re.compile(r"^sha256-([a-f0-9]{64})(\.sig|\.att|\.sbom)?$")

# Substrings of artifactType, config and layer media types, checked in this order.
_KIND_HINTS = (
    (SIGNATURE, ("signature", "cosign.simplesigning", "notary", "cosign.artifact.sig")),
    (SBOM, ("spdx", "cyclonedx", "sbom", "syft")),
    (ATTESTATION, ("in-toto", "dsse", "attestation", "provenance", "vex", "cosign.artifact.att")),
)


@dataclass(frozen=True, slots=True)
class SchemeTag:
    """A tag named after a digest: what it is attached to, and as what."""

    subject: str
    kind: str  # SIGNATURE, ATTESTATION or SBOM (cosign), or REFERRERS_INDEX (the OCI tag schema)


def parse_scheme_tag(tag: str) -> SchemeTag | None:
    """``sha256-<hex>.sig`` -> a signature of ``sha256:<hex>``; None for any other tag."""
    found = _SCHEME.match(tag)
    if found is None:
        return None
    suffix = found.group(2)
    return SchemeTag(f"sha256:{found.group(1)}", _COSIGN_SUFFIX[suffix] if suffix else REFERRERS_INDEX)


def is_scheme_tag(tag: str) -> bool:
    return _SCHEME.match(tag) is not None


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest`` (sha256 digests are never truncated)."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}"


def artifact_kind(manifest: Manifest | None) -> str:
    """Signature, SBOM, attestation or plain referrer, from the artifact's media types."""
    if manifest is None:
        return REFERRER
    types = [manifest.artifact_type]
    if manifest.config is not None:
        types.append(manifest.config.media_type)
    types.extend(layer.media_type for layer in manifest.layers)
    for candidates in (types[:1], types[1:]):  # artifactType first: it says what the artifact is
        text = " ".join(candidates).lower()
        for kind, hints in _KIND_HINTS:
            if any(hint in text for hint in hints):
                return kind
    return REFERRER


def plural(kind: str, count: int) -> str:
    return kind if count == 1 else PLURALS.get(kind, f"{kind}s")


def without_entries(index: bytes, drop: set[str]) -> bytes:
    """The referrers index ``index`` with the entries naming ``drop`` removed, every other field
    and entry as it was. Compact JSON, as oras writes it, so the API and direct mode write the
    same bytes (and the same digest)."""
    document = json.loads(index)
    document["manifests"] = [entry for entry in document.get("manifests") or [] if entry.get("digest") not in drop]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
