"""The lean HTTP/1.1 transport: framing, keep-alive, redirects, errors, TLS, and how it is chosen."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pipeline_step.errors import UsageError
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.http.choose import transport_kind
from pipeline_step.registry.http.lean import LeanTransport
from pipeline_step.registry.http.session import Session
from pipeline_step.registry.http.transport import (
    BrokenResponseError,
    ConnectFailedError,
    TimedOutError,
    TLSFailedError,
    TLSSettings,
)
from tests.support.apps import SeededApp
from tests.support.certs import self_signed
from tests.support.registry import RegistryServer, free_port


@dataclass
class Seen:
    connection: int
    line: str
    headers: dict[str, str]
    body: bytes


# handler(request, connection number, request number on it) -> (raw response, close afterwards)
Handler = Callable[[Seen, int], tuple[bytes, bool]]


def ok(body: bytes = b"hello", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@dataclass
class ScriptedServer:
    """A raw socket server: exact control over framing, closes and delays."""

    handler: Handler
    context: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._sock is not None
        self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            index = 0
            while True:
                line = reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0")))
                seen = Seen(number, line.decode().strip(), headers, body)
                self.seen.append(seen)
                raw, close = self.handler(seen, index)
                index += 1
                conn.sendall(raw)
                if close:
                    conn.close()
                    return
        except (OSError, ssl.SSLError):
            return


@pytest.fixture
def lean() -> Iterator[LeanTransport]:
    transport = LeanTransport(TLSSettings(), timeout=5, max_connections=4)
    yield transport
    transport.close()


def test_keep_alive_reuses_one_connection_and_frames_bodies(lean: LeanTransport) -> None:
    def handler(seen: Seen, index: int) -> tuple[bytes, bool]:
        if seen.line.startswith("HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nDocker-Content-Digest: sha256:x\r\n\r\n", False
        if "chunked" in seen.line:
            return (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX: y\r\n\r\n",
                False,
            )
        if seen.line.startswith("PUT"):
            return b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", False
        return ok(b"plain", "Set-Cookie: a\r\nSet-Cookie: b\r\n"), False

    with ScriptedServer(handler) as server:
        plain = lean.request("GET", f"{server.url}/v2/plain?n=1", {"Accept": "x"})
        head = lean.request("HEAD", f"{server.url}/v2/head", {})
        chunked = lean.request("GET", f"{server.url}/v2/chunked", {})
        put = lean.request("PUT", f"{server.url}/v2/put", {"Content-Type": "a/b"}, b'{"k": 1}')
    assert (plain.status, plain.body, plain.header("SET-COOKIE")) == (200, b"plain", "a, b")
    assert (head.status, head.body, head.header("docker-content-digest")) == (200, b"", "sha256:x")
    assert chunked.body == b"abcde"
    assert put.status == 201
    assert server.connections == 1
    assert server.seen[0].line == "GET /v2/plain?n=1 HTTP/1.1"
    assert server.seen[0].headers["host"] == f"127.0.0.1:{server.port}"
    assert server.seen[3].body == b'{"k": 1}' and server.seen[3].headers["content-length"] == "8"


def test_connection_close_and_a_stale_keep_alive_connection_are_handled(lean: LeanTransport) -> None:
    def handler(seen: Seen, index: int) -> tuple[bytes, bool]:
        if "explicit" in seen.line:
            return ok(b"bye", "Connection: close\r\n"), True
        return ok(b"once"), True  # keep-alive announced, then closed: the next request finds it stale

    with ScriptedServer(handler) as server:
        assert lean.request("GET", f"{server.url}/explicit", {}).body == b"bye"
        assert lean.request("GET", f"{server.url}/a", {}).body == b"once"
        time.sleep(0.05)  # let the server's close arrive
        assert lean.request("GET", f"{server.url}/b", {}).body == b"once"  # retried on a fresh connection
    assert server.connections == 3
    assert [s.line.split()[1] for s in server.seen] == ["/explicit", "/a", "/b"]


def test_redirects_are_followed_only_when_asked_and_drop_credentials_across_hosts(lean: LeanTransport) -> None:
    with ScriptedServer(lambda seen, index: (ok(b"blob-bytes"), False)) as storage:

        def registry(seen: Seen, index: int) -> tuple[bytes, bool]:
            if "local" in seen.line:
                return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v2/final\r\nContent-Length: 0\r\n\r\n", False
            if "final" in seen.line:
                return ok(b"same-host"), False
            location = f"http://localhost:{storage.port}/data?sig=1"
            return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 2\r\n\r\nno".encode(), False

        with ScriptedServer(registry) as server:
            auth = {"Authorization": "Bearer SECRET"}
            not_followed = lean.request("GET", f"{server.url}/v2/blobs/x", auth)
            followed = lean.request("GET", f"{server.url}/v2/blobs/x", auth, follow_redirects=True)
            local = lean.request("GET", f"{server.url}/v2/local", auth, follow_redirects=True)
    assert (not_followed.status, not_followed.body) == (302, b"no")
    assert (followed.status, followed.body) == (200, b"blob-bytes")
    assert followed.url.startswith(f"http://localhost:{storage.port}/data")
    assert "authorization" not in storage.seen[0].headers
    assert local.body == b"same-host"
    assert server.seen[-1].headers["authorization"] == "Bearer SECRET"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "cut off after 5 of 10"),
        (b"SPDY/9 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"", "closed the connection without answering"),
    ],
)
def test_broken_responses_raise_broken_response(lean: LeanTransport, raw: bytes, message: str) -> None:
    with ScriptedServer(lambda seen, index: (raw, True)) as server, pytest.raises(BrokenResponseError, match=message):
        lean.request("GET", f"{server.url}/x", {})


def test_timeouts_and_refused_connections_map_to_transport_errors() -> None:
    def slow(seen: Seen, index: int) -> tuple[bytes, bool]:
        time.sleep(1.0)
        return ok(), True

    transport = LeanTransport(TLSSettings(), timeout=0.2)
    with ScriptedServer(slow) as server, pytest.raises(TimedOutError):
        transport.request("GET", f"{server.url}/slow", {})
    with pytest.raises(ConnectFailedError):
        transport.request("GET", f"http://127.0.0.1:{free_port()}/", {})
    with pytest.raises(ValueError, match="line break"):
        transport.request("GET", f"http://127.0.0.1:{free_port()}/", {"X": "a\r\nInjected: 1"})
    transport.close()


def test_tls_verifies_against_the_ca_bundle_or_is_skipped_with_insecure(tmp_path: Path) -> None:
    keys = self_signed(tmp_path, "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(keys.cert_path, keys.key_path)
    with ScriptedServer(lambda seen, index: (ok(b"secure"), False), context=context) as server:
        untrusted = LeanTransport(TLSSettings(), timeout=5)
        with pytest.raises(TLSFailedError):
            untrusted.request("GET", f"{server.url}/v2/", {})
        trusted = LeanTransport(TLSSettings(ca_bundle=keys.cert_path), timeout=5)
        insecure = LeanTransport(TLSSettings(insecure=True), timeout=5)
        assert trusted.request("GET", f"{server.url}/v2/", {}).body == b"secure"
        assert insecure.request("GET", f"{server.url}/v2/", {}).body == b"secure"
        for transport in (untrusted, trusted, insecure):
            transport.close()


def test_the_client_on_the_lean_transport_against_a_real_registry(
    registry: RegistryServer, seeded: SeededApp, lean: LeanTransport
) -> None:
    with RegistryClient(Session(registry.url, lean)) as client:
        assert client.ping().api_version == "registry/2.0"
        assert len(client.tags("team/app")) == 44
        head = client.head_manifest("team/app", "latest")
        assert head is not None and head.digest == seeded.alphas[5].digest
        fetched = client.get_manifest("team/app", seeded.multi.digest)
        assert [c.digest for c in fetched.manifest.children] == [c.digest for c in seeded.children]
        config = seeded.alphas[1].blobs[0][0]
        assert b'"created"' in client.get_blob("team/app", config)
        assert client.head_manifest("team/app", "no-such-tag") is None
        client.check_delete_enabled("team/app")
        requests = client.stats.requests
    assert requests == 7


@pytest.mark.parametrize(
    ("env", "requested", "expected"),
    [
        ({}, None, "lean"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, None, "lean"),  # the registry URL is http://
        ({"HTTP_PROXY": "http://proxy:3128"}, None, "httpx"),
        ({"http_proxy": "http://proxy:3128", "NO_PROXY": "127.0.0.1,.internal"}, None, "lean"),
        ({"ALL_PROXY": "http://proxy:3128"}, None, "httpx"),
        ({"REGISTRY_PRUNE_TRANSPORT": "httpx"}, None, "httpx"),
        ({"REGISTRY_PRUNE_TRANSPORT": "httpx"}, "lean", "lean"),
    ],
)
def test_transport_choice_follows_the_flag_the_variable_and_proxies(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], requested: str | None, expected: str
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REGISTRY_PRUNE_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert transport_kind(requested, "http://127.0.0.1:5000") == expected


def test_lean_transport_refuses_a_proxied_registry_and_unknown_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    with pytest.raises(UsageError, match="--transport httpx"):
        transport_kind("lean", "https://registry.example")
    with pytest.raises(UsageError, match="unknown transport"):
        transport_kind("curl", "https://registry.example")
