"""Registry authentication: credentials, challenges, and the bearer token flow.

The flow is the one in the distribution token spec: the registry answers 401
with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; we ask the
realm for a token for that scope (with basic credentials when we have them),
cache it per scope, and refresh it when it expires or is refused.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode, urlsplit

from pipeline_step.errors import AuthenticationError, RegistryProtocolError
from pipeline_step.registry.http.transport import Response

_PARAM = re.compile(r'\s*([a-zA-Z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_EXPIRY_MARGIN = 0.9  # refresh a token once 90% of its life has passed
_DEFAULT_TOKEN_LIFETIME = 60  # seconds, per the token spec when expires_in is absent


@dataclass(frozen=True)
class Credentials:
    """A registry login. Constructing one has no side effects: whoever reads the password
    (the CLI) registers it for redaction, and the session reports the Basic token it derives."""

    username: str
    password: str = field(repr=False)

    def basic_token(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def basic_header(self) -> str:
        return f"Basic {self.basic_token()}"


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower-case: "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges."""
    if not header:
        return []
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme_match = re.match(r"([A-Za-z][\w-]*)\s*", rest)
        if not scheme_match:
            break
        scheme = scheme_match.group(1).lower()
        rest = rest[scheme_match.end() :]
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(rest)
            if not param:
                break
            # A bare word followed by a space is the next challenge's scheme.
            if param.group(2) is None and not param.group(3):
                break
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[param.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


TokenFetcher = Callable[[str, dict[str, str]], Response]


class BearerTokens:
    """Tokens from one realm, cached per scope and refreshed before they expire."""

    def __init__(
        self,
        realm: str,
        service: str | None,
        credentials: Credentials | None,
        fetch: TokenFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_secret: Callable[[str], None] = lambda value: None,
    ) -> None:
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryProtocolError(f"the registry's token realm {realm!r} is not an http(s) URL")
        self.realm = realm
        self.service = service
        self._credentials = credentials
        self._fetch = fetch
        self._clock = clock
        self._on_secret = on_secret
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}

    def cached(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is None or token.expires_at <= self._clock():
            return None
        return token.value

    def invalidate(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)

    def token(self, scope: str, *, cache_as: str | None = None) -> str:
        """A valid token for ``scope``, fetched at most once at a time per cache key.

        ``cache_as`` stores it under the caller's own scope key when the
        registry's challenge named the scope differently.
        """
        key = scope if cache_as is None else cache_as
        value = self.cached(key)
        if value is not None:
            return value
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            value = self.cached(key)
            if value is not None:
                return value
            token = self._request(scope)
            with self._lock:
                self._tokens[key] = token
            return token.value

    def _request(self, scope: str) -> _Token:
        query: dict[str, str] = {}
        if self.service:
            query["service"] = self.service
        if scope:
            query["scope"] = scope
        headers = {"Accept": "application/json"}
        if self._credentials is not None:
            self._on_secret(self._credentials.basic_token())
            headers["Authorization"] = self._credentials.basic_header()
            query["account"] = self._credentials.username
        url = f"{self.realm}{'&' if '?' in self.realm else '?'}{urlencode(query)}" if query else self.realm
        started = self._clock()
        response = self._fetch(url, headers)
        host = urlsplit(self.realm).netloc
        if response.status in (401, 403):
            who = f"user {self._credentials.username!r}" if self._credentials else "anonymous access"
            raise AuthenticationError(
                f"the token service at {host} refused {who} (HTTP {response.status})",
                hint="check the username and the password variable (REGISTRY_PASSWORD by default)",
            )
        if response.status != 200:
            raise AuthenticationError(
                f"the token service at {host} answered HTTP {response.status}",
                hint="check that the registry's auth.token.realm is reachable from this machine",
            )
        try:
            document = json.loads(response.body)
        except ValueError:
            raise RegistryProtocolError(f"the token service at {host} did not answer JSON") from None
        value = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryProtocolError(f"the token service at {host} answered without a token")
        self._on_secret(value)
        lifetime = document.get("expires_in", _DEFAULT_TOKEN_LIFETIME)
        if not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        return _Token(value, started + float(lifetime) * _EXPIRY_MARGIN)
