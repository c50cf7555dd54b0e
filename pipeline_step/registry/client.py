"""A typed client for the Docker Registry HTTP API v2.

Everything destructive is by digest, every manifest request sends all four
manifest media types, every manifest body is verified against its digest, and
only idempotent requests are retried.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterator, Mapping, NoReturn
from urllib.parse import quote, urljoin, urlsplit

from pipeline_step import __version__
from pipeline_step.errors import (
    AuthenticationError,
    DeleteDisabledError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    RegistryProtocolError,
    RegistryServerError,
    RegistryUnreachableError,
    RepositoryNotFoundError,
    TLSVerificationError,
    UsageError,
)
from pipeline_step.redact import redact
from pipeline_step.registry import mediatypes
from pipeline_step.registry.auth import BearerTokens, Credentials, parse_challenges
from pipeline_step.registry.digest import compute_digest, is_digest, short
from pipeline_step.registry.digest import matches as digest_matches
from pipeline_step.registry.model import Manifest, ManifestHead, parse_manifest
from pipeline_step.registry.transport import (
    BrokenResponseError,
    ConnectFailedError,
    HttpxTransport,
    Response,
    TimedOutError,
    TLSFailedError,
    TLSSettings,
    Transport,
    TransportError,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CATALOG_PAGE_MAX = 1000  # distribution refuses n > 1000 on _catalog
_REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# OpenSSL's words for "the peer answered, but not with TLS" (an https:// URL on a plain-HTTP port).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "WRONG VERSION NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")

DELETE_ENABLE_HINT = (
    "enable deletes in the registry's config.yml with `storage: {delete: {enabled: true}}` "
    "(or the environment variable REGISTRY_STORAGE_DELETE_ENABLED=true), then restart the registry"
)
READONLY_HINT = (
    "the registry is in read-only maintenance mode (storage.maintenance.readonly.enabled: true); "
    "run API deletes before switching it to read-only, or switch read-only off and restart it"
)


class DeleteResult(Enum):
    DELETED = "deleted"
    ALREADY_GONE = "already-gone"  # 404 on a retry: our earlier attempt got through


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff."""

    attempts: int = 4  # total tries, the first included
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_elapsed: float = 60.0  # no retry starts after this many seconds

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))  # noqa: S311 - jitter


@dataclass
class ClientStats:
    """Counters the benchmark and reports read. Updated under a lock."""

    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, retry: bool = False) -> None:
        with self._lock:
            self.requests += 1
            if retry:
                self.retries += 1


@dataclass(frozen=True, slots=True)
class PingResult:
    api_version: str | None
    auth_scheme: str | None  # None when anonymous access works


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    manifest: Manifest
    raw: bytes


def validate_registry_url(url: str) -> str:
    """Return ``url`` without a trailing slash, or raise a :class:`UsageError` naming the fix."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"registry URL {url!r} has no http:// or https:// scheme",
            hint=f"write it as https://{url.rsplit('://', maxsplit=1)[-1].rstrip('/')} "
            "(or http:// for a plain-HTTP registry)",
        )
    if parts.username or parts.password:
        raise UsageError(
            "the registry URL contains credentials",
            hint="remove user:password@ from the URL and pass --username with REGISTRY_PASSWORD instead",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"registry URL {parts.scheme}://{parts.netloc}{parts.path} must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def validate_repository(name: str) -> str:
    if not _REPOSITORY_NAME.match(name) or len(name) > 255:
        raise UsageError(
            f"{name!r} is not a valid repository name",
            hint="use lower-case path components such as team/app",
        )
    return name


def _error_entries(response: Response) -> list[dict[str, object]]:
    if not response.body:
        return []
    try:
        document = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [entry for entry in errors if isinstance(entry, dict)]


def _describe_errors(entries: list[dict[str, object]]) -> tuple[str | None, str | None]:
    """(first error code, a short human text of code/message/detail)."""
    if not entries:
        return None, None
    first = entries[0]
    code = first.get("code")
    message = first.get("message")
    detail = first.get("detail")
    text = str(code or "")
    if message:
        text += f": {message}"
    if detail:
        detail_text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        text += f" ({detail_text[:300]})"
    return (str(code) if code else None), text


def _retry_after(response: Response) -> float | None:
    value = response.header("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


class RegistryClient:
    """One registry, one set of credentials, shared safely between threads."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        tls: TLSSettings | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = validate_registry_url(url)
        self.credentials = credentials
        self.tls = tls or TLSSettings()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._transport = transport or HttpxTransport(self.tls, timeout, max_connections)
        self._sleep = sleep
        self._scheme: str | None = None  # "basic" or "bearer" once a challenge was seen
        self._bearer: BearerTokens | None = None
        self._auth_lock = threading.Lock()
        self._base_headers = {"User-Agent": f"registry-prune/{__version__}"}

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    # -- API ---------------------------------------------------------------

    def ping(self) -> PingResult:
        """GET /v2/: checks that this is a v2 registry and that we may use it."""
        response = self._send("GET", "/v2/", scope="")
        if response.status == 400 and b"HTTP request to an HTTPS server" in response.body:
            raise RegistryProtocolError(
                f"the registry at {self.host} speaks HTTPS, not plain HTTP",
                hint=f"use --registry https://{self.url.split('://', 1)[1]}",
            )
        if response.status != 200:
            self._raise(response, "check the registry API at /v2/")
        api_version = response.header("docker-distribution-api-version")
        return PingResult(api_version, self._scheme)

    def catalog(self, page_size: int = CATALOG_PAGE_MAX) -> Iterator[str]:
        """Every repository name, following ``Link: rel="next"`` pagination."""
        page_size = max(1, min(page_size, CATALOG_PAGE_MAX))
        path: str | None = f"/v2/_catalog?n={page_size}"
        while path is not None:
            response = self._send("GET", path, scope="registry:catalog:*")
            if response.status != 200:
                self._raise(response, "list the catalog")
            document = self._json(response, "the catalog")
            repositories = document.get("repositories")
            if repositories is None:
                repositories = []
            if not isinstance(repositories, list) or not all(isinstance(r, str) for r in repositories):
                raise RegistryProtocolError("the catalog's 'repositories' is not a list of names")
            yield from repositories
            path = self._next_page(response)

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``; ``"tags": null`` means none."""
        name = quote(repository, safe="/")
        path: str | None = f"/v2/{name}/tags/list"
        found: list[str] = []
        while path is not None:
            response = self._send("GET", path, scope=f"repository:{repository}:pull")
            if response.status != 200:
                self._raise(response, f"list the tags of {repository}", repository=repository)
            document = self._json(response, f"the tag list of {repository}")
            tags = document.get("tags")
            if tags is None:
                tags = []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RegistryProtocolError(f"the tag list of {repository} is not a list of names")
            found.extend(tags)
            path = self._next_page(response)
        return found

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """HEAD a manifest by tag or digest; None when it does not exist."""
        response = self._send(
            "HEAD",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        if response.status == 404:
            return None
        if response.status != 200:
            self._raise(response, f"resolve {repository}:{reference}", repository=repository)
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
        response = self._send(
            "GET",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        if response.status == 404:
            raise NotFoundError(f"manifest {repository}:{reference} does not exist")
        if response.status != 200:
            self._raise(response, f"fetch {repository}:{reference}", repository=repository)
        body = response.body
        announced = response.header("docker-content-digest")
        if is_digest(reference):
            expected = reference
            if announced and announced != reference:
                raise DigestMismatchError(
                    f"GET {repository}@{reference} announced digest {announced}",
                    hint="the registry or a proxy in between is corrupting responses; nothing was deleted",
                )
        elif announced:
            if not is_digest(announced):
                raise RegistryProtocolError(f"GET {repository}:{reference} announced an invalid digest {announced!r}")
            expected = announced
        else:
            expected = compute_digest(body)
        if not digest_matches(body, expected):
            raise DigestMismatchError(
                f"the manifest of {repository}:{reference} does not hash to {expected}",
                hint="the body was truncated or altered in transit; rerun, and check any proxy in between",
            )
        manifest = parse_manifest(body, expected, response.header("content-type"))
        return FetchedManifest(manifest, body)

    def get_blob(self, repository: str, digest: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        """GET a (small) blob such as an image config, verified against its digest."""
        response = self._send(
            "GET",
            f"/v2/{quote(repository, safe='/')}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            follow_redirects=True,
        )
        if response.status == 404:
            raise NotFoundError(f"blob {digest} does not exist in {repository}")
        if response.status != 200:
            self._raise(response, f"fetch blob {digest}", repository=repository)
        if len(response.body) > limit:
            raise RegistryProtocolError(f"blob {digest} is larger than {limit} bytes")
        if not digest_matches(response.body, digest):
            raise DigestMismatchError(f"blob {digest} of {repository} does not hash to its digest")
        return response.body

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._send(
            "HEAD",
            f"/v2/{quote(repository, safe='/')}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            follow_redirects=True,
        )
        if response.status == 404:
            return False
        if response.status != 200:
            self._raise(response, f"check blob {digest}", repository=repository)
        return True

    def blob_readable(self, repository: str, digest: str) -> bool:
        """Read the first byte of a blob. Unlike HEAD, this touches the stored data,
        so a blob answered from a stale cache after GC shows up as missing."""
        try:
            response = self._send(
                "GET",
                f"/v2/{quote(repository, safe='/')}/blobs/{digest}",
                scope=f"repository:{repository}:pull",
                headers={"Range": "bytes=0-0"},
                follow_redirects=True,
            )
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
        self._raise(response, f"read blob {digest}", repository=repository)

    def delete_manifest(self, repository: str, digest: str) -> DeleteResult:
        """DELETE a manifest by digest. Never by tag: that is refused before sending."""
        if not is_digest(digest):
            raise UsageError(
                f"refusing to DELETE {repository}:{digest}: only digests can be deleted",
                hint="resolve the tag to its digest first",
            )
        path = self._manifest_path(repository, digest)
        response, retried = self._send_counting("DELETE", path, scope=f"repository:{repository}:delete")
        if response.status == 202:
            return DeleteResult.DELETED
        if response.status == 404 and retried:
            return DeleteResult.ALREADY_GONE
        if response.status == 404:
            raise NotFoundError(f"manifest {repository}@{digest} does not exist")
        self._raise(response, f"delete {repository}@{digest}", repository=repository, deleting=True)

    def check_delete_enabled(self, repository: str) -> None:
        """DELETE a digest that cannot exist: 404 proves deletes are allowed, 405 that they are not.

        This changes nothing on the registry and stops a run before its first real DELETE.
        """
        try:
            self.delete_manifest(repository, "sha256:" + "0" * 64)
        except NotFoundError:
            return

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (used by ``restore``); returns the digest the registry stored."""
        response = self._send(
            "PUT",
            self._manifest_path(repository, reference),
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
            content=body,
        )
        if response.status not in (200, 201):
            self._raise(response, f"put manifest {repository}:{reference}", repository=repository)
        digest = response.header("docker-content-digest") or compute_digest(body)
        if digest != compute_digest(body):
            raise DigestMismatchError(f"the registry stored {repository}:{reference} under {digest}")
        return digest

    # -- plumbing ----------------------------------------------------------

    @staticmethod
    def _manifest_path(repository: str, reference: str) -> str:
        return f"/v2/{quote(repository, safe='/')}/manifests/{quote(reference, safe=':')}"

    def _next_page(self, response: Response) -> str | None:
        link = response.header("link")
        if not link:
            return None
        match = _LINK_NEXT.search(link)
        if not match:
            return None
        target = urljoin(self.url + "/", match.group(1))
        parts = urlsplit(target)
        if f"{parts.scheme}://{parts.netloc}" != f"{urlsplit(self.url).scheme}://{self.host}":
            raise RegistryProtocolError(f"the registry's next-page link points to another host: {parts.netloc}")
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    @staticmethod
    def _json(response: Response, what: str) -> dict[str, object]:
        try:
            document = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise RegistryProtocolError(
                f"{what} is not valid JSON (HTTP {response.status}, {len(response.body)} bytes)",
                hint="check that the URL points at the registry itself and not at a proxy's error page",
            ) from None
        if not isinstance(document, dict):
            raise RegistryProtocolError(f"{what} is not a JSON object")
        return document

    def _send(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> Response:
        return self._send_counting(
            method, path, scope=scope, headers=headers, content=content, follow_redirects=follow_redirects
        )[0]

    def _send_counting(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> tuple[Response, bool]:
        """Send with auth and bounded retries. Returns the response and whether it was a retry."""
        url = self.url + path
        # All our requests are idempotent (GET, HEAD, DELETE by digest, PUT by
        # content); blob upload POSTs, which are not, never go through here.
        attempt = 0
        auth_rounds = 0
        started = time.monotonic()
        while True:
            request_headers = dict(self._base_headers)
            if headers:
                request_headers.update(headers)
            sent_auth = self._authorize(request_headers, scope)
            self.stats.count(retry=attempt > 0)
            try:
                response = self._transport.request(
                    method, url, request_headers, content, follow_redirects=follow_redirects
                )
            except TransportError as exc:
                if exc.retryable and self._may_retry(attempt, started):
                    delay = self.retry.delay(attempt, None)
                    log.info("%s %s failed (%s); retrying in %.1fs", method, path, exc, delay)
                    attempt += 1
                    self._sleep(delay)
                    continue
                raise self._transport_failure(exc, attempt + 1) from None
            if response.status == 401 and auth_rounds < 2:
                auth_rounds += 1
                self._answer_challenge(response, scope, sent_auth)
                continue
            if response.status in RETRY_STATUSES and self._may_retry(attempt, started):
                delay = self.retry.delay(attempt, _retry_after(response))
                log.info("%s %s answered %d; retrying in %.1fs", method, path, response.status, delay)
                attempt += 1
                self._sleep(delay)
                continue
            return response, attempt > 0

    def _may_retry(self, attempt: int, started: float) -> bool:
        return attempt + 1 < self.retry.attempts and time.monotonic() - started < self.retry.max_elapsed

    def _authorize(self, headers: dict[str, str], scope: str) -> str | None:
        """Add the Authorization header we already know to send; returns its scheme."""
        if self._scheme == "basic" and self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
            return "basic"
        if self._scheme == "bearer" and self._bearer is not None:
            token = self._bearer.cached(scope)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
                return "bearer"
        return None

    def _answer_challenge(self, response: Response, scope: str, sent_auth: str | None) -> None:
        challenges = parse_challenges(response.header("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and "realm" in bearer.params:
            with self._auth_lock:
                if self._bearer is None or self._bearer.realm != bearer.params["realm"]:
                    self._bearer = BearerTokens(
                        bearer.params["realm"], bearer.params.get("service"), self.credentials, self._fetch_token
                    )
                self._scheme = "bearer"
            if sent_auth == "bearer":
                if bearer.params.get("error") == "insufficient_scope":
                    raise AuthenticationError(
                        f"the registry refused a token for {bearer.params.get('scope') or scope or 'this request'}",
                        hint="the account lacks that permission; grant it in the token service",
                    )
                self._bearer.invalidate(scope)
            # Fetch for the scope the registry asked for, cached under our own key
            # so later requests send it without a 401 round trip first.
            self._bearer.token(bearer.params.get("scope") or scope, cache_as=scope)
            return
        if basic is not None:
            if self.credentials is None:
                raise AuthenticationError(
                    f"the registry at {self.host} requires a login",
                    hint="pass --username USER and put the password in REGISTRY_PASSWORD "
                    "(or --password-env VAR, --password-stdin)",
                )
            if sent_auth == "basic":
                raise AuthenticationError(
                    f"the registry at {self.host} rejected the password of user {self.credentials.username!r}",
                    hint="check the username and the password variable (REGISTRY_PASSWORD by default)",
                )
            with self._auth_lock:
                self._scheme = "basic"
            return
        raise AuthenticationError(
            f"the registry at {self.host} answered 401 without a usable WWW-Authenticate challenge",
            hint="check that --registry points at the registry and not at a proxy login page",
        )

    def _fetch_token(self, url: str, headers: dict[str, str]) -> Response:
        try:
            return self._transport.request("GET", url, {**self._base_headers, **headers})
        except TransportError as exc:
            host = urlsplit(url).netloc
            raise RegistryUnreachableError(
                f"cannot reach the registry's token service at {host}: {exc}",
                hint="check that the auth.token.realm URL is reachable from this agent",
            ) from None

    def _transport_failure(self, exc: TransportError, attempts: int) -> RegistryError:
        tries = f", {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, TLSFailedError):
            if any(sign in str(exc).upper() for sign in _NOT_TLS):
                return TLSVerificationError(
                    f"the registry at {self.host} does not speak TLS",
                    hint=f"use --registry http://{self.url.split('://', 1)[1]} for a plain-HTTP registry",
                )
            bundle = self.tls.ca_bundle
            return TLSVerificationError(
                f"cannot verify the TLS certificate of {self.url}"
                + (f" with the CA bundle {bundle}" if bundle else ""),
                hint=(
                    f"{bundle} does not hold the CA that signed the registry's certificate; pass the right one"
                    if bundle
                    else "pass --ca-bundle FILE with the CA that signed the registry's certificate"
                )
                + " (or --insecure to skip verification, which is not recommended)",
            )
        if isinstance(exc, TimedOutError):
            return RegistryUnreachableError(
                f"the registry at {self.url} did not answer within {self.timeout:g}s{tries}",
                hint="check the registry's load and health, or raise --timeout",
            )
        if isinstance(exc, ConnectFailedError):
            return RegistryUnreachableError(
                f"cannot connect to the registry at {self.url} ({exc}{tries})",
                hint="check --registry and that the registry runs and is reachable from this agent",
            )
        if isinstance(exc, BrokenResponseError):
            return RegistryProtocolError(
                f"the connection to {self.url} broke mid-response ({exc}{tries})",
                hint="rerun; if it persists, check the registry's logs and any proxy in between",
            )
        return RegistryError(f"request to {self.url} failed: {exc}")

    def _raise(
        self, response: Response, action: str, *, repository: str | None = None, deleting: bool = False
    ) -> NoReturn:
        code, text = _describe_errors(_error_entries(response))
        if text:
            # The registry's (or a proxy's) words may quote our request, Authorization header included.
            text = redact(text)
        status = response.status
        where = f"cannot {action}: HTTP {status}" + (f" {text}" if text else "")
        if deleting and status == 405:
            if code == "UNSUPPORTED":
                raise DeleteDisabledError(
                    f"the registry at {self.host} refuses deletes (405 UNSUPPORTED): storage.delete.enabled is false",
                    hint=DELETE_ENABLE_HINT,
                )
            raise DeleteDisabledError(f"the registry at {self.host} refuses DELETE (405)", hint=READONLY_HINT)
        if deleting and status == 400 and code == "DIGEST_INVALID":
            raise RegistryProtocolError(
                f"{where}: a tag was sent where a digest belongs",
                hint="this is a bug in registry-prune; please report it",
            )
        if status == 401:
            raise AuthenticationError(where, hint="check the credentials")
        if status == 403:
            raise AuthenticationError(
                where, hint="the account lacks permission for this; grant it or use another account"
            )
        if status == 404 and code == "NAME_UNKNOWN" and repository is not None:
            raise RepositoryNotFoundError(
                f"repository {repository!r} does not exist on {self.host}",
                hint="check the --repo value; `curl URL/v2/_catalog` lists the repositories",
            )
        if status in RETRY_STATUSES or status >= 500:
            raise RegistryServerError(
                f"{where} (after {self.retry.attempts} attempts)" if status in RETRY_STATUSES else where,
                status=status,
                code=code,
                detail=text,
                hint="check the registry's logs and disk space",
            )
        raise RegistryProtocolError(where)
