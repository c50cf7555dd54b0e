"""One registry's HTTP session: authentication, bounded retries and counters.

Every request of the API client goes through :meth:`Session.send`. Only
idempotent requests are sent here (GET, HEAD, DELETE by digest or tag, PUT by
content), so any of them may be retried: transient transport failures and
429/5xx answers, with full-jitter backoff, at most ``RetryPolicy.attempts``
times and never after ``max_elapsed``. A 401 is answered once per request
with the challenge's scheme (basic, or a bearer token cached per scope).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import urlsplit

from pipeline_step import __version__
from pipeline_step.errors import AuthenticationError, RegistryUnreachableError
from pipeline_step.registry.auth import BearerTokens, Credentials, parse_challenges
from pipeline_step.registry.http.errors import RETRY_STATUSES, Endpoint, is_permanent, transport_failure
from pipeline_step.registry.http.transport import Response, TimedOutError, TLSSettings, Transport, TransportError

log = logging.getLogger(__name__)

SecretSink = Callable[[str], None]
SLOW_RETRY_NOTICE = 5.0  # seconds a request may fail for before its retry is announced as a warning


def _ignore_secret(value: str) -> None:
    return None


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
class SessionStats:
    """Counters the benchmark and reports read. Updated under a lock."""

    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, retry: bool = False) -> None:
        with self._lock:
            self.requests += 1
            if retry:
                self.retries += 1


def _retry_after(response: Response) -> float | None:
    value = response.header("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


class Session:
    """Shared safely between threads. ``on_secret`` receives every credential it derives
    (the Basic header, issued tokens) so the caller can mask them; the session keeps no
    global state of its own."""

    def __init__(
        self,
        url: str,
        transport: Transport,
        *,
        credentials: Credentials | None = None,
        tls: TLSSettings | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_secret: SecretSink | None = None,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.tls = tls or TLSSettings()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.stats = SessionStats()
        self.transport = transport
        self._sleep = sleep
        self._on_secret = on_secret or _ignore_secret
        self._retry_shown = False
        self._scheme: str | None = None  # "basic" or "bearer" once a challenge was seen
        self._bearer: BearerTokens | None = None
        self._auth_lock = threading.Lock()
        self._base_headers = {"User-Agent": f"registry-prune/{__version__}"}
        self.host = urlsplit(url).netloc
        self.endpoint = Endpoint(url, self.host, self.tls, timeout, self.retry.attempts)

    @property
    def auth_scheme(self) -> str | None:
        return self._scheme

    def close(self) -> None:
        self.transport.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
        max_body: int | None = None,
    ) -> Response:
        """Send with auth and bounded retries; ``response.attempts`` says how many tries it took."""
        url = self.url + path
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
                response = self.transport.request(
                    method, url, request_headers, content, follow_redirects=follow_redirects, max_body=max_body
                )
            except TransportError as exc:
                if exc.retryable and self._may_retry(attempt, started):
                    self._wait(
                        attempt, None, f"{method} {path} failed ({exc})", started, hung=isinstance(exc, TimedOutError)
                    )
                    attempt += 1
                    continue
                raise transport_failure(exc, self.endpoint, attempt + 1) from None
            if response.status == 401 and auth_rounds < 2:
                auth_rounds += 1
                self._answer_challenge(response, scope, sent_auth)
                continue
            retryable = response.status in RETRY_STATUSES and not is_permanent(response)
            if retryable and self._may_retry(attempt, started):
                self._wait(attempt, _retry_after(response), f"{method} {path} answered {response.status}", started)
                attempt += 1
                continue
            response.attempts = attempt + 1
            return response

    def _wait(self, attempt: int, retry_after: float | None, what: str, started: float, *, hung: bool = False) -> None:
        delay = self.retry.delay(attempt, retry_after)
        line = f"{what}; retrying in {delay:.1f}s (attempt {attempt + 2} of {self.retry.attempts})"
        # A registry that hangs (a timed-out request) or a slow failure is shown at the default level,
        # once per session: the operator must not stare at a silent tool for timeout x attempts.
        # Quick retries (a refused connection, a 503) stay at INFO.
        if not self._retry_shown and (hung or time.monotonic() - started >= SLOW_RETRY_NOTICE):
            self._retry_shown = True
            log.warning("%s", line)
        else:
            log.info("%s", line)
        self._sleep(delay)

    def _may_retry(self, attempt: int, started: float) -> bool:
        return attempt + 1 < self.retry.attempts and time.monotonic() - started < self.retry.max_elapsed

    # -- authentication ------------------------------------------------------------

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
                        bearer.params["realm"],
                        bearer.params.get("service"),
                        self.credentials,
                        self._fetch_token,
                        on_secret=self._on_secret,
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
            self._on_secret(self.credentials.basic_token())
            with self._auth_lock:
                self._scheme = "basic"
            return
        raise AuthenticationError(
            f"the registry at {self.host} answered 401 without a usable WWW-Authenticate challenge",
            hint="check that --registry points at the registry and not at a proxy login page",
        )

    def _fetch_token(self, url: str, headers: dict[str, str]) -> Response:
        try:
            return self.transport.request("GET", url, {**self._base_headers, **headers})
        except TransportError as exc:
            host = urlsplit(url).netloc
            raise RegistryUnreachableError(
                f"cannot reach the registry's token service at {host}: {exc}",
                hint="check that the auth.token.realm URL is reachable from this agent",
            ) from None
