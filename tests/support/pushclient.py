"""A second client pushing the way ``docker push`` does: HEAD each blob, upload what is missing,
then PUT the manifest. It records refusals instead of asserting, because refusing loudly is
an allowed outcome while the registry is read-only or stopped.

    python -m tests.support.pushclient put-manifest URL REPO TAG MANIFEST_FILE RESULT_FILE

PUTs a prepared manifest (the last step of a push) and writes the HTTP status, or the
connection error, to RESULT_FILE: the GC-command wrapper of the live-GC test uses it to push
"between GC and the restart".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.images import OCI_MANIFEST, ImageDocuments, sha256


@dataclass
class PushOutcome:
    tag: str
    ok: bool
    detail: str


class PushClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def upload(self, repo: str, data: bytes) -> None:
        """Upload one blob unless the registry says it has it (the HEAD a stale cache answers wrongly)."""
        digest = sha256(data)
        if self.client.head(f"{self.url}/v2/{repo}/blobs/{digest}").status_code == 200:
            return
        start = self.client.post(f"{self.url}/v2/{repo}/blobs/uploads/")
        if start.status_code != 202:
            raise PushRefusedError(f"blob upload start answered {start.status_code}")
        location = start.headers["location"]
        location = self.url + location if location.startswith("/") else location
        separator = "&" if "?" in location else "?"
        put = self.client.put(f"{location}{separator}digest={digest}", content=data)
        if put.status_code != 201:
            raise PushRefusedError(f"blob upload answered {put.status_code}")

    def put_manifest(self, repo: str, tag: str, body: bytes, media_type: str) -> int:
        return self.client.put(
            f"{self.url}/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type}
        ).status_code

    def push(self, repo: str, tag: str, documents: ImageDocuments) -> PushOutcome:
        try:
            for blob in (documents.config, *documents.layers):
                self.upload(repo, blob)
            status = self.put_manifest(repo, tag, documents.manifest, documents.media_type)
        except (PushRefusedError, httpx.TransportError) as exc:
            return PushOutcome(tag, False, f"refused: {exc}")
        if status != 201:
            return PushOutcome(tag, False, f"refused: manifest PUT answered {status}")
        return PushOutcome(tag, True, "pushed")

    def blob_intact(self, repo: str, data: bytes) -> bool:
        """GET the whole blob: after a broken push the registry lists it but its data is gone."""
        try:
            response = self.client.get(f"{self.url}/v2/{repo}/blobs/{sha256(data)}", follow_redirects=True)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.content == data


class PushRefusedError(Exception):
    pass


def main(argv: list[str]) -> int:
    command, url, repo, tag, manifest, result = argv
    assert command == "put-manifest"
    client = PushClient(url)
    try:
        status = str(client.put_manifest(repo, tag, Path(manifest).read_bytes(), OCI_MANIFEST))
    except httpx.TransportError as exc:
        status = f"error: {type(exc).__name__}"
    finally:
        client.close()
    Path(result).write_text(status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
