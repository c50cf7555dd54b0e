"""A 100,000-tag repository served from memory, for the CLI's scale test (tests only).

Pushing 100,000 tags and resolving them over HTTP takes minutes; this keeps
everything above the HTTP layer real (the CLI, the client with its digest
checks, the inventory, the planner, the table and the JSON report) and swaps
only the transport for one that answers from memory.

Run as ``python -m tests.support.huge_repo COUNT -- CLI ARGS...``: it patches
the transport, runs the CLI, and prints the peak resident memory on its last
stderr line as ``peak-rss-mib: N``.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline_step.cli.main import main as cli_main
from pipeline_step.registry.http import choose as connect
from pipeline_step.registry.http.transport import Response

REPO = "team/app"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def tag_name(n: int) -> str:
    return f"3.3.0-alpha.{n}"


def manifest_for(n: int) -> bytes:
    """A distinct image per tag: its own config, one shared layer."""
    config = hashlib.sha256(f"config-{n}".encode()).hexdigest()
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 900,
            "digest": f"sha256:{config}",
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 30_000_000,
                "digest": "sha256:" + "ab" * 32,
            }
        ],
    }
    return json.dumps(document).encode()  # compact: the C encoder, so the fake costs little


class MemoryRegistry:
    """Implements the Transport protocol for one repository of ``count`` alpha tags (and ``latest``)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.requests = 0

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        *,
        follow_redirects: bool = False,
        max_body: int | None = None,
    ) -> Response:
        self.requests += 1
        path = urlsplit(url).path
        if path == "/v2/":
            return self._json(url, {})
        if path == f"/v2/{REPO}/tags/list":
            tags = [tag_name(n) for n in range(1, self.count + 1)] + ["latest"]
            return self._json(url, {"name": REPO, "tags": tags})
        prefix = f"/v2/{REPO}/manifests/"
        if path.startswith(prefix) and method in ("GET", "HEAD"):
            reference = path[len(prefix) :]
            number = self.count if reference == "latest" else int(reference.rsplit(".", 1)[1])
            body = manifest_for(number)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            answer_headers = {"content-type": DOCKER_MANIFEST, "docker-content-digest": digest}
            return Response(200, answer_headers, body if method == "GET" else b"", url)
        return Response(404, {"content-type": "application/json"}, b'{"errors":[{"code":"UNKNOWN"}]}', url)

    @staticmethod
    def _json(url: str, document: Any) -> Response:
        return Response(200, {"content-type": "application/json"}, json.dumps(document).encode(), url)

    def close(self) -> None:
        return None


def main(argv: list[str]) -> int:
    count = int(argv[0])
    cli_args = argv[argv.index("--") + 1 :]
    registry = MemoryRegistry(count)
    connect.make_transport = lambda *args, **kwargs: registry
    code = cli_main(cli_args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"requests: {registry.requests}", file=sys.stderr)
    print(f"peak-rss-mib: {peak}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
