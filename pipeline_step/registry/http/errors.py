"""What a failed exchange means, as tables: transport failures and HTTP answers mapped onto
the tool's exceptions, each with the operator's next step.

The session and the client never build error messages themselves: they call
:func:`transport_failure` or :func:`raise_for_status` with what they were doing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, NoReturn

from pipeline_step.errors import (
    AnswerTooLargeError,
    AuthenticationError,
    DeleteDisabledError,
    RegistryError,
    RegistryProtocolError,
    RegistryServerError,
    RegistryUnreachableError,
    RepositoryNotFoundError,
    Schema1ManifestError,
    TLSVerificationError,
)
from pipeline_step.registry.http.transport import (
    BodyTooLargeError,
    BrokenResponseError,
    ConnectFailedError,
    Response,
    TimedOutError,
    TLSFailedError,
    TLSSettings,
    TransportError,
)
from pipeline_step.support.redact import redact

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SCHEMA1_DETAIL = "unrecognized manifest schema version 1"  # 3.x's 500 for a stored schema1 manifest

# OpenSSL's words for "the peer answered, but not with TLS" (an https:// URL on a plain-HTTP port).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "WRONG VERSION NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")

DELETE_ENABLE_HINT = (
    "enable deletes in the registry's config.yml with `storage: {delete: {enabled: true}}` "
    "(or the environment variable REGISTRY_STORAGE_DELETE_ENABLED=true), then restart the registry"
)
READONLY_HINT = (
    "the registry is in read-only maintenance mode (storage.maintenance.readonly.enabled: true); "
    "run API deletes before switching it to read-only, or switch read-only off and restart it"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a request went, for messages: the registry's URL, TLS settings and timeout."""

    url: str
    host: str
    tls: TLSSettings
    timeout: float
    attempts: int  # the retry policy's total


# -- transport failures ----------------------------------------------------------------


def _tls(exc: TransportError, where: Endpoint, tries: str) -> RegistryError:
    if any(sign in str(exc).upper() for sign in _NOT_TLS):
        return TLSVerificationError(
            f"the registry at {where.host} does not speak TLS",
            hint=f"use --registry http://{where.url.split('://', 1)[1]} for a plain-HTTP registry",
        )
    bundle = where.tls.ca_bundle
    return TLSVerificationError(
        f"cannot verify the TLS certificate of {where.url}" + (f" with the CA bundle {bundle}" if bundle else ""),
        hint=(
            f"{bundle} does not hold the CA that signed the registry's certificate; pass the right one"
            if bundle
            else "pass --ca-bundle FILE with the CA that signed the registry's certificate"
        )
        + " (or --insecure to skip verification, which is not recommended)",
    )


def _timeout(exc: TransportError, where: Endpoint, tries: str) -> RegistryError:
    return RegistryUnreachableError(
        f"the registry at {where.url} did not answer within {where.timeout:g}s{tries}",
        hint="check the registry's load and health, or raise --timeout",
    )


def _connect(exc: TransportError, where: Endpoint, tries: str) -> RegistryError:
    return RegistryUnreachableError(
        f"cannot connect to the registry at {where.url} ({exc}{tries})",
        hint="check --registry and that the registry runs and is reachable from this agent",
    )


def _too_large(exc: TransportError, where: Endpoint, tries: str) -> RegistryError:
    return AnswerTooLargeError(
        f"the registry at {where.host} sent an answer too large to read: {exc}",
        hint="a manifest is at most 4 MiB; nothing that depends on it is deleted",
    )


def _broken(exc: TransportError, where: Endpoint, tries: str) -> RegistryError:
    return RegistryProtocolError(
        f"the connection to {where.url} broke mid-response ({exc}{tries})",
        hint="rerun; if it persists, check the registry's logs and any proxy in between",
    )


# Most specific first: the first class the exception is an instance of decides.
TRANSPORT_ERRORS: tuple[tuple[type[TransportError], Callable[[TransportError, Endpoint, str], RegistryError]], ...] = (
    (TLSFailedError, _tls),
    (BodyTooLargeError, _too_large),
    (TimedOutError, _timeout),
    (ConnectFailedError, _connect),
    (BrokenResponseError, _broken),
)


def transport_failure(exc: TransportError, where: Endpoint, attempts: int) -> RegistryError:
    tries = f", {attempts} attempts" if attempts > 1 else ""
    for kind, build in TRANSPORT_ERRORS:
        if isinstance(exc, kind):
            return build(exc, where, tries)
    return RegistryError(f"request to {where.url} failed: {exc}")


# -- HTTP answers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed answer, decoded: what we tried, the status and the registry's own error words."""

    action: str  # "list the tags of team/app"
    status: int
    code: str | None  # the first error code of the body, e.g. UNSUPPORTED
    text: str | None  # code: message (detail), redacted
    repository: str | None
    deleting: bool
    where: Endpoint

    @property
    def line(self) -> str:
        return f"cannot {self.action}: HTTP {self.status}" + (f" {self.text}" if self.text else "")


def error_entries(response: Response) -> list[dict[str, object]]:
    """The ``errors`` array of a registry error body; empty when there is none."""
    if not response.body:
        return []
    try:
        document = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [entry for entry in errors if isinstance(entry, dict)]


def is_permanent(response: Response) -> bool:
    """A 5xx that says what it is and will say it again: not worth a retry."""
    return response.status == 500 and SCHEMA1_DETAIL.encode() in response.body[:4096]


def error_code(response: Response) -> str | None:
    entries = error_entries(response)
    code = entries[0].get("code") if entries else None
    return str(code) if code else None


def _describe(entries: list[dict[str, object]]) -> tuple[str | None, str | None]:
    """(first error code, a short human text of code/message/detail)."""
    if not entries:
        return None, None
    first = entries[0]
    code = first.get("code")
    message = first.get("message")
    detail = first.get("detail")
    text = str(code or "")
    if message:
        text += f": {message}"
    if detail:
        detail_text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        text += f" ({detail_text[:300]})"
    return (str(code) if code else None), text


def _delete_refused(f: Failure) -> RegistryError:
    if f.code == "UNSUPPORTED":
        return DeleteDisabledError(
            f"the registry at {f.where.host} refuses deletes (405 UNSUPPORTED): storage.delete.enabled is false",
            hint=DELETE_ENABLE_HINT,
        )
    return DeleteDisabledError(f"the registry at {f.where.host} refuses DELETE (405)", hint=READONLY_HINT)


def _tag_sent_as_digest(f: Failure) -> RegistryError:
    return RegistryProtocolError(
        f"{f.line}: a tag was sent where a digest belongs", hint="this is a bug in registry-prune; please report it"
    )


def _unauthorized(f: Failure) -> RegistryError:
    return AuthenticationError(f.line, hint="check the credentials")


def _forbidden(f: Failure) -> RegistryError:
    return AuthenticationError(f.line, hint="the account lacks permission for this; grant it or use another account")


def _unknown_repository(f: Failure) -> RegistryError:
    return RepositoryNotFoundError(
        f"repository {f.repository!r} does not exist on {f.where.host}",
        hint="check the --repo value; `curl URL/v2/_catalog` lists the repositories",
    )


def _schema1(f: Failure) -> RegistryError:
    return Schema1ManifestError(f"{f.action}: the manifest is schema1, which this registry (3.x) cannot read")


def _server(f: Failure) -> RegistryError:
    retried = f.status in RETRY_STATUSES
    return RegistryServerError(
        f"{f.line} (after {f.where.attempts} attempts)" if retried else f.line,
        status=f.status,
        code=f.code,
        detail=f.text,
        hint="check the registry's logs and disk space",
    )


# (matches, build), tried in order; the last rule catches everything else.
STATUS_ERRORS: tuple[tuple[Callable[[Failure], bool], Callable[[Failure], RegistryError]], ...] = (
    (lambda f: f.deleting and f.status == 405, _delete_refused),
    (lambda f: f.deleting and f.status == 400 and f.code == "DIGEST_INVALID", _tag_sent_as_digest),
    (lambda f: f.status == 401, _unauthorized),
    (lambda f: f.status == 403, _forbidden),
    (lambda f: f.status == 404 and f.code == "NAME_UNKNOWN" and f.repository is not None, _unknown_repository),
    (lambda f: f.status == 500 and SCHEMA1_DETAIL in (f.text or ""), _schema1),
    (lambda f: f.status in RETRY_STATUSES or f.status >= 500, _server),
    (lambda f: True, lambda f: RegistryProtocolError(f.line)),
)


def raise_for_status(
    response: Response, action: str, where: Endpoint, *, repository: str | None = None, deleting: bool = False
) -> NoReturn:
    """Raise the exception the table gives for this answer."""
    code, text = _describe(error_entries(response))
    # The registry's (or a proxy's) words may quote our request, Authorization header included.
    failure = Failure(action, response.status, code, redact(text) if text else None, repository, deleting, where)
    for matches, build in STATUS_ERRORS:
        if matches(failure):
            raise build(failure)
    raise AssertionError("the last rule matches every failure")  # pragma: no cover
