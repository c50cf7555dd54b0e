"""Read what a registry really holds, straight from its API (never through the proxy).

Keep-alive http.client connections, one per worker thread, so checking 2,000
tags costs about a second, not the better part of a minute.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from tests.support.images import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.support.localhttp import KeepAlive

ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
WORKERS = 4


class RegistryState:
    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self._headers = dict(headers or {})
        self._client = KeepAlive(url, timeout=30)

    def __enter__(self) -> RegistryState:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()

    def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        status, pairs, body = self._client.request(method, path, {**self._headers, **(headers or {})})
        return status, {k.lower(): v for k, v in pairs}, body

    def tags(self, repo: str) -> list[str]:
        status, _, body = self._request("GET", f"/v2/{repo}/tags/list")
        assert status == 200, body
        return sorted(json.loads(body).get("tags") or [])

    def resolve(self, repo: str, reference: str) -> str | None:
        status, headers, _ = self._request("HEAD", f"/v2/{repo}/manifests/{reference}", {"Accept": ACCEPT})
        if status == 404:
            return None
        assert status == 200, status
        return headers["docker-content-digest"]

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str] | None:
        """The stored bytes and content type of a manifest, or None."""
        status, headers, body = self._request("GET", f"/v2/{repo}/manifests/{reference}", {"Accept": ACCEPT})
        if status == 404:
            return None
        assert status == 200, status
        return body, headers["content-type"]

    def blob_status(self, repo: str, digest: str) -> int:
        """What a HEAD on the blob answers (a registry's blob cache can outlive garbage collection)."""
        return self._request("HEAD", f"/v2/{repo}/blobs/{digest}")[0]

    def resolve_all(self, repo: str, references: list[str]) -> dict[str, str | None]:
        with ThreadPoolExecutor(WORKERS) as pool:
            return dict(zip(references, pool.map(lambda ref: self.resolve(repo, ref), references), strict=True))

    def snapshot(self, repo: str) -> dict[str, str]:
        """Every tag with the digest it points at."""
        found = self.resolve_all(repo, self.tags(repo))
        assert all(digest is not None for digest in found.values()), found
        return {tag: digest for tag, digest in found.items() if digest is not None}

    def present(self, repo: str, digests: set[str]) -> set[str]:
        found = self.resolve_all(repo, sorted(digests))
        return {digest for digest, answer in found.items() if answer == digest}
