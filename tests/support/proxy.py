"""A recording, fault-injecting HTTP proxy in front of a real registry (tests only).

Every request is forwarded to the upstream registry and recorded. A schedule
may replace a response with a fault: an HTTP status (with Retry-After), a
connection reset, a slow answer, a truncated or non-JSON body, or a manifest
body that no longer matches its Docker-Content-Digest.

``forward=True`` sends the request upstream before the fault hits, so the
registry *did* the work (a DELETE was applied) but the client never hears it:
the case where a report can most easily lie. :class:`Rules` builds schedules
from a few declarative rules.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tests.support.localhttp import KeepAlive

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
    "host",
}


@dataclass(frozen=True)
class Fault:
    kind: str  # status | reset | slow | truncate | garbage | corrupt | replace | answer | rewrite
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    forward: bool = False  # send the request upstream first (the fault hits the answer only)
    body: bytes = b""  # the answer of a "replace" fault, or of a "status" fault instead of the default
    echo: bool = False  # a "status" fault quotes the request's headers, like some proxies' error pages
    rewrite: Callable[[bytes], bytes] | None = None  # a "rewrite" fault: the upstream answer's body -> the one sent
    # An "answer" fault: (path, request body) -> (status, XML body), sent instead of forwarding.
    answer: Callable[[str, bytes], tuple[int, bytes]] | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.status}" if self.kind == "status" else self.kind


@dataclass
class Recorded:
    method: str
    path: str
    status: int | None
    fault: str | None
    at: float


Schedule = Callable[[str, str, int], "Fault | None"]  # (method, path, request number) -> fault


@dataclass
class Rule:
    """Inject ``fault`` into every ``every``-th request matching ``method`` and ``path`` (a regex).

    ``limit`` caps how many times the rule fires in total; ``per_path`` caps it
    per distinct path, so a retry of the same request eventually gets through.
    ``once_deleting`` holds the rule back until the first DELETE has passed
    (the delete-enabled probe comes right after planning), so only the reads
    made while deleting are faulted.
    """

    fault: Fault
    method: str | None = None
    path: str | None = None
    every: int = 1
    limit: int | None = None
    per_path: int | None = None
    once_deleting: bool = False
    seen: int = 0
    fired: int = 0
    fired_on: Counter[str] = field(default_factory=Counter)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path is None or re.search(self.path, path) is not None

    def fire(self, path: str) -> bool:
        self.seen += 1
        if self.seen % self.every:
            return False
        if self.limit is not None and self.fired >= self.limit:
            return False
        if self.per_path is not None and self.fired_on[path] >= self.per_path:
            return False
        self.fired += 1
        self.fired_on[path] += 1
        return True


class Rules:
    """A schedule from rules; the first matching rule that fires wins.

    ``cap_per_request`` limits the faults of all these rules together on one
    (method, path), so transient faults never exhaust the client's retries.
    """

    def __init__(self, *rules: Rule, cap_per_request: int | None = None) -> None:
        self.rules = list(rules)
        self.cap_per_request = cap_per_request
        self._fired: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._deleting = False

    def __call__(self, method: str, path: str, number: int) -> Fault | None:
        with self._lock:
            deleting, self._deleting = self._deleting, self._deleting or method == "DELETE"
            if self.cap_per_request is not None and self._fired[(method, path)] >= self.cap_per_request:
                return None
            for rule in self.rules:
                if rule.once_deleting and not deleting:
                    continue
                if rule.matches(method, path) and rule.fire(path):
                    self._fired[(method, path)] += 1
                    return rule.fault
        return None


def first_of(*schedules: Schedule) -> Schedule:
    """Ask each schedule in turn; the first fault wins."""

    def schedule(method: str, path: str, number: int) -> Fault | None:
        for candidate in schedules:
            fault = candidate(method, path, number)
            if fault is not None:
                return fault
        return None

    return schedule


@dataclass
class RecordingProxy:
    upstream: str
    schedule: Schedule | None = None
    port: int = 0  # 0: any free port; a rerun passes its predecessor's, so both runs name one registry
    preserve_host: bool = False  # forward the client's Host header: SigV4 (S3) signs it
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    _in_flight: int = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RecordingProxy:
        owner = self
        client = KeepAlive(self.upstream, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm and the
            # client's delayed ACK that costs 40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                owner._handle(self, client)

            do_GET = do_HEAD = do_DELETE = do_PUT = do_POST = do_PATCH = _any  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up on a slow answer closes its socket: expected here.
                return

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, method: str, path: str, status: int | None, fault: str | None) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, status, fault, time.monotonic()))

    def counts(self, method: str | None = None) -> Counter[tuple[str, str]]:
        """How many requests each (method, path) got, faulted ones included."""
        with self._lock:
            return Counter((r.method, r.path) for r in self.requests if method is None or r.method == method)

    def faulted(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.fault is not None]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being handled (a slow fault may still forward late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    return
            time.sleep(0.02)  # polling interval
        raise TimeoutError(f"the proxy still handles {self._in_flight} requests after {timeout}s")

    def _handle(self, handler: BaseHTTPRequestHandler, client: KeepAlive) -> None:
        with self._lock:
            self._in_flight += 1
        try:
            self._handle_one(handler, client)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle_one(self, handler: BaseHTTPRequestHandler, client: KeepAlive) -> None:
        method = handler.command
        path = handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self._count += 1
            number = self._count
        fault = self.schedule(method, path, number) if self.schedule else None
        if fault is not None and not fault.forward and fault.kind in ("status", "reset"):
            self._fault_without_upstream(handler, method, path, fault)
            return
        if fault is not None and fault.kind == "answer" and fault.answer is not None:
            status, payload = fault.answer(path, body)
            self._record(method, path, status, fault.kind)
            handler.send_response(status)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if fault is not None and fault.kind == "slow" and not fault.forward:
            time.sleep(fault.delay)  # an injected fault: the delay *is* the behaviour under test
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.preserve_host and handler.headers.get("Host"):
            headers["Host"] = handler.headers["Host"]
        status, upstream_headers, payload = client.request(method, path, headers, body)
        if fault is not None and fault.kind == "slow" and fault.forward:
            time.sleep(fault.delay)  # the registry has done the work; only the answer is late
        if fault is not None and fault.kind in ("status", "reset"):
            self._fault_without_upstream(handler, method, path, fault)
            return
        out_headers = [(k, v) for k, v in upstream_headers if k.lower() not in HOP_BY_HOP]
        declared = len(payload)
        if fault is not None and fault.kind == "truncate":
            payload = payload[: max(0, len(payload) // 2)]
        elif fault is not None and fault.kind == "garbage":
            payload = b"<html>502 upstream hiccup</html>"
            declared = len(payload)
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-type"]
            out_headers.append(("Content-Type", "text/html"))
        elif fault is not None and fault.kind == "corrupt" and payload:
            payload = payload[:-2] + b"  "
        elif fault is not None and fault.kind == "rewrite" and fault.rewrite is not None:
            payload = fault.rewrite(payload)
            declared = len(payload)
        elif fault is not None and fault.kind == "replace":
            payload = fault.body
            declared = len(payload)
            out_headers = [(k, v) for k, v in out_headers if k.lower() not in ("content-type", "link")]
            out_headers.append(("Content-Type", "application/json"))
        self._record(method, path, status, fault.kind if fault else None)
        handler.send_response(status)
        for key, value in out_headers:
            handler.send_header(key, value)
        upstream_length = next((v for k, v in upstream_headers if k.lower() == "content-length"), "0")
        handler.send_header("Content-Length", str(declared if method != "HEAD" else upstream_length))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(payload)
        if fault is not None and fault.kind == "truncate":
            handler.close_connection = True
            _reset(handler)

    def _fault_without_upstream(self, handler: BaseHTTPRequestHandler, method: str, path: str, fault: Fault) -> None:
        self._record(method, path, fault.status if fault.kind == "status" else None, fault.kind)
        if fault.kind == "reset":
            handler.close_connection = True
            _reset(handler)
            return
        body = fault.body or b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
        if fault.echo:
            quoted = "; ".join(f"{name}: {value}" for name, value in handler.headers.items())
            error = {"code": "UNKNOWN", "message": "upstream failed", "detail": quoted}
            body = json.dumps({"errors": [error]}).encode()
        handler.send_response(fault.status)
        handler.send_header("Content-Type", "application/json")
        if fault.retry_after is not None:
            handler.send_header("Retry-After", fault.retry_after)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(body)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with RST instead of FIN, like a crashed peer."""
    try:
        handler.wfile.flush()
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass
