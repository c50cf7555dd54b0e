"""Both transports against a conformant HTTP/1.1 server (h11) on 127.0.0.1, sending valid but unusual HTTP.

Each case is one answer: h11 events the server sends through its own h11 connection, or, for what
h11 will not write (chunk extensions, folded headers, a body delimited by the close, bare LF line
ends, HTTP/1.0), raw bytes that h11's own client parser accepts (checked in
``test_raw_answers_are_valid_http_as_h11_reads_it``). For every case LeanTransport and HttpxTransport
must return the same status, the same headers (lower-case names, repeated ones joined with ", ")
and the same body, and that must be what the server meant.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Iterator, Union

import h11
import pytest

from pipeline_step.registry.http.httpx_transport import HttpxTransport
from pipeline_step.registry.http.lean import LeanTransport
from pipeline_step.registry.http.transport import Response, TLSSettings, Transport

Event = Union[h11.InformationalResponse, h11.Response, h11.Data, h11.EndOfMessage]  # noqa: UP007 - h11's are runtime types
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
DIGEST = "sha256:" + "ab" * 32


@dataclass(frozen=True)
class Case:
    """One answer and what it means."""

    status: int
    body: bytes
    events: tuple[Event, ...] = ()
    raw: bytes = b""  # sent as is instead of events
    method: str = "GET"
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)  # headers the answer must carry, as our Response has them
    closes: bool = False  # the server closes the connection after it
    follow: bool = False


def answer(
    status: int, headers: list[tuple[str, bytes | str]], *chunks: bytes, trailers: list[tuple[str, str]] | None = None
) -> tuple[Event, ...]:
    return (
        h11.Response(status_code=status, headers=headers),
        *(h11.Data(data=c) for c in chunks),
        h11.EndOfMessage(headers=trailers or []),
    )


def sized(body: bytes, *extra: tuple[str, bytes | str]) -> tuple[Event, ...]:
    return answer(200, [("Content-Length", str(len(body))), *extra], body)


BIG = bytes(range(256)) * 12_288  # 3 MiB: bigger than the lean transport reads in one piece
LARGE_HEADERS = [(f"X-Big-{i}", "v" * 1000) for i in range(60)] + [("X-Huge", "h" * 30_000)]

CASES: dict[str, Case] = {
    "content-length": Case(
        200,
        b'{"schemaVersion": 2}',
        sized(b'{"schemaVersion": 2}', ("Docker-Content-Digest", DIGEST), ("Content-Type", "application/json")),
        headers={"docker-content-digest": DIGEST, "content-length": "20"},
    ),
    "chunked": Case(
        200,
        b"a" * 10 + b"b" * 5000 + b"c",
        answer(200, [], b"a" * 10, b"b" * 5000, b"c"),
        headers={"transfer-encoding": "chunked"},
    ),
    "chunked-many-one-byte-chunks": Case(200, b"x" * 300, answer(200, [], *[b"x"] * 300)),
    "chunked-empty": Case(200, b"", answer(200, [])),
    "chunked-trailers": Case(
        200,
        b"body",
        answer(200, [("Trailer", "X-Checksum")], b"bo", b"dy", trailers=[("X-Checksum", "abc"), ("X-Other", "1")]),
    ),
    "chunk-extensions": Case(
        200,
        b"hello world",
        raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n6;a=1;b="two words"\r\n world\r\n0;last=yes\r\nX-Trailer: t\r\n\r\n',
    ),
    "chunked-big": Case(200, BIG, answer(200, [], BIG[:5], BIG[5:])),
    "content-length-big": Case(200, BIG, sized(BIG)),
    "interim-100-102-103": Case(
        200,
        b"final",
        (
            h11.InformationalResponse(status_code=100, headers=[]),
            h11.InformationalResponse(status_code=102, headers=[("X-Progress", "50")]),
            h11.InformationalResponse(status_code=103, headers=[("Link", "</style.css>; rel=preload")]),
            *sized(b"final", ("X-Final", "yes")),
        ),
        headers={"x-final": "yes"},
    ),
    "close-delimited": Case(
        200,
        b"everything until the close",
        raw=b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\neverything until the close",
        closes=True,
    ),
    "close-delimited-without-connection-header": Case(
        200, b"to the close", raw=b"HTTP/1.1 200 OK\r\n\r\nto the close", closes=True
    ),
    "connection-close-with-length": Case(200, b"bye", sized(b"bye", ("Connection", "close")), closes=True),
    "http-1.0": Case(200, b"old", raw=b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", closes=True),
    "repeated-headers": Case(
        200,
        b"",
        answer(
            200,
            [
                ("X-Multi", "one"),
                ("Vary", "Accept"),
                ("x-multi", "two"),
                ("X-MULTI", "three"),
                ("Vary", "Accept-Encoding"),
                ("Content-Length", "0"),
            ],
        ),
        headers={"x-multi": "one, two, three", "vary": "Accept, Accept-Encoding"},
    ),
    "folded-header": Case(
        200,
        b"ok",
        raw=b"HTTP/1.1 200 OK\r\nX-Folded: first \r\n  second\r\n\tthird\r\nContent-Length: 2\r\n\r\nok",
        headers={"x-folded": "first  second third"},
    ),
    "bare-lf-line-ends": Case(
        200, b"ok", raw=b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok", headers={"x-a": "b"}
    ),
    "no-reason-phrase": Case(200, b"ok", raw=b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
    "empty-reason-phrase": Case(
        201, b"", (h11.Response(status_code=201, headers=[("Content-Length", "0")], reason=b""), h11.EndOfMessage())
    ),
    "empty-and-spaced-values": Case(
        200,
        b"",
        answer(200, [("X-Empty", ""), ("X-Spaces", "a  b\tc"), ("Content-Length", "0")]),
        headers={"x-empty": "", "x-spaces": "a  b\tc"},
    ),
    "obs-text-values": Case(
        200,
        b"",
        answer(200, [("X-Latin", b"caf\xe9"), ("X-Utf8", b"caf\xc3\xa9"), ("Content-Length", "0")]),
        headers={"x-latin": "café", "x-utf8": "cafÃ©"},
    ),
    # Only UTF-8 and no-break spaces (obs-text, not whitespace to HTTP): still Latin-1, kept as they are.
    "utf8-and-nbsp-values": Case(
        200,
        b"",
        answer(200, [("X-Utf8", b"caf\xc3\xa9"), ("X-Nbsp", b"\xa0x\xa0"), ("Content-Length", "0")]),
        headers={"x-utf8": "cafÃ©", "x-nbsp": "\xa0x\xa0"},
    ),
    "large-headers": Case(200, b"big", sized(b"big", *LARGE_HEADERS), headers={"x-huge": "h" * 30_000}),
    "many-headers": Case(
        200,
        b"",
        answer(200, [(f"X-N-{i}", str(i)) for i in range(190)] + [("Content-Length", "0")]),
        headers={"x-n-189": "189"},
    ),
    "204-with-headers": Case(204, b"", answer(204, [("X-Deleted", "yes")]), headers={"x-deleted": "yes"}),
    "304-with-content-length": Case(
        304,
        b"",
        answer(304, [("ETag", '"abc"'), ("Content-Length", "1234")]),
        headers={"etag": '"abc"', "content-length": "1234"},
    ),
    "head-with-content-length": Case(
        200,
        b"",
        answer(200, [("Content-Length", "42"), ("Docker-Content-Digest", DIGEST)]),
        method="HEAD",
        headers={"content-length": "42"},
    ),
    "head-chunked": Case(200, b"", answer(200, [("Transfer-Encoding", "chunked")]), method="HEAD"),
    "put-with-body": Case(
        201, b"", answer(201, [("Location", "/v2/x"), ("Content-Length", "0")]), method="PUT", content=b'{"k": 1}'
    ),
    "redirect-not-followed": Case(
        302,
        b"moved",
        answer(302, [("Location", "/conformance/content-length"), ("Content-Length", "5")], b"moved"),
        headers={"location": "/conformance/content-length"},
    ),
    "redirect-followed": Case(
        200,
        b'{"schemaVersion": 2}',
        answer(302, [("Location", "/conformance/content-length"), ("Content-Length", "5")], b"moved"),
        follow=True,
        headers={"docker-content-digest": DIGEST},
    ),
}


class H11Server:
    """A keep-alive HTTP/1.1 server on h11: ``/conformance/NAME`` answers with CASES[NAME]."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self.requests: list[tuple[int, str, str]] = []  # connection, method, target
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/conformance"

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            with sock:
                self._serve_requests(sock, number)
        except Exception as exc:  # noqa: BLE001 - reported by the tests through self.errors
            self.errors.append(exc)

    def _serve_requests(self, sock: socket.socket, number: int) -> None:
        connection = h11.Connection(h11.SERVER)
        while True:
            request = _next_event(connection, sock)
            if isinstance(request, h11.ConnectionClosed):
                return
            assert isinstance(request, h11.Request), request
            while not isinstance(_next_event(connection, sock), h11.EndOfMessage):
                pass  # the request body
            target = request.target.decode()
            self.requests.append((number, request.method.decode(), target))
            case = CASES[target.rsplit("/", 1)[1]]
            if case.raw:
                sock.sendall(case.raw)
                if case.closes:
                    return
                # h11 did not write this answer: a fresh connection object reads the next request.
                leftover, _ = connection.trailing_data
                connection = h11.Connection(h11.SERVER)
                if leftover:  # (empty data would tell h11 the peer closed)
                    connection.receive_data(bytes(leftover))
                continue
            for event in case.events:
                sock.sendall(connection.send(event) or b"")
            if connection.our_state is h11.MUST_CLOSE:
                return
            connection.start_next_cycle()


def _next_event(connection: h11.Connection, sock: socket.socket) -> object:
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(sock.recv(65536))


@pytest.fixture(scope="module")
def server() -> Iterator[H11Server]:
    running = H11Server()
    yield running
    running.close()
    assert not running.errors, running.errors


def make_transports() -> tuple[LeanTransport, HttpxTransport]:
    with pytest.MonkeyPatch.context() as patch:  # httpx reads proxies from the environment when it starts
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
            patch.delenv(name.upper(), raising=False)
        return LeanTransport(TLSSettings(), timeout=5), HttpxTransport(TLSSettings(), timeout=5)


@pytest.fixture(scope="module")
def transports() -> Iterator[tuple[LeanTransport, HttpxTransport]]:
    lean, httpx = make_transports()
    yield lean, httpx
    lean.close()
    httpx.close()


def fetch(transport: Transport, server: H11Server, name: str) -> Response:
    case = CASES[name]
    return transport.request(
        case.method, f"{server.url}/{name}", {"Accept": "*/*"}, case.content, follow_redirects=case.follow
    )


def _h11_reads(raw: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "example")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    client.receive_data(b"")  # then the server closes: ends a body delimited by the close
    status, headers, body = 0, {}, b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            for key, value in event.headers:
                name, text = key.decode("latin-1"), value.decode("latin-1")
                headers[name] = f"{headers[name]}, {text}" if name in headers else text
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, body


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.raw])
def test_raw_answers_are_valid_http_as_h11_reads_it(name: str) -> None:
    case = CASES[name]
    status, headers, body = _h11_reads(case.raw, case.method)
    assert (status, body) == (case.status, case.body)
    assert headers.items() >= case.headers.items()


@pytest.mark.parametrize("name", list(CASES))
def test_lean_and_httpx_return_the_same_status_headers_and_body(
    name: str, server: H11Server, transports: tuple[LeanTransport, HttpxTransport]
) -> None:
    lean, httpx = transports
    case = CASES[name]
    ours = fetch(lean, server, name)
    theirs = fetch(httpx, server, name)
    assert (ours.status, ours.body) == (case.status, case.body)
    assert (theirs.status, theirs.body) == (case.status, case.body)
    assert dict(ours.headers) == dict(theirs.headers)
    assert list(ours.headers) == list(theirs.headers)  # same order: as the server sent them
    assert dict(ours.headers).items() >= case.headers.items()


def test_keep_alive_carries_every_kind_of_framing_on_one_connection() -> None:
    """Many requests in a row, each answer framed differently: one connection each, then a new one after a close."""
    sequence = [name for name, case in CASES.items() if not case.closes and not case.follow] * 2
    for transport in make_transports():
        server = H11Server()
        try:
            for name in sequence:
                response = fetch(transport, server, name)
                assert (response.status, response.body) == (CASES[name].status, CASES[name].body), name
            assert server.connections == 1
            assert fetch(transport, server, "connection-close-with-length").body == b"bye"
            assert fetch(transport, server, "content-length").status == 200
            assert server.connections == 2
            assert len(server.requests) == len(sequence) + 2
            assert not server.errors
        finally:
            transport.close()
            server.close()
