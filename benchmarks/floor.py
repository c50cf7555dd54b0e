"""The raw API floor: the least any API client must send, with no planning logic.

A minimal httpx keep-alive loop, as in the issue: GET tags/list per
repository, one HEAD per tag, and (for a prune) one DELETE per digest to
delete. Whatever registry-prune does on top of this is overhead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import httpx

ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


@dataclass
class FloorResult:
    requests: int
    tags: int
    deleted: int


def raw_floor(
    url: str, repositories: list[str], *, doomed: Callable[[str], bool] | None, concurrency: int
) -> FloorResult:
    """Resolve every tag with HEAD; DELETE the digest of every tag where ``doomed(tag)``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, limits=limits, timeout=120) as client, ThreadPoolExecutor(concurrency) as pool:
        refs: list[tuple[str, str]] = []
        for repository in repositories:
            listed = client.get(f"/v2/{repository}/tags/list")
            listed.raise_for_status()
            refs.extend((repository, tag) for tag in listed.json().get("tags") or [])

        def send(method: str, path: str, **options: Any) -> httpx.Response:
            # One retry of a dropped keep-alive connection (3.x's server closes idle ones), as any client does.
            try:
                return client.request(method, path, **options)
            except httpx.TransportError:
                return client.request(method, path, **options)

        def head(ref: tuple[str, str]) -> tuple[str, str, str]:
            response = send("HEAD", f"/v2/{ref[0]}/manifests/{ref[1]}", headers={"Accept": ACCEPT})
            response.raise_for_status()
            return ref[0], ref[1], response.headers["docker-content-digest"]

        resolved = list(pool.map(head, refs))
        targets = sorted({(repo, digest) for repo, tag, digest in resolved if doomed is not None and doomed(tag)})

        def delete(target: tuple[str, str]) -> None:
            response = send("DELETE", f"/v2/{target[0]}/manifests/{target[1]}")
            if response.status_code not in (202, 404):  # 404: a retried DELETE the first attempt applied
                raise RuntimeError(f"DELETE {target}: HTTP {response.status_code}")

        list(pool.map(delete, targets))
    return FloorResult(len(repositories) + len(refs) + len(targets), len(refs), len(targets))
