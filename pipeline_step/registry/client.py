"""The Docker Registry HTTP API v2 (and the OCI distribution API), as typed verbs.

Every manifest request sends all four manifest media types, every manifest
body is verified against its digest, and deletes are by digest unless the
caller asks for a tag-only DELETE explicitly. Retries, authentication and the
meaning of error answers live in :mod:`pipeline_step.registry.http`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Iterator, NoReturn
from urllib.parse import quote, urljoin, urlsplit

from pipeline_step.errors import (
    AnswerTooLargeError,
    DigestMismatchError,
    NotFoundError,
    RegistryProtocolError,
    Schema1ManifestError,
    TagDeleteUnsupportedError,
    UsageError,
)
from pipeline_step.registry import mediatypes
from pipeline_step.registry.digest import compute_digest, is_digest, short
from pipeline_step.registry.digest import matches as digest_matches
from pipeline_step.registry.http.errors import error_code, raise_for_status
from pipeline_step.registry.http.session import Session, SessionStats
from pipeline_step.registry.http.transport import Response
from pipeline_step.registry.model import DeleteResult, Manifest, ManifestHead, RegistryLine, parse_manifest
from pipeline_step.registry.reference import validate_registry_url

log = logging.getLogger(__name__)

CATALOG_PAGE_MAX = 1000  # distribution refuses n > 1000 on _catalog
TAGS_PAGE = 1000  # 3.x pages tags/list (3.1.0 refuses n above tags.maxtags, default 1000); 2.8 ignores n
MANIFEST_LIMIT = 4 * 1024 * 1024  # distribution refuses larger manifests; a larger answer is not read
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_PROBE_DIGEST = "sha256:" + "0" * 64  # a digest no manifest can have


@dataclass(frozen=True, slots=True)
class PingResult:
    api_version: str | None
    auth_scheme: str | None  # None when anonymous access works


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    manifest: Manifest
    raw: bytes


class RegistryClient:
    """One registry through one :class:`Session`, shared safely between threads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.url = validate_registry_url(session.url)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return self.session.host

    @property
    def stats(self) -> SessionStats:
        return self.session.stats

    # -- API ---------------------------------------------------------------

    def ping(self) -> PingResult:
        """GET /v2/: checks that this is a v2 registry and that we may use it."""
        response = self.session.send("GET", "/v2/", scope="")
        if response.status == 400 and b"HTTP request to an HTTPS server" in response.body:
            raise RegistryProtocolError(
                f"the registry at {self.host} speaks HTTPS, not plain HTTP",
                hint=f"use --registry https://{self.url.split('://', 1)[1]}",
            )
        if response.status != 200:
            self._fail(response, "check the registry API at /v2/")
        return PingResult(response.header("docker-distribution-api-version"), self.session.auth_scheme)

    def catalog(self, page_size: int = CATALOG_PAGE_MAX) -> Iterator[str]:
        """Every repository name, following ``Link: rel="next"`` pagination."""
        page_size = max(1, min(page_size, CATALOG_PAGE_MAX))
        path: str | None = f"/v2/_catalog?n={page_size}"
        while path is not None:
            response = self.session.send("GET", path, scope="registry:catalog:*")
            if response.status != 200:
                self._fail(response, "list the catalog")
            yield from self._names(response, "repositories", "the catalog")
            path = self._next_page(response)

    def tags(self, repository: str, *, page: int = TAGS_PAGE) -> list[str]:
        """Every tag of ``repository``, ``page`` at a time, following ``Link: rel="next"``; ``"tags": null``
        means none. A registry that refuses the page size (3.1.0 above its tags.maxtags) gets a smaller one."""
        base = f"/v2/{quote(repository, safe='/')}/tags/list"
        path: str | None = f"{base}?n={page}"
        found: list[str] = []
        while path is not None:
            response = self.session.send("GET", path, scope=f"repository:{repository}:pull")
            if response.status == 400 and error_code(response) == "PAGINATION_NUMBER_INVALID" and page > 1:
                page //= 2
                last = f"&last={quote(found[-1], safe='')}" if found else ""
                path = f"{base}?n={page}{last}"
                continue
            if response.status != 200:
                self._fail(response, f"list the tags of {repository}", repository=repository)
            found.extend(self._names(response, "tags", f"the tag list of {repository}"))
            path = self._next_page(response)
        return found

    def line(self, repository: str) -> RegistryLine:
        """2.8 or 3.x, from one harmless answer: 3.x validates the page size of a tag list (an invalid
        one is 400 PAGINATION_NUMBER_INVALID), 2.8 ignores it."""
        response = self.session.send(
            "GET",
            f"/v2/{quote(repository, safe='/')}/tags/list?n=registry-prune",
            scope=f"repository:{repository}:pull",
        )
        code = error_code(response)
        if response.status == 400 and code == "PAGINATION_NUMBER_INVALID":
            return RegistryLine("3.x", "it validates the tag list's page size")
        if response.status == 200 or (response.status == 404 and code == "NAME_UNKNOWN"):
            return RegistryLine("2.8", "it ignores the tag list's page size")
        return RegistryLine("unknown", f"the page-size probe answered HTTP {response.status} {code or ''}".strip())

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """HEAD a manifest by tag or digest; None when it does not exist."""
        response = self.session.send(
            "HEAD",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        if response.status == 404:
            return None
        if response.status != 200:
            self._fail(response, f"resolve {repository}:{reference}", repository=repository)
        digest = response.header("docker-content-digest")
        if not digest or not is_digest(digest):
            raise RegistryProtocolError(
                f"HEAD {repository}:{reference} answered without a valid Docker-Content-Digest header"
            )
        if is_digest(reference) and digest != reference:
            raise DigestMismatchError(f"HEAD {repository}@{reference} answered digest {digest}")
        media_type = (response.header("content-type") or "").split(";")[0].strip()
        size = int(response.header("content-length") or 0)
        return ManifestHead(digest, media_type, size)

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """GET a manifest by tag or digest and verify its bytes against its digest."""
        response = self.session.send(
            "GET",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
            max_body=MANIFEST_LIMIT,
        )
        if response.status == 404:
            raise NotFoundError(f"manifest {repository}:{reference} does not exist")
        if response.status != 200:
            self._fail(response, f"fetch {repository}:{reference}", repository=repository)
        body = response.body
        expected = self._expected_digest(response, repository, reference)
        if (response.header("content-type") or "").split(";")[0].strip() in mediatypes.SCHEMA1_TYPES:
            # A signed schema1 manifest's digest covers its payload without the signatures, so its bytes
            # cannot be checked here; it is only ever kept, and its digest protects whatever shares it.
            raise Schema1ManifestError(f"{repository}:{reference} is a schema1 manifest", digest=expected)
        if not digest_matches(body, expected):
            raise DigestMismatchError(
                f"the manifest of {repository}:{reference} does not hash to {expected}",
                hint="the body was truncated or altered in transit; rerun, and check any proxy in between",
            )
        return FetchedManifest(parse_manifest(body, expected, response.header("content-type")), body)

    def get_blob(self, repository: str, digest: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        """GET a (small) blob such as an image config, verified against its digest."""
        response = self._blob("GET", repository, digest, max_body=limit)
        if response.status == 404:
            raise NotFoundError(f"blob {digest} does not exist in {repository}")
        if response.status != 200:
            self._fail(response, f"fetch blob {digest}", repository=repository)
        if len(response.body) > limit:
            raise RegistryProtocolError(f"blob {digest} is larger than {limit} bytes")
        if not digest_matches(response.body, digest):
            raise DigestMismatchError(f"blob {digest} of {repository} does not hash to its digest")
        return response.body

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._blob("HEAD", repository, digest)
        if response.status == 404:
            return False
        if response.status != 200:
            self._fail(response, f"check blob {digest}", repository=repository)
        return True

    def blob_readable(self, repository: str, digest: str) -> bool:
        """Read the first byte of a blob. Unlike HEAD, this touches the stored data,
        so a blob answered from a stale cache after GC shows up as missing."""
        try:
            response = self._blob("GET", repository, digest, headers={"Range": "bytes=0-0"}, max_body=1 << 20)
        except AnswerTooLargeError:
            return True  # Range ignored: the whole blob is on its way, so its data is there
        except RegistryProtocolError as exc:
            # Headers, then a broken body, on every retry: the registry's cache lists a blob whose data is gone.
            log.info("blob %s of %s cannot be read: %s", short(digest), repository, exc)
            return False
        if response.status in (200, 206):
            return True
        if response.status == 416:  # an empty blob has no first byte
            return self.blob_exists(repository, digest)
        if response.status == 404:
            return False
        self._fail(response, f"read blob {digest}", repository=repository)

    def delete_manifest(self, repository: str, digest: str) -> DeleteResult:
        """DELETE a manifest by digest. Never by tag: that is refused before sending."""
        if not is_digest(digest):
            raise UsageError(
                f"refusing to DELETE {repository}:{digest}: only digests can be deleted",
                hint="resolve the tag to its digest first",
            )
        response = self.session.send(
            "DELETE", self._manifest_path(repository, digest), scope=f"repository:{repository}:delete"
        )
        if response.status == 202:
            return DeleteResult.DELETED
        if response.status == 404 and response.retried:
            return DeleteResult.ALREADY_GONE
        if response.status == 404:
            raise NotFoundError(f"manifest {repository}@{digest} does not exist")
        self._fail(response, f"delete {repository}@{digest}", repository=repository, deleting=True)

    def delete_tag(self, repository: str, tag: str) -> DeleteResult:
        """DELETE one tag, nothing else (distribution 3.x). 2.8 refuses it: 400 DIGEST_INVALID."""
        if is_digest(tag):
            raise UsageError(f"delete_tag got a digest ({tag}); use delete_manifest")
        response = self.session.send(
            "DELETE", self._manifest_path(repository, tag), scope=f"repository:{repository}:delete"
        )
        if response.status == 202:
            return DeleteResult.DELETED
        if response.status == 404:
            return DeleteResult.ALREADY_GONE  # removed by an earlier attempt, or by someone else
        if response.status == 400 and error_code(response) == "DIGEST_INVALID":
            raise TagDeleteUnsupportedError(
                f"the registry at {self.host} cannot delete a single tag (400 DIGEST_INVALID)",
                hint="this registry line deletes by digest only; registry-prune uses that there",
            )
        self._fail(response, f"delete tag {repository}:{tag}", repository=repository, deleting=True)

    def deletes_tags(self, repository: str) -> bool:
        """Whether a single tag can be deleted: a DELETE of a tag that cannot exist answers 404 (3.x)
        or 400 DIGEST_INVALID (2.8). It changes nothing either way."""
        try:
            self.delete_tag(repository, f"registry-prune-probe-{secrets.token_hex(8)}")
        except TagDeleteUnsupportedError:
            return False
        return True

    def check_delete_enabled(self, repository: str) -> None:
        """DELETE a digest that cannot exist: 404 proves deletes are allowed, 405 that they are not.

        This changes nothing on the registry and stops a run before its first real DELETE.
        """
        try:
            self.delete_manifest(repository, _PROBE_DIGEST)
        except NotFoundError:
            return

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (used by ``restore``); returns the digest the registry stored."""
        response = self.session.send(
            "PUT",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
            content=body,
        )
        if response.status not in (200, 201):
            self._fail(response, f"put manifest {repository}:{reference}", repository=repository)
        computed = compute_digest(body)
        digest = response.header("docker-content-digest") or computed
        if digest != computed:
            raise DigestMismatchError(f"the registry stored {repository}:{reference} under {digest}")
        return digest

    # -- plumbing ----------------------------------------------------------

    @staticmethod
    def _manifest_path(repository: str, reference: str) -> str:
        return f"/v2/{quote(repository, safe='/')}/manifests/{quote(reference, safe=':')}"

    def _blob(
        self,
        method: str,
        repository: str,
        digest: str,
        headers: dict[str, str] | None = None,
        max_body: int | None = None,
    ) -> Response:
        return self.session.send(
            method,
            f"/v2/{quote(repository, safe='/')}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            headers=headers,
            follow_redirects=True,
            max_body=max_body,
        )

    @staticmethod
    def _expected_digest(response: Response, repository: str, reference: str) -> str:
        """The digest a manifest body must hash to: the one asked for, else the one announced."""
        announced = response.header("docker-content-digest")
        if is_digest(reference):
            if announced and announced != reference:
                raise DigestMismatchError(
                    f"GET {repository}@{reference} announced digest {announced}",
                    hint="the registry or a proxy in between is corrupting responses; nothing was deleted",
                )
            return reference
        if announced:
            if not is_digest(announced):
                raise RegistryProtocolError(f"GET {repository}:{reference} announced an invalid digest {announced!r}")
            return announced
        return compute_digest(response.body)

    def _next_page(self, response: Response) -> str | None:
        link = response.header("link")
        match = _LINK_NEXT.search(link) if link else None
        if not match:
            return None
        target = urljoin(self.url + "/", match.group(1))
        parts = urlsplit(target)
        if f"{parts.scheme}://{parts.netloc}" != f"{urlsplit(self.url).scheme}://{self.host}":
            raise RegistryProtocolError(f"the registry's next-page link points to another host: {parts.netloc}")
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    @staticmethod
    def _names(response: Response, key: str, what: str) -> list[str]:
        """The list of names under ``key`` of a JSON answer; null means none."""
        try:
            document = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise RegistryProtocolError(
                f"{what} is not valid JSON (HTTP {response.status}, {len(response.body)} bytes)",
                hint="check that the URL points at the registry itself and not at a proxy's error page",
            ) from None
        if not isinstance(document, dict):
            raise RegistryProtocolError(f"{what} is not a JSON object")
        names = document.get(key)
        if names is None:
            return []
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise RegistryProtocolError(f"{what}'s '{key}' is not a list of names")
        return names

    def _fail(
        self, response: Response, action: str, *, repository: str | None = None, deleting: bool = False
    ) -> NoReturn:
        raise_for_status(response, action, self.session.endpoint, repository=repository, deleting=deleting)
