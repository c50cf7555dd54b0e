"""A registry that answers with hostile content: a stand-in, because a real registry validates
what is pushed to it and would never store these.

It serves one repository with ordinary candidate images and one tag, ``hostile``, whose answer
is what a test asks for. Bodies served by digest hash to that digest (the client checks),
unless the test wants them not to. It records every DELETE, so tests can prove none was sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.images import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image_documents, sha256
from tests.support.localhttp import LocalServer, send, send_json

REPO = "team/app"


@dataclass
class Served:
    body: bytes
    media_type: str
    digest: str  # the Docker-Content-Digest announced


@dataclass
class HostileRegistry(LocalServer):
    manifests: dict[str, Served] = field(default_factory=dict)  # reference (tag or digest) -> answer
    blobs: dict[str, bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def image(self, tag: str | None) -> str:
        documents = image_documents(tag or "untagged", label=tag)
        for blob in (documents.config, *documents.layers):
            self.blobs[sha256(blob)] = blob
        return self.add(tag, documents.manifest, DOCKER_MANIFEST)

    def add(self, tag: str | None, body: bytes, media_type: str, *, digest: str | None = None) -> str:
        served = Served(body, media_type, digest or sha256(body))
        self.manifests[served.digest] = served
        if tag is not None:
            self.manifests[tag] = served
        return served.digest

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        prefix = f"/v2/{REPO}/"
        if path == "/v2/":
            send_json(handler, 200, {})
        elif path == f"{prefix}tags/list":
            tags = sorted(ref for ref in self.manifests if ":" not in ref)
            send_json(handler, 200, {"name": REPO, "tags": tags})
        elif path.startswith(f"{prefix}manifests/"):
            self._manifest(handler, path.removeprefix(f"{prefix}manifests/"))
        elif path.startswith(f"{prefix}blobs/"):
            blob = self.blobs.get(path.removeprefix(f"{prefix}blobs/"))
            if blob is None:
                send_json(handler, 404, {"errors": [{"code": "BLOB_UNKNOWN"}]})
            else:
                send(handler, 200, "application/octet-stream", b"" if handler.command == "HEAD" else blob)
        else:
            send_json(handler, 404, {"errors": [{"code": "NAME_UNKNOWN"}]})

    def _manifest(self, handler: BaseHTTPRequestHandler, reference: str) -> None:
        if handler.command == "DELETE":
            with self._lock:
                self.deletes.append(reference)
            send(handler, 202, "text/plain", b"")
            return
        served = self.manifests.get(reference)
        if served is None:
            send_json(handler, 404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            return
        headers = {"Docker-Content-Digest": served.digest}
        if handler.command == "HEAD":
            handler.send_response(200)
            handler.send_header("Content-Type", served.media_type)
            handler.send_header("Content-Length", str(len(served.body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            return
        send(handler, 200, served.media_type, served.body, headers)


def index_body(children: list[str], media_type: str = OCI_MANIFEST) -> bytes:
    entries = [{"mediaType": media_type, "digest": child, "size": 500} for child in children]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()
