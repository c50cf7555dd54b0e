"""A local stand-in for the Jenkins endpoints python-jenkins calls (tests only).

Serves ``/crumbIssuer/api/json``, ``/api/json``, ``/job/.../api/json``,
``/job/.../<n>/api/json``, ``/job/.../<n>/consoleText`` and
``POST /job/.../<n>/submitDescription`` (which, like Jenkins, demands the
crumb and answers with a redirect to the build). Folders are ``job/a/job/b``.
Permalinks such as ``lastFailedBuild`` resolve like Jenkins'. Basic auth is
checked on every request: a wrong user or token gets 401, no credentials get
403 unless ``anonymous_read``. Every request lands in ``.requests``.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.localhttp import LocalServer, Recorded, record, send

USER = "ci-bot"
TOKEN = "CANARY-JENKINS-TOKEN-1234"
CRUMB = "CANARY-CRUMB-5678"
CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class Build:
    number: int
    console: str
    result: str | None = "FAILURE"
    description: str | None = None


@dataclass
class FakeJenkins(LocalServer):
    users: dict[str, str] = field(default_factory=lambda: {USER: TOKEN})
    anonymous_read: bool = False
    crumbs: bool = True
    login_page: bool = False  # answer everything with an HTML page, like an SSO proxy in front of Jenkins
    jobs: dict[str, list[Build]] = field(default_factory=dict)  # full name ("folder/app") -> builds
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_build(self, job: str, number: int, console: str, result: str | None = "FAILURE") -> Build:
        build = Build(number, console, result)
        self.jobs.setdefault(job, []).append(build)
        return build

    def job_url(self, job: str) -> str:
        return self.url + "/" + "".join(f"job/{segment}/" for segment in job.split("/"))

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = record(handler)
        headers, body = request.headers, request.body
        with self._lock:
            self.requests.append(request)
        if self.login_page:
            self._send(handler, 200, "text/html", b"<html><body>Sign in</body></html>")
            return
        denied = self._auth_problem(headers.get("authorization"))
        if denied:
            self._send(handler, denied, "text/html", b"<html><body>Authentication required</body></html>")
            return
        path = urlsplit(handler.path).path
        if path == "/crumbIssuer/api/json" and handler.command == "GET":
            if not self.crumbs:
                self._send(handler, 404, "text/html", b"Not Found")
                return
            crumb = {
                "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": CRUMB,
                "crumbRequestField": CRUMB_FIELD,
            }
            self._json(handler, crumb)
            return
        if path in ("/api/json", "/api/json/") and handler.command == "GET":
            self._json(handler, {"_class": "hudson.model.Hudson", "mode": "NORMAL", "jobs": []})
            return
        job, rest = self._split_job(path)
        if job is None or job not in self.jobs:
            self._send(handler, 404, "text/html", b"Not Found")
            return
        if rest in ("api/json", "") and handler.command == "GET":
            self._json(handler, self._job_info(job))
            return
        number_text, _, action = rest.partition("/")
        build = self._find_build(job, number_text)
        if build is None:
            self._send(handler, 404, "text/html", b"Not Found")
            return
        if action == "consoleText" and handler.command == "GET":
            self._send(handler, 200, "text/plain; charset=utf-8", build.console.encode())
        elif action == "api/json" and handler.command == "GET":
            self._json(handler, self._build_info(job, build))
        elif action == "submitDescription" and handler.command == "POST":
            if self.crumbs and headers.get(CRUMB_FIELD.lower()) != CRUMB:
                self._send(handler, 403, "text/html", b"No valid crumb was included in the request")
                return
            build.description = parse_qs(body.decode()).get("description", [""])[0]
            handler.send_response(302)
            handler.send_header("Location", f"{self.job_url(job)}{build.number}/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif action == "" and handler.command == "GET":
            self._send(handler, 200, "text/html", f"<html>build {build.number}</html>".encode())
        else:
            self._send(handler, 404, "text/html", b"Not Found")

    def _auth_problem(self, header: str | None) -> int | None:
        if header is None:
            return None if self.anonymous_read else 403
        if not header.startswith("Basic "):
            return 401
        user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        return None if self.users.get(user) == token else 401

    @staticmethod
    def _split_job(path: str) -> tuple[str | None, str]:
        parts = path.strip("/").split("/")
        names: list[str] = []
        index = 0
        while index + 1 < len(parts) and parts[index] == "job":
            names.append(unquote(parts[index + 1]))
            index += 2
        if not names:
            return None, ""
        return "/".join(names), "/".join(parts[index:])

    def _find_build(self, job: str, number_text: str) -> Build | None:
        builds = sorted(self.jobs[job], key=lambda b: b.number)
        if number_text.isdigit():
            return next((b for b in builds if b.number == int(number_text)), None)
        chosen = self._permalinks(builds).get(number_text)
        return chosen

    @staticmethod
    def _permalinks(builds: list[Build]) -> dict[str, Build | None]:
        def last(condition: Any) -> Build | None:
            return next((b for b in reversed(builds) if condition(b)), None)

        return {
            "lastBuild": last(lambda b: True),
            "lastCompletedBuild": last(lambda b: b.result is not None),
            "lastFailedBuild": last(lambda b: b.result == "FAILURE"),
            "lastSuccessfulBuild": last(lambda b: b.result in ("SUCCESS", "UNSTABLE")),
            "lastStableBuild": last(lambda b: b.result == "SUCCESS"),
            "lastUnstableBuild": last(lambda b: b.result == "UNSTABLE"),
            "lastUnsuccessfulBuild": last(lambda b: b.result not in (None, "SUCCESS")),
        }

    def _build_info(self, job: str, build: Build) -> dict[str, Any]:
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "number": build.number,
            "url": f"{self.job_url(job)}{build.number}/",
            "result": build.result,
            "building": build.result is None,
            "description": build.description,
            "fullDisplayName": f"{job.replace('/', ' » ')} #{build.number}",
        }

    def _job_info(self, job: str) -> dict[str, Any]:
        builds = sorted(self.jobs[job], key=lambda b: b.number)

        def ref(build: Build | None) -> dict[str, Any] | None:
            return None if build is None else {"number": build.number, "url": f"{self.job_url(job)}{build.number}/"}

        info: dict[str, Any] = {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "name": job.rsplit("/", maxsplit=1)[-1],
            "fullName": job,
            "url": self.job_url(job),
            "builds": [ref(b) for b in reversed(builds)],
        }
        info.update({name: ref(build) for name, build in self._permalinks(builds).items()})
        return info

    def _json(self, handler: BaseHTTPRequestHandler, data: Any) -> None:
        self._send(handler, 200, "application/json;charset=utf-8", json.dumps(data).encode())

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        challenge = {"WWW-Authenticate": 'Basic realm="Jenkins"'} if status == 401 else None
        send(handler, status, content_type, body, challenge)
