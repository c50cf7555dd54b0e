"""A local stand-in for Slack: an incoming webhook and the Web API's chat.postMessage (tests only).

Use it as a context manager; every request is recorded in ``.requests`` with
its method, path, headers and body, so tests assert on what the real slack-sdk
sent. ``rate_limited`` answers that many requests with 429 first.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/hook/T000/B000/CANARYSECRETWEBHOOK"
BOT_TOKEN = "xoxb-CANARY-SLACK-BOT-TOKEN"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeSlack:
    webhook_path: str = WEBHOOK_PATH
    token: str = BOT_TOKEN
    rate_limited: int = 0  # answer the first N requests with 429
    retry_after: str = "0"
    api_error: str | None = None  # chat.postMessage answers ok=false with this error
    webhook_status: int = 200
    webhook_body: str = "ok"
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> FakeSlack:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                owner._handle(self)

            def do_GET(self) -> None:
                owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def posts(self) -> list[Any]:
        """The JSON bodies of every POST, in order."""
        return [r.json() for r in self.requests if r.method == "POST" and r.body.startswith(b"{")]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Recorded(handler.command, handler.path, headers, body))
            number = len(self.requests)
        if number <= self.rate_limited:
            self._send(handler, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": self.retry_after})
        elif handler.path == self.webhook_path and handler.command == "POST":
            self._send_text(handler, self.webhook_status, self.webhook_body)
        elif handler.path == "/api/chat.postMessage" and handler.command == "POST":
            self._post_message(handler, headers, body)
        elif handler.path.startswith("/api/"):
            self._send(handler, 200, {"ok": False, "error": "unknown_method"})
        else:
            self._send_text(handler, 404, "no_service")

    def _post_message(self, handler: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes) -> None:
        if headers.get("authorization") != f"Bearer {self.token}":
            self._send(handler, 200, {"ok": False, "error": "invalid_auth"})
            return
        if self.api_error:
            self._send(handler, 200, {"ok": False, "error": self.api_error})
            return
        payload = json.loads(body or b"{}")
        message = {"type": "message", "text": payload.get("text"), "blocks": payload.get("blocks"), "ts": "1.000100"}
        self._send(handler, 200, {"ok": True, "channel": "C0CANARY01", "ts": "1.000100", "message": message})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _send_text(handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
        body = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
