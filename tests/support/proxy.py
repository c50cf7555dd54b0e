"""A recording, fault-injecting HTTP proxy in front of a real registry (tests only).

Every request is forwarded to the upstream registry and recorded. A schedule
may replace a response with a fault: an HTTP status (with Retry-After), a
connection reset, a slow answer, a truncated or non-JSON body, or a manifest
body that no longer matches its Docker-Content-Digest.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import httpx

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
    kind: str  # status | reset | slow | truncate | garbage | corrupt
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    forward: bool = False  # send the request upstream first (the fault hits the answer only)


@dataclass
class Recorded:
    method: str
    path: str
    status: int | None
    fault: str | None
    at: float


Schedule = Callable[[str, str, int], "Fault | None"]  # (method, path, request number) -> fault


@dataclass
class RecordingProxy:
    upstream: str
    schedule: Schedule | None = None
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

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
        client = httpx.Client(timeout=60, verify=False)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                owner._handle(self, client)

            do_GET = do_HEAD = do_DELETE = do_PUT = do_POST = do_PATCH = _any  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, method: str, path: str, status: int | None, fault: str | None) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, status, fault, time.monotonic()))

    def _handle(self, handler: BaseHTTPRequestHandler, client: httpx.Client) -> None:
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
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)  # an injected fault: the delay *is* the behaviour under test
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = client.request(method, self.upstream + path, headers=headers, content=body or None)
        if fault is not None and fault.kind in ("status", "reset"):
            self._fault_without_upstream(handler, method, path, fault)
            return
        payload = upstream.content
        status = upstream.status_code
        out_headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in HOP_BY_HOP]
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
        self._record(method, path, status, fault.kind if fault else None)
        handler.send_response(status)
        for key, value in out_headers:
            handler.send_header(key, value)
        handler.send_header(
            "Content-Length", str(declared if method != "HEAD" else upstream.headers.get("content-length", "0"))
        )
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
        body = b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
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
