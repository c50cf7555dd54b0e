"""Images as buildx (0.10 and later) pushes them: an OCI index holding the platform image and
its attestation manifest, as Docker's "Image attestation storage" describes.

The attestation manifest is an OCI image manifest whose one layer is an in-toto
statement (``application/vnd.in-toto+json``, annotated with its predicate type)
about the platform manifest, and whose config exists only for compatibility. In
the index it carries the platform ``unknown/unknown`` and the annotations
``vnd.docker.reference.type: attestation-manifest`` and
``vnd.docker.reference.digest: <platform manifest>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.support.images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Pushed, Pusher, make_layer, sha256

IN_TOTO = "application/vnd.in-toto+json"
PROVENANCE = "https://slsa.dev/provenance/v0.2"


@dataclass
class BuildxImage:
    index: Pushed
    platform: Pushed
    attestation: Pushed
    attestation_blobs: list[tuple[str, int]]


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def push_buildx_image(
    pusher: Pusher, repo: str, tag: str, *, created: str, label: str, layer_bytes: int = 2048
) -> BuildxImage:
    """Push a single-platform buildx-style image under ``tag``: index, platform image, provenance."""
    platform = pusher.image(repo, None, oci=True, created=created, label=label, layers=[make_layer(label, layer_bytes)])
    statement = _json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": PROVENANCE,
            "subject": [{"name": f"pkg:docker/{repo}@{tag}", "digest": {"sha256": platform.digest.split(":", 1)[1]}}],
            "predicate": {"builder": {"id": "https://github.com/docker/buildx"}, "metadata": {"label": label}},
        }
    )
    config = _json(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(statement)]},
        }
    )
    for blob in (statement, config):
        pusher.blob(repo, blob)
    attestation_body = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": IN_TOTO,
                    "digest": sha256(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": PROVENANCE},
                }
            ],
        }
    )
    attestation_digest = pusher.manifest(repo, sha256(attestation_body), attestation_body, OCI_MANIFEST)
    index_body = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": platform.digest,
                    "size": platform.size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": attestation_digest,
                    "size": len(attestation_body),
                    "annotations": {
                        "vnd.docker.reference.digest": platform.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                    "platform": {"architecture": "unknown", "os": "unknown"},
                },
            ],
        }
    )
    index_digest = pusher.manifest(repo, tag, index_body, OCI_INDEX)
    blobs = [(sha256(config), len(config)), (sha256(statement), len(statement))]
    return BuildxImage(
        index=Pushed(index_digest, len(index_body), OCI_INDEX, []),
        platform=platform,
        attestation=Pushed(attestation_digest, len(attestation_body), OCI_MANIFEST, blobs),
        attestation_blobs=blobs,
    )
