"""The lean transport's response parser under tests/fuzz/lean_response.py: the corpus replayed, then a short fuzz.

* Every corpus file goes through the fuzz target's property checks (milliseconds in all).
* Every corpus file is also served by a real socket server on 127.0.0.1 to an unmodified
  LeanTransport with a 0.5 s timeout: the answer must be the one the harness's replaced socket
  gave, and no request may wait longer than its timeout (plus scheduling slack).
* ``scripts/fuzz.sh`` runs atheris for ``FUZZ_SECONDS`` (default 60; 0 skips) and must find nothing.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from pipeline_step.registry.http import lean
from pipeline_step.registry.http.transport import BrokenResponseError, ConnectFailedError, TLSSettings, TransportError
from tests.fuzz import lean_response
from tests.fuzz.lean_response import CORPUS, EOF, HOLD, RESET, SECRET, TIMEOUT, Case, Outcome, PropertyError

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILES = sorted(path.name for path in CORPUS.iterdir())
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
SLACK = 1.0  # seconds a loaded 2-core machine may add to a request


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_the_corpus_keeps_every_property(name: str) -> None:
    lean_response.replay(CORPUS / name)


def test_the_corpus_covers_each_feature() -> None:
    for feature in (
        "cl_",
        "chunked_extensions",
        "chunked_trailers",
        "interim_",
        "close_delimited",
        "head_",
        "status_204",
        "status_304",
        "crash_",
    ):
        assert any(name.startswith(feature) for name in CORPUS_FILES), feature
    assert len(CORPUS_FILES) >= 60


def test_the_checks_catch_a_wrong_body_and_a_foreign_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """The properties are not vacuous: a parser that drops a byte, or raises ValueError, is caught."""
    data = (CORPUS / "cl_body").read_bytes()
    read_exact = lean._read_exact
    monkeypatch.setattr(lean, "_read_exact", lambda reader, size: read_exact(reader, size)[:-1])
    with pytest.raises(PropertyError, match="expected"):
        lean_response.check(data)
    monkeypatch.setattr(lean, "_read_exact", read_exact)

    def broken(line: bytes) -> tuple[int, bool]:
        raise ValueError("not a transport error")

    monkeypatch.setattr(lean, "_parse_status", broken)
    with pytest.raises(ValueError, match="not a transport error"):
        lean_response.check(data)


# -- the corpus on a real socket ---------------------------------------------------------------


class CaseServer:
    """Serves a fuzz case on 127.0.0.1 as the harness's fake wire does: the first connection gets the
    case's bytes in its read sizes, later ones nothing; then the server closes, holds or resets."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections == 1), daemon=True).start()

    def _serve(self, conn: socket.socket, first: bool) -> None:
        with conn:
            conn.settimeout(10)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                _read_request(conn)
                payload = self.case.payload if first else b""
                size = max(self.case.reads or (0,)) or len(payload) or 1
                for start in range(0, len(payload), size):
                    conn.sendall(payload[start : start + size])
                if self.case.end == RESET:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if self.case.end == EOF:
                    conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):  # until the client closes (held: after its timeout)
                    pass
            except OSError:
                return


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            raise ConnectionResetError("the client left")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)


def _real_run(case: Case) -> list[tuple[Outcome, float]]:
    server = CaseServer(case)
    transport = lean.LeanTransport(TLSSettings(), timeout=TIMEOUT, max_connections=2)
    url = f"http://127.0.0.1:{server.port}/v2/team/app/manifests/latest"
    results: list[tuple[Outcome, float]] = []
    try:
        for _ in range(2):
            started = time.monotonic()
            try:
                response = transport.request(
                    case.method, url, {"Authorization": SECRET}, b"{}" if case.method == "PUT" else None
                )
            except TransportError as exc:
                outcome: Outcome = ("error", type(exc).__name__)
            else:
                kept = any(transport._idle.values())
                outcome = ("ok", response.status, tuple(response.headers.items()), response.body, kept)
            results.append((outcome, time.monotonic() - started))
            if outcome[0] != "ok" or not outcome[4]:
                break
    finally:
        transport.close()
        server.close()
    return results


@pytest.fixture
def small_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lean, "_MAX_LINE", lean_response.SMALL_LINE)
    yield


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_the_corpus_on_a_real_socket_answers_the_same_within_the_timeout(
    name: str, request: pytest.FixtureRequest
) -> None:
    # Never follow a redirect here: it could lead off 127.0.0.1.
    case = replace(lean_response.parse_case((CORPUS / name).read_bytes()), follow=False)
    if case.small:
        request.getfixturevalue("small_lines")
    expected = lean_response.run_case(case, (0,)).outcomes
    real = _real_run(case)
    for _, elapsed in real:
        assert elapsed < TIMEOUT + SLACK, f"a request took {elapsed:.2f}s"
    outcomes = [outcome for outcome, _ in real]
    if case.end == RESET:
        # After a reset, a second request may fail writing before it reads what was left: only the first is compared.
        assert outcomes[0] == expected[0]
        assert all(outcome[0] == "ok" or outcome == ("error", BrokenResponseError.__name__) for outcome in outcomes[1:])
    else:
        assert outcomes == expected
    if case.end == HOLD and expected[-1] == ("error", "TimedOutError"):
        assert real[-1][1] >= TIMEOUT * 0.9  # it did wait for its timeout, and (above) no longer


def test_a_redirect_to_a_host_name_idna_cannot_encode_fails_to_connect() -> None:
    """Beyond the fake socket's reach: connecting to such a name raised UnicodeError. (IDNA fails
    before any name lookup, so nothing leaves 127.0.0.1.)"""
    payload = b"HTTP/1.1 302 Found\r\nLocation: http://a..b/x\r\nContent-Length: 0\r\n\r\n"
    server = CaseServer(Case("GET", EOF, True, False, (), payload))
    transport = lean.LeanTransport(TLSSettings(), timeout=TIMEOUT)
    try:
        with pytest.raises(ConnectFailedError, match="invalid host name"):
            transport.request("GET", f"http://127.0.0.1:{server.port}/v2/", {}, follow_redirects=True)
    finally:
        transport.close()
        server.close()


# -- a short fuzz ------------------------------------------------------------------------------


@pytest.mark.fuzz
@pytest.mark.skipif(FUZZ_SECONDS <= 0, reason="FUZZ_SECONDS=0")
def test_a_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHON": sys.executable, "FUZZ_WORKDIR": str(tmp_path)}
    result = subprocess.run(
        ["bash", "scripts/fuzz.sh", str(FUZZ_SECONDS)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 300,
        check=False,
    )
    findings = sorted(path.name for path in tmp_path.iterdir() if path.is_file())
    # atheris prints the Python traceback on stdout, libFuzzer its summary and the input on stderr.
    report = "\n".join(result.stdout.splitlines()[-40:] + result.stderr.splitlines()[-30:])
    assert result.returncode == 0 and not findings, f"fuzzing found {findings} (exit {result.returncode}):\n{report}"
    assert "Done " in result.stderr, report
