"""A lean HTTP/1.1 transport: keep-alive sockets reused by the worker threads.

On a 2-core registry host every millisecond of client CPU is taken from the
registry, and general-purpose clients spend most of theirs on header parsing
and a new file object per response. So this transport speaks only the
HTTP/1.1 the registry API needs:
Content-Length and chunked bodies, keep-alive, TLS through :mod:`ssl`,
per-operation timeouts, and redirects for blob GETs (measured costs: the
README's Performance section). It does not speak to HTTP proxies: choose.py
picks httpx when the environment routes the registry URL through one.
"""

from __future__ import annotations

import functools
import io
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Mapping, cast
from urllib.parse import quote, urljoin, urlsplit

from pipeline_step.registry.http.transport import (
    BodyTooLargeError,
    BrokenResponseError,
    ConnectFailedError,
    Response,
    TimedOutError,
    TLSFailedError,
    TLSSettings,
)

_MAX_LINE = 65536
_MAX_HEADERS = 200
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
_OWS = " \t"  # optional whitespace around header values (RFC 9110 5.6.3)
_BARE_LF_OR_FOLD = re.compile(rb"\n(?:(?<!\r\n)|[ \t])")
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_READ_PIECE = 1 << 20  # BufferedReader.read(n) allocates n bytes before reading: bigger bodies come in pieces
# Printable ASCII: the characters a request target may carry as they are.
_TARGET_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))

Origin = tuple[str, str, int]  # scheme, host, port


class _StaleConnectionError(Exception):
    """A reused keep-alive connection was closed by the server before answering."""


@functools.lru_cache(maxsize=64)
def _parse_origin(prefix: str) -> tuple[Origin, str]:
    """(origin, Host header) of ``scheme://netloc``; one urlsplit per origin, not per request."""
    parts = urlsplit(prefix)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailedError(f"unsupported URL {prefix!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    origin = (parts.scheme, parts.hostname, port)
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return origin, name if port == (443 if parts.scheme == "https" else 80) else f"{name}:{port}"


def _origin(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, request target) of an absolute URL."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ConnectFailedError(f"unsupported URL {url!r}")
    netloc, slash, path = rest.partition("/")
    target = (slash + path).split("#", 1)[0] or "/"
    if "?" in netloc:  # http://host?query
        netloc, _, query = netloc.partition("?")
        target = f"/?{query}"
    origin, host = _parse_origin(f"{scheme}://{netloc}")
    return origin, host, target


class _Connection:
    __slots__ = ("origin", "reader", "reused", "sock")

    def __init__(self, origin: Origin, context: ssl.SSLContext | None, timeout: float) -> None:
        _, host, port = origin
        self.origin = origin
        self.reused = False
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise TimedOutError(f"connecting to {host}:{port} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise ConnectFailedError(f"{host}:{port}: {exc.strerror or exc}") from exc
        except UnicodeError as exc:  # a host name IDNA cannot encode, e.g. from a redirect
            raise ConnectFailedError(f"invalid host name {host!r}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLError as exc:
            sock.close()
            raise TLSFailedError(f"{host}:{port}: {exc}") from exc
        except TimeoutError as exc:
            sock.close()
            raise TimedOutError(f"TLS handshake with {host}:{port} timed out after {timeout:g}s") from exc
        except OSError as exc:
            sock.close()
            raise ConnectFailedError(f"{host}:{port}: {exc.strerror or exc}") from exc
        self.sock = sock
        self.reader = cast(io.BufferedReader, sock.makefile("rb", buffering=_MAX_LINE))

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


@dataclass
class LeanTransport:
    """Implements :class:`~pipeline_step.registry.http.transport.Transport`.

    Idle connections wait in a small per-origin stack, so each worker thread
    keeps reusing a warm connection even though run_bounded starts new threads
    for every batch. At most ``max_connections`` idle ones are kept per origin.
    """

    tls: TLSSettings = field(default_factory=TLSSettings)
    timeout: float = 30.0
    max_connections: int = 8
    _context: ssl.SSLContext | None = field(init=False, default=None, repr=False)
    _idle: dict[Origin, list[_Connection]] = field(init=False, default_factory=dict, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _closed: bool = field(init=False, default=False, repr=False)

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.tls.context()
        return self._context

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        *,
        follow_redirects: bool = False,
        max_body: int | None = None,
    ) -> Response:
        origin, host, target = _origin(url)
        sent_headers = headers
        for _ in range(_MAX_REDIRECTS + 1):
            data = _encode_request(method, target, host, sent_headers, content)
            status, response_headers, body = self._exchange(origin, method, data, max_body)
            location = response_headers.get("location")
            if not (follow_redirects and status in _REDIRECTS and location):
                return Response(status, response_headers, body, url)
            try:
                url = urljoin(url, location)
                new_origin, host, target = _origin(url)
                target = _redirect_target(target)
            except ValueError as exc:  # the server's Location is no usable URL (bad port, bracket, ...)
                raise BrokenResponseError(f"invalid redirect Location {location[:200]!r}") from exc
            if new_origin != origin:
                # Never hand the registry's credentials to another host (S3, a CDN).
                sent_headers = {k: v for k, v in sent_headers.items() if k.lower() != "authorization"}
            origin = new_origin
            if status == 303:
                method, content = "GET", None
        raise BrokenResponseError(f"more than {_MAX_REDIRECTS} redirects starting at {url}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [connection for stack in self._idle.values() for connection in stack]
            self._idle.clear()
        for connection in idle:
            connection.close()

    # -- connections -------------------------------------------------------

    def _acquire(self, origin: Origin) -> _Connection:
        with self._lock:
            stack = self._idle.get(origin)
            if stack:
                return stack.pop()
        context = self._tls_context() if origin[0] == "https" else None
        return _Connection(origin, context, self.timeout)

    def _release(self, connection: _Connection) -> None:
        connection.reused = True
        with self._lock:
            if not self._closed:
                stack = self._idle.setdefault(connection.origin, [])
                if len(stack) < self.max_connections:
                    stack.append(connection)
                    return
        connection.close()

    def _exchange(
        self, origin: Origin, method: str, data: bytes, max_body: int | None
    ) -> tuple[int, dict[str, str], bytes]:
        # One retry, only when a reused connection turns out to be closed by the
        # server before it answered: every request sent here is idempotent.
        for _ in range(2):
            connection = self._acquire(origin)
            try:
                status, response_headers, body, keep = _round_trip(connection, method, data, max_body)
            except _StaleConnectionError:
                connection.close()
                continue
            except BaseException:
                connection.close()
                raise
            if keep:
                self._release(connection)
            else:
                connection.close()
            return status, response_headers, body
        raise BrokenResponseError(f"{origin[1]}:{origin[2]} closed the connection without answering")


def _redirect_target(target: str) -> str:
    """``target`` with every byte a request line cannot carry (controls, spaces, non-ASCII) percent-encoded."""
    if target.isascii() and target.isprintable() and " " not in target:
        return target
    return quote(target, safe=_TARGET_SAFE, encoding="latin-1")


def _encode_request(method: str, target: str, host: str, headers: Mapping[str, str], content: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    if content is not None or method in ("PUT", "POST", "PATCH"):
        lines.append(f"Content-Length: {len(content or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + content if content else head


def _round_trip(
    connection: _Connection, method: str, data: bytes, max_body: int | None = None
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send one encoded request and read its response: (status, headers, body, keep-alive)."""
    answered = False
    try:
        connection.sock.sendall(data)
        status_line = connection.reader.readline(_MAX_LINE)
        if not status_line:
            if connection.reused:
                raise _StaleConnectionError
            raise BrokenResponseError("the server closed the connection without answering")
        answered = True
        while True:
            status, keep = _parse_status(status_line)
            response_headers = _read_headers(connection.reader)
            if status >= 200 or status == 101:
                break
            status_line = connection.reader.readline(_MAX_LINE)  # skip 1xx interim responses
        body, complete = _read_body(connection.reader, method, status, response_headers, max_body)
    except (ConnectionResetError, BrokenPipeError) as exc:
        if connection.reused and not answered:
            raise _StaleConnectionError from exc
        raise BrokenResponseError(f"connection reset: {exc}") from exc
    except TimeoutError as exc:
        raise TimedOutError(f"no answer within {connection.sock.gettimeout():g}s") from exc
    except ssl.SSLError as exc:
        raise BrokenResponseError(f"TLS error mid-request: {exc}") from exc
    except OSError as exc:
        raise BrokenResponseError(str(exc) or type(exc).__name__) from exc
    connection_header = response_headers.get("connection")
    if connection_header is not None:
        # Whole tokens: "keep-alive" inside some other word must not keep an HTTP/1.0 connection.
        tokens = {token.strip(_OWS) for token in connection_header.lower().split(",")}
        if "close" in tokens:
            keep = False
        elif "keep-alive" in tokens:
            keep = True
    return status, response_headers, body, keep and complete


def _parse_status(line: bytes) -> tuple[int, bool]:
    """(status, keep-alive by default for this HTTP version)."""
    if not line.endswith(b"\n"):
        raise BrokenResponseError(f"the status line was cut off or is longer than {_MAX_LINE} bytes")
    parts = line.split(None, 2)
    if (
        len(parts) < 2
        or not parts[0].startswith(b"HTTP/1.")
        or not parts[1].isdigit()
        or len(parts[1]) != 3
        or parts[1] < b"100"
    ):
        raise BrokenResponseError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(parts[1]), parts[0] != b"HTTP/1.0"


def _read_headers(reader: io.BufferedReader) -> dict[str, str]:
    buffered = reader.peek(_MAX_LINE)
    if buffered.startswith(b"\r\n"):
        reader.read(2)
        return {}
    end = buffered.find(b"\r\n\r\n")
    # Anything unusual goes line by line, before a byte is taken, so the same bytes parse the same
    # way however they arrived: a block not yet whole in the buffer, a bare LF (it ends a line, maybe
    # the block), a folded line.
    if end < 0 or buffered[0] in b" \t" or _BARE_LF_OR_FOLD.search(buffered, 0, end) is not None:
        return _read_header_lines(reader)
    # The whole block is already buffered: one split instead of a readline per header.
    lines = buffered[:end].decode("latin-1").split("\r\n")
    if len(lines) > _MAX_HEADERS:
        raise BrokenResponseError(f"more than {_MAX_HEADERS} response headers")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise BrokenResponseError(f"malformed response header line {line[:80]!r}")
        key = name.rstrip(_OWS).lower()
        value = value.strip(_OWS)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    reader.read(end + 4)
    return headers


def _read_header_lines(reader: io.BufferedReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    key: str | None = None  # the header being read: a folded line continues its value
    value = ""
    for _ in range(_MAX_HEADERS + 1):  # the headers and the blank line
        line = reader.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise BrokenResponseError("the response headers were cut off")
        text = (line[:-2] if line.endswith(b"\r\n") else line[:-1]).decode("latin-1")
        if text and text[0] in _OWS:
            # obs-fold (RFC 9112 5.2): a user agent joins it to the previous line with a space.
            if key is None:
                raise BrokenResponseError(f"the response headers start with a folded line {text[:80]!r}")
            value = f"{value} {text.lstrip(_OWS)}"
            continue
        if key is not None:
            value = value.strip(_OWS)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if not text:
            return headers
        name, colon, value = text.partition(":")
        if not colon:
            raise BrokenResponseError(f"malformed response header line {text[:80]!r}")
        key = name.rstrip(_OWS).lower()  # a name cannot start with a space: that line would be folded
    raise BrokenResponseError(f"more than {_MAX_HEADERS} response headers")


def _read_exact(reader: io.BufferedReader, size: int) -> bytes:
    if size <= _READ_PIECE:
        data = reader.read(size)
        if len(data) != size:
            raise BrokenResponseError(f"the response body was cut off after {len(data)} of {size} bytes")
        return data
    # A length the peer announced is no reason to allocate it: take the bytes as they arrive.
    pieces: list[bytes] = []
    received = 0
    while received < size:
        piece = reader.read(min(size - received, _READ_PIECE))
        if not piece:
            raise BrokenResponseError(f"the response body was cut off after {received} of {size} bytes")
        pieces.append(piece)
        received += len(piece)
    return b"".join(pieces)


def _content_length(value: str) -> int:
    """The length a Content-Length other than a short run of digits gives, if any."""
    # A list of one repeated length is that length (RFC 9110 8.6); anything else frames nothing.
    values = {part.strip(_OWS) for part in value.split(",")}
    single = values.pop()
    if values or not (single.isascii() and single.isdigit()):
        raise BrokenResponseError(f"invalid Content-Length {value[:80]!r}")
    try:
        return int(single)
    except ValueError:  # more digits than int() takes
        raise BrokenResponseError(f"invalid Content-Length {value[:80]!r}") from None


def _read_body(
    reader: io.BufferedReader, method: str, status: int, headers: Mapping[str, str], max_body: int | None = None
) -> tuple[bytes, bool]:
    """The body, and whether the connection can carry another request afterwards."""
    if method == "HEAD" or status in _NO_BODY or status < 200:
        return b"", status != 101  # after 101 the connection speaks another protocol
    limit = max_body
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.rpartition(",")[2].strip(_OWS).lower() == "chunked":
            # With a Content-Length too, the framing is suspect (RFC 9112 6.3): do not reuse the connection.
            return _read_chunked(reader, limit), "content-length" not in headers
        return _read_to_close(reader, limit), False  # chunked is not the final coding (RFC 9112 6.3)
    length = headers.get("content-length")
    if length is not None:
        size = int(length) if length.isdigit() and length.isascii() and len(length) < 19 else _content_length(length)
        if limit is not None and size > limit:
            raise BodyTooLargeError(f"the answer announces {size} bytes, more than the {limit} allowed")
        return _read_exact(reader, size), True
    return _read_to_close(reader, limit), False


def _read_to_close(reader: io.BufferedReader, limit: int | None) -> bytes:
    """A body delimited by the connection's close, in pieces, refused once it passes ``limit``."""
    if limit is None:
        return reader.read()
    pieces: list[bytes] = []
    received = 0
    while piece := reader.read(min(_READ_PIECE, limit + 1 - received)):
        pieces.append(piece)
        received += len(piece)
        if received > limit:
            raise BodyTooLargeError(f"the answer is longer than the {limit} bytes allowed")
    return b"".join(pieces)


def _read_chunked(reader: io.BufferedReader, limit: int | None = None) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise BrokenResponseError("a chunked response body was cut off")
        size_field = line.split(b";", 1)[0].strip(b" \t\r\n")
        # Hex digits only: int(x, 16) would also take "0x1f", "-1", "+1" and "1_0".
        if not size_field or size_field.strip(_HEX_DIGITS):
            raise BrokenResponseError(f"invalid chunk size line {line[:80]!r}")
        size = int(size_field, 16)
        if size == 0:
            _read_headers(reader)  # trailers, up to the blank line
            return b"".join(chunks)
        total += size
        if limit is not None and total > limit:
            raise BodyTooLargeError(f"the chunked answer is longer than the {limit} bytes allowed")
        chunks.append(_read_exact(reader, size))
        if reader.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
            raise BrokenResponseError("a chunk was not followed by CRLF")
