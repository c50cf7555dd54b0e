"""Exit codes and the exception hierarchy.

Every exception the tool raises on purpose is a :class:`PruneError`. Each one
carries the exit code the CLI returns and a ``hint``: the thing the operator
must do next. Messages never contain secrets; the CLI also passes every line it
prints through :mod:`pipeline_step.support.redact` as a second line of defence.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes. Their meanings are :data:`EXIT_CODES`, the one table the CLI's
    help, the README and the Jenkins library are checked against."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    DELETE_DISABLED = 3
    REGISTRY = 4
    PARTIAL = 5
    LOCKED = 6
    AUDIT_FAILED = 7
    UPGRADE_BLOCKED = 8
    CANNOT_HELP = 10
    PUSH_FAILED = 11
    GC_FAILED = 12
    INTERRUPTED = 130


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "unexpected internal error (a bug: rerun with --debug and report it)",
    ExitCode.USAGE: "bad flags, configuration or input; nothing was changed",
    ExitCode.DELETE_DISABLED: "the registry refuses deletes (storage.delete.enabled is false, or read-only mode)",
    ExitCode.REGISTRY: "registry unreachable, TLS, authentication or protocol error",
    ExitCode.PARTIAL: "partial: some planned deletions failed, or a repository was left alone because one of "
    "its tags could not be resolved; for restore, some images could not be restored. The report lists which",
    ExitCode.LOCKED: "another run holds the registry lock",
    ExitCode.AUDIT_FAILED: "the undo log could not be written (is this agent's disk full?): the run stopped "
    "before its next deletion; the report lists what was deleted",
    ExitCode.UPGRADE_BLOCKED: "usage --upgrade-check: schema1 manifests remain, which registry 3.x cannot read; "
    "the report lists them",
    ExitCode.CANNOT_HELP: "pruning the registry cannot fix this failure",
    ExitCode.PUSH_FAILED: "the push still fails after recovery",
    ExitCode.GC_FAILED: "garbage collection or the restart command failed",
    ExitCode.INTERRUPTED: "interrupted by SIGINT/SIGTERM; the partial report was written",
}


class PruneError(Exception):
    """Base of every deliberate failure. ``hint`` says what to do next."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(PruneError):
    """Bad flags, configuration or input."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A configuration value or flag is invalid; the message names it, e.g. ``policy.keep``."""


class RegistryError(PruneError):
    """The registry could not be used as required."""

    exit_code = ExitCode.REGISTRY


class RegistryUnreachableError(RegistryError):
    """Connection refused, DNS failure, timeout."""


class TLSVerificationError(RegistryError):
    """The registry's certificate could not be verified."""


class AuthenticationError(RegistryError):
    """Credentials missing, wrong, or lacking a permission."""


class RegistryProtocolError(RegistryError):
    """The registry answered something the v2 API does not allow."""


class DigestMismatchError(RegistryProtocolError):
    """A body's digest differs from the one the registry announced."""


class AnswerTooLargeError(RegistryProtocolError):
    """An answer's body is larger than allowed; it was not read."""


class Schema1ManifestError(RegistryProtocolError):
    """A manifest is stored as schema1, which registry 3.x cannot read. A fact the inventory lists,
    not a fault: ``digest`` is known where the registry could still answer it (2.8, direct mode)."""

    def __init__(self, message: str, *, digest: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.digest = digest


class NotFoundError(RegistryError):
    """A manifest or blob the caller asked for does not exist (404)."""


class RepositoryNotFoundError(RegistryError):
    """The registry does not know the repository."""

    exit_code = ExitCode.USAGE


class RegistryServerError(RegistryError):
    """The registry kept answering 5xx or 429 after bounded retries."""

    def __init__(
        self, message: str, *, status: int, code: str | None = None, detail: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.detail = detail


class TagDeleteUnsupportedError(RegistryProtocolError):
    """The registry deletes manifests by digest only (distribution 2.8)."""


class DeleteDisabledError(RegistryError):
    """The registry answered 405 UNSUPPORTED (or is read-only) to a DELETE."""

    exit_code = ExitCode.DELETE_DISABLED


class S3PermissionError(DeleteDisabledError):
    """The S3 credentials may read the registry's bucket but not delete from it (s3:DeleteObject)."""


class LockBusyError(PruneError):
    """Another run holds the registry lock."""

    exit_code = ExitCode.LOCKED


class CommandFailedError(PruneError):
    """An operator-supplied command (GC, restart, push) failed."""

    exit_code = ExitCode.GC_FAILED


class AuditWriteError(PruneError):
    """The audit log (the undo log) could not be written: no further deletion may happen."""

    exit_code = ExitCode.AUDIT_FAILED


class InterruptedRunError(PruneError):
    """SIGINT or SIGTERM arrived; in-flight work was finished first."""

    exit_code = ExitCode.INTERRUPTED
