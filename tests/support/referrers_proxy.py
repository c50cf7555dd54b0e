"""A front for distribution 2.8 that offers the OCI referrers API, which 2.8 and 3.x do not.

Everything is forwarded to the real registry. A manifest PUT carrying a ``subject``
is remembered and answered with ``OCI-Subject``, so clients (oras) know the API is
offered and write no referrers tag index. ``GET /v2/<name>/referrers/<digest>``
answers an OCI index of the remembered referrers that still exist upstream (one
HEAD each), as distribution-spec 1.1 describes. Tests only.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.localhttp import KeepAlive
from tests.support.proxy import HOP_BY_HOP

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_REFERRERS = re.compile(r"^/v2/(.+)/referrers/(sha256:[a-f0-9]{64})(?:\?.*)?$")
_MANIFEST_PUT = re.compile(r"^/v2/(.+)/manifests/([^/?]+)$")
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


class ReferrersProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.referrers: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (repo, subject) -> digest -> entry
        self.asked: Counter[str] = Counter()  # subject digest -> referrers API requests
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._client = KeepAlive(upstream, timeout=60)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ReferrersProxy:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_HEAD = do_DELETE = do_PUT = do_POST = do_PATCH = _any  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client closing its keep-alive connection early is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._client.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        listing = _REFERRERS.match(handler.path)
        if handler.command == "GET" and listing is not None:
            self._answer_referrers(handler, listing.group(1), listing.group(2))
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        # The registry writes upload Locations from Host; oras refuses one naming another host.
        headers["Host"] = handler.headers.get("Host", "")
        status, upstream_headers, payload = self._client.request(handler.command, handler.path, headers, body)
        extra: list[tuple[str, str]] = []
        put = _MANIFEST_PUT.match(handler.path.split("?", 1)[0])
        if handler.command == "PUT" and put is not None and status == 201:
            subject = self._remember(put.group(1), body, {k.lower(): v for k, v in upstream_headers})
            if subject is not None:
                extra.append(("OCI-Subject", subject))
        handler.send_response(status)
        for key, value in upstream_headers:
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        for key, value in extra:
            handler.send_header(key, value)
        upstream_length = next((v for k, v in upstream_headers if k.lower() == "content-length"), "0")
        handler.send_header("Content-Length", str(len(payload)) if handler.command != "HEAD" else upstream_length)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def _remember(self, repo: str, body: bytes, headers: dict[str, str]) -> str | None:
        try:
            document = json.loads(body)
        except ValueError:
            return None
        subject = document.get("subject") if isinstance(document, dict) else None
        if not isinstance(subject, dict) or "digest" not in subject:
            return None
        config = document.get("config") or {}
        entry = {
            "mediaType": document.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
            "digest": headers["docker-content-digest"],
            "size": len(body),
            "artifactType": document.get("artifactType") or config.get("mediaType", ""),
        }
        if document.get("annotations"):
            entry["annotations"] = document["annotations"]
        with self._lock:
            self.referrers.setdefault((repo, subject["digest"]), {})[entry["digest"]] = entry
        return str(subject["digest"])

    def _answer_referrers(self, handler: BaseHTTPRequestHandler, repo: str, digest: str) -> None:
        with self._lock:
            self.asked[digest] += 1
            entries = list(self.referrers.get((repo, digest), {}).values())
        alive = []
        for entry in entries:  # a referrer deleted meanwhile is no longer listed, as a registry would do
            status, _, _ = self._client.request("HEAD", f"/v2/{repo}/manifests/{entry['digest']}", {"Accept": ACCEPT})
            if status == 200:
                alive.append(entry)
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": alive}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", OCI_INDEX)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
