"""A local stand-in for Slack: an incoming webhook and the Web API's chat.postMessage (tests only).

Use it as a context manager; every request is recorded in ``.requests`` with
its method, path, headers and body, so tests assert on what the real slack-sdk
sent. ``rate_limited`` answers that many requests with 429 first.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.localhttp import LocalServer, Recorded, record, send, send_json

WEBHOOK_PATH = "/hook/T000/B000/CANARYSECRETWEBHOOK"
BOT_TOKEN = "xoxb-CANARY-SLACK-BOT-TOKEN"


@dataclass
class FakeSlack(LocalServer):
    webhook_path: str = WEBHOOK_PATH
    token: str = BOT_TOKEN
    rate_limited: int = 0  # answer the first N requests with 429
    retry_after: str = "0"
    api_error: str | None = None  # chat.postMessage answers ok=false with this error
    webhook_status: int = 200
    webhook_body: str = "ok"
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = record(handler)
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
        if number <= self.rate_limited:
            send_json(handler, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": self.retry_after})
        elif handler.path == self.webhook_path and handler.command == "POST":
            send(handler, self.webhook_status, "text/plain; charset=utf-8", self.webhook_body.encode())
        elif handler.path == "/api/chat.postMessage" and handler.command == "POST":
            self._post_message(handler, request.headers, request.body)
        elif handler.path.startswith("/api/"):
            send_json(handler, 200, {"ok": False, "error": "unknown_method"})
        else:
            send(handler, 404, "text/plain; charset=utf-8", b"no_service")

    def _post_message(self, handler: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes) -> None:
        if headers.get("authorization") != f"Bearer {self.token}":
            send_json(handler, 200, {"ok": False, "error": "invalid_auth"})
            return
        if self.api_error:
            send_json(handler, 200, {"ok": False, "error": self.api_error})
            return
        payload = json.loads(body or b"{}")
        message = {"type": "message", "text": payload.get("text"), "blocks": payload.get("blocks"), "ts": "1.000100"}
        send_json(handler, 200, {"ok": True, "channel": "C0CANARY01", "ts": "1.000100", "message": message})
