"""Read what a registry really holds, straight from its API (never through the proxy).

Keep-alive http.client connections, one per worker thread, so checking 2,000
tags costs about a second, not the better part of a minute.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from urllib.parse import urlsplit

from tests.support.images import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
WORKERS = 4


class RegistryState:
    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._headers = dict(headers or {})
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __enter__(self) -> RegistryState:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for connection in self._opened:
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._https:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                connection = http.client.HTTPSConnection(self._host, self._port, timeout=30, context=context)
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):  # a kept-alive connection the registry closed is reopened once
            connection = self._connection()
            try:
                connection.request(method, path, headers={**self._headers, **(headers or {})})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        raise AssertionError("unreachable")

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
