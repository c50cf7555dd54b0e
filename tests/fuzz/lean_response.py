"""Fuzz target: every byte a server sends back, through ``LeanTransport.request`` and its real parser.

An input is an optional options line, then the bytes the server sends::

    #HT7
    HTTP/1.1 200 OK\\r\\n...

The options line starts with ``#`` and holds letters and digits: ``H`` sends HEAD, ``P`` a PUT with a
body (else GET); ``T`` holds the connection open after the bytes (the next read times out), ``X``
resets it (else the server closes it); ``R`` follows redirects; ``S`` lowers the line limit to
``SMALL_LINE`` bytes so the limits are reachable with small inputs; digits are the sizes of the
successive reads the server's bytes arrive in (0: all at once).

Only the socket is replaced: ``LeanTransport._acquire`` hands out a connection whose reader is the
same ``BufferedReader`` a socket's makefile gives, over a raw stream that serves the bytes as the
case says and then ends in EOF, a socket timeout or a reset. So nothing waits and nothing leaves
the process. After an answer that keeps the connection, a second request reads what is left.

Properties checked on every input (a violation raises :class:`PropertyError`):

* only the transport's own errors come out (any other exception is a bug in lean.py);
* no request takes longer than ``HANG_LIMIT`` (nothing here blocks, so a hang is a loop);
* the answer does not depend on how the bytes were split into reads (one read, then the
  case's read sizes or, without digits, a mix of small ones: this is what tells the header
  fast path from the line-by-line path);
* :class:`_Reference`, a second parser written for this harness over the whole byte string,
  says what the bytes encode, and the transport returns exactly that status, those headers and
  that body, or raises the error it names (cut off, too long, malformed: BrokenResponseError;
  a held connection: TimedOutError); it keeps the connection exactly when the framing allows, and
  the second request gets exactly the response that follows;
* every request sent is well-formed (no control byte or space in the target, CRLF lines), and
  none that goes to another origin after a redirect carries the Authorization header.

Run: ``python -m tests.fuzz.lean_response [libFuzzer arguments] [corpus dirs]`` (scripts/fuzz.sh).
"""

from __future__ import annotations

import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, cast

from pipeline_step.registry.http import lean
from pipeline_step.registry.http.transport import (
    BrokenResponseError,
    TimedOutError,
    TLSSettings,
    TransportError,
)

CORPUS = Path(__file__).parent / "corpus" / "lean_response"
BASE_URL = "http://127.0.0.1:5000/v2/team/app/manifests/latest"
BASE_ORIGIN = ("http", "127.0.0.1", 5000)
SECRET = "Bearer fuzz-secret"
TIMEOUT = 0.5
HANG_LIMIT = 2.0
FULL_LINE = lean._MAX_LINE
SMALL_LINE = 256
MIXED_READS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
EOF, HOLD, RESET = "eof", "hold", "reset"


class PropertyError(AssertionError):
    """The transport broke one of the properties above on this input."""


@dataclass(frozen=True)
class Case:
    method: str
    end: str
    follow: bool
    small: bool
    reads: tuple[int, ...]  # from the options line; empty: the mixed sizes
    payload: bytes

    @property
    def max_line(self) -> int:
        return SMALL_LINE if self.small else FULL_LINE


def parse_case(data: bytes) -> Case:
    options, payload = b"", data
    if data.startswith(b"#"):
        newline = data.find(b"\n", 0, 33)
        if newline >= 0:
            options, payload = data[1:newline], data[newline + 1 :]
    method = "HEAD" if b"H" in options else "PUT" if b"P" in options else "GET"
    end = HOLD if b"T" in options else RESET if b"X" in options else EOF
    reads = tuple(byte - 48 for byte in options if 48 <= byte <= 57)
    return Case(method, end, b"R" in options, b"S" in options, reads, payload)


# -- the transport, with the socket replaced ---------------------------------------------------


class _Wire(io.RawIOBase):
    """The server's end: the bytes in reads of the given sizes, then EOF, a timeout or a reset."""

    def __init__(self, payload: bytes, reads: tuple[int, ...], end: str) -> None:
        self._payload = payload
        self._reads = reads
        self._end = end
        self._position = 0
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._position >= len(self._payload):
            if self._end == HOLD:
                raise TimeoutError("timed out")  # what a socket with a timeout raises
            if self._end == RESET:
                raise ConnectionResetError(104, "Connection reset by peer")
            return 0
        size = self._reads[self._count % len(self._reads)] or len(buffer)
        self._count += 1
        piece = self._payload[self._position : self._position + min(size, len(buffer))]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)


class _Socket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def gettimeout(self) -> float:
        return TIMEOUT

    def close(self) -> None:
        pass


class _FakeConnection:
    """What lean._Connection is to the transport: origin, reader, reused, sock, close()."""

    def __init__(self, origin: lean.Origin, wire: _Wire, buffer_size: int) -> None:
        self.origin = origin
        self.reused = False
        self.sock = _Socket()
        self.reader = io.BufferedReader(wire, buffer_size)

    def close(self) -> None:
        pass


# An outcome: ("ok", status, headers, body, kept) or ("error", error class name).
Outcome = tuple[object, ...]


@dataclass
class Run:
    outcomes: list[Outcome]
    connections: list[_FakeConnection]


def _transport_run(case: Case, reads: tuple[int, ...]) -> Run:
    transport = lean.LeanTransport(TLSSettings(), timeout=TIMEOUT, max_connections=2)
    connections: list[_FakeConnection] = []

    def acquire(origin: lean.Origin) -> lean._Connection:
        stack = transport._idle.get(origin)
        if stack:
            return stack.pop()
        # Only the first connection carries the input; later ones (a retry, another origin) get nothing.
        wire = _Wire(b"" if connections else case.payload, reads, case.end)
        connection = _FakeConnection(origin, wire, case.max_line)
        connections.append(connection)
        return cast(lean._Connection, connection)

    transport._acquire = acquire  # type: ignore[method-assign]
    content = b"{}" if case.method == "PUT" else None
    outcomes: list[Outcome] = []
    for _ in range(2):
        started = time.monotonic()
        try:
            response = transport.request(
                case.method, BASE_URL, {"Authorization": SECRET}, content, follow_redirects=case.follow
            )
        except TransportError as exc:
            outcomes.append(("error", type(exc).__name__))
        else:
            kept = any(transport._idle.values())
            outcomes.append(("ok", response.status, tuple(response.headers.items()), response.body, kept))
        elapsed = time.monotonic() - started
        if elapsed > HANG_LIMIT:
            raise PropertyError(f"a request took {elapsed:.1f}s with nothing to wait for")
        if outcomes[-1][0] != "ok" or not outcomes[-1][4]:
            break
    return Run(outcomes, connections)


def run_case(case: Case, reads: tuple[int, ...]) -> Run:
    """One run of the case's requests, the line limit lowered for an ``S`` case."""
    saved = lean._MAX_LINE
    lean._MAX_LINE = case.max_line
    try:
        return _transport_run(case, reads)
    finally:
        lean._MAX_LINE = saved


# -- the reference parser ----------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    status: int
    headers: dict[str, str]
    body: bytes
    end: int  # where the next response starts
    keep: bool  # whether the framing allows another request on the connection


@dataclass(frozen=True)
class Fails:
    error: type[TransportError]


Expected = Parsed | Fails


class _FailsError(Exception):
    """Raised inside the reference parser: the transport must raise ``error``."""

    def __init__(self, error: type[TransportError]) -> None:
        self.error = error


# "HTTP/1.x", a three-digit status, maybe a reason; between them any ASCII whitespace but LF.
_STATUS = re.compile(rb"[ \t\r\v\f]*(HTTP/1\.[^ \t\r\n\v\f]*)[ \t\r\v\f]+([0-9]{3})(?:[ \t\r\v\f][^\n]*)?\n")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_DIGITS = re.compile(r"[0-9]+")


class _Reference:
    """RFC 9112 framing over the whole byte string, with the transport's documented leniencies:

    a bare LF ends a line, folded header lines are joined with a space, header names and values
    lose surrounding spaces and tabs, repeated headers are joined with ", ", chunk extensions and
    trailers are skipped, a list of one repeated Content-Length is that length, a line longer than
    the line limit and more than 200 header lines are errors, and a Transfer-Encoding whose last
    coding is not chunked means the body runs to the close.
    """

    def __init__(self, data: bytes, start: int, case: Case) -> None:
        self.data = data
        self.position = start
        self.case = case
        self.exhausted: type[TransportError] = TimedOutError if case.end == HOLD else BrokenResponseError

    def fail(self, error: type[TransportError] | None = None) -> _FailsError:
        """The error for bytes that are wrong, or (no ``error``) that end before they say what they are."""
        return _FailsError(error or self.exhausted)

    def line(self) -> bytes:
        newline = self.data.find(b"\n", self.position, self.position + self.case.max_line)
        if newline < 0:
            too_long = len(self.data) - self.position >= self.case.max_line
            raise self.fail(BrokenResponseError if too_long else None)
        line = self.data[self.position : newline + 1]
        self.position = newline + 1
        return line

    def take(self, size: int) -> bytes:
        if len(self.data) - self.position < size:
            raise self.fail()
        piece = self.data[self.position : self.position + size]
        self.position += size
        return piece

    def rest(self) -> bytes:
        if self.case.end == HOLD:
            raise self.fail(TimedOutError)
        if self.case.end == RESET:
            raise self.fail(BrokenResponseError)
        return self.take(len(self.data) - self.position)

    def status_line(self) -> tuple[int, bool]:
        line = self.line()
        match = _STATUS.fullmatch(line)
        if match is None or int(match[2]) < 100:
            raise self.fail(BrokenResponseError)
        return int(match[2]), match[1] != b"HTTP/1.0"

    def header_block(self) -> dict[str, str]:
        fields: list[list[str]] = []  # [name, value]
        for _ in range(lean._MAX_HEADERS + 1):
            line = self.line()
            text = line.removesuffix(b"\n").removesuffix(b"\r").decode("latin-1")
            if not text:
                break
            if text[0] in " \t":
                if not fields:
                    raise self.fail(BrokenResponseError)
                fields[-1][1] += " " + text.lstrip(" \t")
                continue
            if ":" not in text:
                raise self.fail(BrokenResponseError)
            name, _, value = text.partition(":")
            fields.append([name, value])
        else:
            raise self.fail(BrokenResponseError)
        headers: dict[str, str] = {}
        for name, raw in fields:
            key, value = name.strip(" \t").lower(), raw.strip(" \t")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def content_length(self, value: str) -> int:
        values = {part.strip(" \t") for part in value.split(",")}
        if len(values) != 1:
            raise self.fail(BrokenResponseError)
        (single,) = values
        if not _DIGITS.fullmatch(single) or len(single) > sys.get_int_max_str_digits():
            raise self.fail(BrokenResponseError)
        return int(single)

    def chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_field = self.line().partition(b";")[0].strip(b" \t\r\n")
            if not _HEX.fullmatch(size_field):
                raise self.fail(BrokenResponseError)
            size = int(size_field, 16)
            if size == 0:
                self.header_block()
                return b"".join(chunks)
            chunks.append(self.take(size))
            if self.line() not in (b"\r\n", b"\n"):
                raise self.fail(BrokenResponseError)

    def response(self) -> Parsed:
        while True:
            status, keep = self.status_line()
            headers = self.header_block()
            if status >= 200 or status == 101:
                break
        connection = {token.strip(" \t").lower() for token in headers.get("connection", "").split(",")}
        if "close" in connection:
            keep = False
        elif "keep-alive" in connection:
            keep = True
        body = b""
        if status == 101:
            keep = False
        elif not (self.case.method == "HEAD" or status in (204, 304)):
            coding = headers.get("transfer-encoding")
            if coding is not None and coding.split(",")[-1].strip(" \t").lower() == "chunked":
                body = self.chunked()
                keep = keep and "content-length" not in headers
            elif coding is None and "content-length" in headers:
                body = self.take(self.content_length(headers["content-length"]))
            else:
                body = self.rest()
                keep = False
        return Parsed(status, headers, body, self.position, keep)


def expect(case: Case, start: int = 0, *, reused: bool = False) -> Expected:
    """What the transport must make of ``case.payload[start:]``."""
    if reused and start == len(case.payload):
        # Nothing left on a kept connection: one retry on a new one, which gets nothing either.
        return Fails(TimedOutError if case.end == HOLD else BrokenResponseError)
    try:
        return _Reference(case.payload, start, case).response()
    except _FailsError as failure:
        return Fails(failure.error)


# -- the properties ----------------------------------------------------------------------------

_REQUEST = re.compile(
    rb"(GET|HEAD|PUT) [\x21-\x7e]+ HTTP/1\.1\r\nHost: [^\r\n]+\r\n(?:[^\r\n]+\r\n)*\r\n(?:\{\})?", re.DOTALL
)


def _check_against(expected: Expected, outcome: Outcome, which: str) -> None:
    if isinstance(expected, Fails):
        if outcome != ("error", expected.error.__name__):
            raise PropertyError(f"{which}: expected {expected.error.__name__}, got {outcome!r}")
        return
    wanted = ("ok", expected.status, tuple(expected.headers.items()), expected.body)
    if outcome[:4] != wanted:
        raise PropertyError(f"{which}: expected {wanted!r}, got {outcome!r}")
    if outcome[4] != expected.keep:
        raise PropertyError(f"{which}: {'kept' if outcome[4] else 'closed'} the connection, expected otherwise")


def check(data: bytes) -> None:
    """Every property on one input; raises PropertyError or the transport's unexpected exception."""
    case = parse_case(data)
    whole = run_case(case, (0,))
    split = run_case(case, case.reads or MIXED_READS)
    if whole.outcomes != split.outcomes:
        raise PropertyError(
            f"the answer depends on how the bytes arrive: {whole.outcomes!r} in one read, {split.outcomes!r} in pieces"
        )
    for connection in whole.connections + split.connections:
        for sent in connection.sock.sent:
            if not _REQUEST.fullmatch(sent):
                raise PropertyError(f"a malformed request was sent: {sent[:200]!r}")
            if connection.origin != BASE_ORIGIN and SECRET.encode() in sent:
                raise PropertyError(f"the Authorization header went to {connection.origin}")
    if case.follow:
        return  # the reference does not follow redirects: the properties above still hold
    first = expect(case)
    _check_against(first, whole.outcomes[0], "first request")
    if len(whole.outcomes) == 2 and isinstance(first, Parsed):
        _check_against(expect(case, first.end, reused=True), whole.outcomes[1], "second request")


def replay(path: Path) -> None:
    check(path.read_bytes())


def test_one_input(data: bytes) -> None:
    check(data)


def main(argv: list[str]) -> None:
    import importlib  # noqa: PLC0415 - only the fuzzing process needs these

    import atheris  # noqa: PLC0415

    # Re-import lean.py instrumented, so libFuzzer sees which branches of the parser an input reaches.
    with atheris.instrument_imports(include=["pipeline_step.registry.http.lean"]):
        importlib.reload(lean)
    atheris.Setup(argv, cast(Callable[[bytes], None], test_one_input))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
