"""Read a build's console and annotate builds through python-jenkins.

python-jenkins fetches ``crumbIssuer/api/json`` itself and adds the crumb to
every request it sends, including the POST made here for descriptions (its
1.8 API has no call for that, so we go through ``jenkins_open``). The API
token is a secret: it is registered for redaction, and no error raised here
carries python-jenkins' or requests' own message text, which can quote URLs
and response bodies.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import quote, urlsplit

import jenkins
import requests

from pipeline_step.errors import ExitCode, PruneError, UsageError
from pipeline_step.support.redact import redact, register_secret

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
PERMALINKS = (
    "lastBuild",
    "lastCompletedBuild",
    "lastFailedBuild",
    "lastSuccessfulBuild",
    "lastStableBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
)
_BUILD_REF = re.compile(r"^(?P<job>[^#]+)#(?P<number>\d+|[A-Za-z]+)$")
_STATUS_IN_MESSAGE = re.compile(r"\[(\d{3})\]")  # python-jenkins: "Possibly authentication failed [401]: ..."
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")

T = TypeVar("T")


class JenkinsError(PruneError):
    """Jenkins unreachable, refusing the credentials, or missing the job or build."""

    exit_code = ExitCode.REGISTRY


@dataclass(frozen=True, slots=True)
class BuildRef:
    """A build: the job's full name (folders joined by ``/``) and a number or permalink."""

    job: str
    number: int | str  # 42, or a permalink such as "lastFailedBuild"

    def __str__(self) -> str:
        return f"{self.job}#{self.number}"


def parse_build_ref(text: str) -> BuildRef:
    """``"folder/job#42"`` or ``"folder/job#lastFailedBuild"`` -> BuildRef."""
    match = _BUILD_REF.match(text.strip())
    example = "e.g. team/app#42 or team/app#lastFailedBuild"
    if not match:
        raise UsageError(f"{text!r} is not a build; write JOB#NUMBER", hint=example)
    job = match.group("job").strip().strip("/")
    segments = job.split("/")
    if not job or any(not segment.strip() for segment in segments):
        raise UsageError(f"{text!r} has an empty job name or folder", hint=example)
    if segments[0] == "job" and len(segments) > 1:
        raise UsageError(
            f"{text!r} looks like a URL path; write the job's full name",
            hint="folders joined by /, e.g. team/app#42 for .../job/team/job/app/42/",
        )
    number = match.group("number")
    if number.isdigit():
        if int(number) < 1:
            raise UsageError(f"{text!r}: build numbers start at 1", hint=example)
        return BuildRef(job, int(number))
    canonical = {link.lower(): link for link in PERMALINKS}.get(number.lower())
    if canonical is None:
        raise UsageError(
            f"{text!r}: unknown permalink {number!r}", hint=f"use a number or one of {', '.join(PERMALINKS)}"
        )
    return BuildRef(job, canonical)


def current_build(environ: Mapping[str, str] | None = None) -> BuildRef | None:
    """The build this process runs in, from Jenkins' JOB_NAME and BUILD_NUMBER."""
    env = os.environ if environ is None else environ
    job, number = env.get("JOB_NAME"), env.get("BUILD_NUMBER", "")
    if not job or not number.isdigit():
        return None
    return BuildRef(job, int(number))


@dataclass(frozen=True, slots=True)
class BuildInfo:
    job: str
    number: int
    url: str | None
    result: str | None  # SUCCESS, FAILURE, ABORTED...; None while running
    building: bool
    description: str | None


class JenkinsClient:
    """A python-jenkins connection with errors turned into :class:`JenkinsError`."""

    def __init__(
        self, url: str, user: str | None = None, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        parts = urlsplit(url)
        register_secret(parts.password)
        register_secret(token)
        if user and token:
            register_secret(base64.b64encode(f"{user}:{token}".encode()).decode())
        try:
            port = parts.port
        except ValueError:
            port = None
            parts = parts._replace(scheme="")  # refused just below
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"the Jenkins URL {redact(url)!r} is not an http(s) URL", hint="e.g. https://ci.example/")
        host = parts.hostname + (f":{port}" if port else "")
        self.url = f"{parts.scheme}://{host}{parts.path.rstrip('/')}/"  # for messages: no user:password
        self.user = user
        self._server: Any = jenkins.Jenkins(url, username=user, password=token, timeout=timeout)
        self._timeout = timeout

    def console_text(self, job: str, number: int | str) -> str:
        """The build's whole console (``consoleText``); a permalink works as ``number``."""
        ref = BuildRef(job, number)
        text: str = self._call(lambda: self._server.get_build_console_output(job, number), ref, "read the console of")
        return text

    def build(self, job: str, number: int | str) -> BuildInfo:
        ref = BuildRef(job, number)
        data: dict[str, Any] = self._call(lambda: self._server.get_build_info(job, number), ref, "read")
        return BuildInfo(
            job=job,
            number=int(data.get("number", number if isinstance(number, int) else 0)),
            url=data.get("url"),
            result=data.get("result"),
            building=bool(data.get("building", False)),
            description=data.get("description"),
        )

    def resolve(self, ref: BuildRef) -> BuildRef:
        """Turn a permalink (``lastFailedBuild``) into the build number it points at now."""
        if isinstance(ref.number, int):
            return ref
        info: dict[str, Any] = self._call(lambda: self._server.get_job_info(ref.job), ref, "read the job of")
        target = info.get(str(ref.number))
        if not isinstance(target, dict) or not isinstance(target.get("number"), int):
            raise JenkinsError(
                f"job {ref.job!r} has no {ref.number} on {self.url}",
                hint="pick a build number, or check that the job has such a build",
            )
        return BuildRef(ref.job, target["number"])

    def set_description(self, job: str, number: int | str, text: str) -> None:
        """Set the build's description (HTML allowed by Jenkins' markup formatter)."""
        ref = BuildRef(job, number)
        folders = job.strip("/").split("/")
        path = "".join(f"job/{quote(segment, safe='')}/" for segment in folders)
        url = f"{self._server.server}{path}{quote(str(number), safe='')}/submitDescription"
        request = requests.Request("POST", url, data={"description": text})
        self._call(lambda: self._server.jenkins_open(request), ref, "describe")

    def _call(self, operation: Callable[[], T], ref: BuildRef, verb: str) -> T:
        try:
            return operation()
        except jenkins.NotFoundException:
            raise self._not_found(ref) from None
        except jenkins.TimeoutException:
            raise JenkinsError(
                f"Jenkins at {self.url} did not answer within {self._timeout:g}s",
                hint="check that Jenkins is up and reachable from here",
            ) from None
        except jenkins.JenkinsException as exc:
            raise self._from_message(str(exc), ref, verb) from None
        except requests.exceptions.HTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            raise JenkinsError(
                f"Jenkins at {self.url} answered HTTP {status} when asked to {verb} {ref}",
                hint="check the Jenkins URL and that the user may do this",
            ) from None
        except requests.exceptions.RequestException as exc:
            cause = _ERRNO.search(str(exc))
            detail = cause.group(0).strip() if cause else type(exc).__name__
            raise JenkinsError(
                f"cannot reach Jenkins at {self.url}: {redact(detail)}",
                hint="check --jenkins-url and that this agent can reach Jenkins",
            ) from None
        except ValueError:  # python-jenkins' JSON parsing
            raise JenkinsError(
                f"Jenkins at {self.url} answered something that is not JSON when asked to {verb} {ref}",
                hint="check that --jenkins-url is the Jenkins root URL, not a job or a proxy login page",
            ) from None

    def _not_found(self, ref: BuildRef) -> JenkinsError:
        return JenkinsError(
            f"Jenkins at {self.url} has no build {ref}",
            hint="give the job's full name with folders joined by / and an existing build number",
        )

    def _from_message(self, message: str, ref: BuildRef, verb: str) -> JenkinsError:
        status = _STATUS_IN_MESSAGE.search(message)
        code = int(status.group(1)) if status else None
        if code == 401:
            return JenkinsError(
                f"Jenkins at {self.url} refused the credentials of {self.user or 'anonymous'} (HTTP 401)",
                hint="check --jenkins-user and the API token in the variable named by --jenkins-token-env",
            )
        if code == 403:
            return JenkinsError(
                f"Jenkins at {self.url} forbids {self.user or 'anonymous'} to {verb} {ref} (HTTP 403)",
                hint="the user needs Job/Read, and Run/Update to set descriptions; "
                "without --jenkins-user Jenkins is read anonymously",
            )
        if code is not None:
            return JenkinsError(
                f"Jenkins at {self.url} answered HTTP {code} when asked to {verb} {ref}",
                hint="look at the Jenkins log; retry later",
            )
        if "does not exist" in message:
            return self._not_found(ref)
        return JenkinsError(
            f"Jenkins at {self.url} failed to {verb} {ref}: {redact(message.splitlines()[0][:200])}",
            hint="check --jenkins-url and the job name",
        )
