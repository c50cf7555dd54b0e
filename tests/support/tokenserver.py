"""A small token service for distribution's ``auth.token`` (tests only).

It checks basic credentials, grants the requested actions the user is allowed,
and signs RS256 JWTs whose x5c header carries the self-signed certificate the
registry trusts through ``auth.token.rootcertbundle``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.support.certs import KeyPair, self_signed
from tests.support.localhttp import LocalServer, send_json

SERVICE = "registry-prune-tests"
ISSUER = "registry-prune-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenRequest:
    user: str | None
    scopes: list[str]
    service: str | None


@dataclass
class TokenServer(LocalServer):
    workdir: Path
    users: dict[str, str]
    grants: dict[str, set[str]]  # user -> allowed actions ("pull", "push", "delete", "*")
    lifetime: int = 300
    expire_first_per_scope: bool = False  # the first token for each scope is already expired
    _expired_scopes: set[tuple[str, ...]] = field(default_factory=set)
    requests: list[TokenRequest] = field(default_factory=list)
    keys: KeyPair | None = None

    def start(self) -> Self:
        self.keys = self_signed(self.workdir, "token-signer", common_name="token-signer")
        return super().start()

    @property
    def realm(self) -> str:
        return self.url + "/token"

    def registry_auth(self) -> dict[str, Any]:
        assert self.keys is not None
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.keys.cert_path),
            }
        }

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        user = None
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                self.requests.append(TokenRequest(name, query.get("scope", []), None))
                send_json(handler, 401, {"details": "invalid credentials"})
                return
            user = name
        scopes = query.get("scope", [])
        self.requests.append(TokenRequest(user, scopes, (query.get("service") or [None])[0]))
        allowed = self.grants.get(user or "", set())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in allowed or "*" in allowed]
            access.append({"type": kind, "name": name, "actions": granted})
        expired = self.expire_first_per_scope and tuple(scopes) not in self._expired_scopes
        self._expired_scopes.add(tuple(scopes))
        # Past distribution's 60 s leeway, so the registry refuses it with error="invalid_token".
        token = self.sign(user or "", access, lifetime=-120 if expired else None)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        answer = {"token": token, "access_token": token, "expires_in": self.lifetime, "issued_at": issued}
        send_json(handler, 200, answer)

    def sign(self, subject: str, access: list[dict[str, Any]], *, lifetime: int | None = None) -> str:
        assert self.keys is not None
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.keys.cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + (lifetime or self.lifetime),
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.keys.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"
