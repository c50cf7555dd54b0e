"""The registry's bucket through boto3: listings, reads, batched deletes, conditional writes.

Every botocore failure leaves here as one of the tool's errors, with the
operator's next step and without credentials. Throttling (503 SlowDown) and
5xx answers are retried by botocore's ``standard`` mode (exponential backoff
with jitter); DeleteObjects reports failures per key, and the keys that failed
for a transient reason are sent again, a bounded number of times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from pipeline_step.backends.registry_config import S3Location
from pipeline_step.errors import (
    AnswerTooLargeError,
    AuthenticationError,
    PruneError,
    RegistryError,
    RegistryServerError,
    RegistryUnreachableError,
    S3PermissionError,
    UsageError,
)
from pipeline_step.support.units import plural

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

BATCH = 1000  # DeleteObjects takes at most 1,000 keys
PAGE = 1000  # ListObjectsV2's largest page
ATTEMPTS = 5  # per request, botocore's standard retry mode
BATCH_ATTEMPTS = 4  # per key that DeleteObjects reported as failed for a transient reason
TRANSIENT_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500"})
AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"}
)
CREDENTIALS_HINT = (
    "check storage.s3.accesskey/secretkey in the registry config (or REGISTRY_STORAGE_S3_ACCESSKEY/SECRETKEY), "
    "or the AWS credential chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role"
)
PERMISSION_HINT = (
    "give these credentials s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the registry's bucket"
)


@dataclass(frozen=True, slots=True)
class Listed:
    key: str
    size: int
    modified: datetime
    etag: str  # without quotes; for a single-part upload without SSE-KMS, the MD5 of the content


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    etag: str
    modified: datetime
    server_time: str  # the answer's Date header: the bucket's clock, not ours


class Bucket:
    """One bucket, one boto3 client (thread-safe), and a count of the requests sent."""

    def __init__(self, location: S3Location, *, workers: int = 8, client: S3Client | None = None) -> None:
        self.location = location
        self.name = location.bucket
        self.requests = 0
        self._count_lock = threading.Lock()
        self.client: S3Client = client or self._client(location, workers)
        self.client.meta.events.register("before-send.s3", self._counted)

    @staticmethod
    def _client(location: S3Location, workers: int) -> S3Client:
        session = boto3.session.Session(
            aws_access_key_id=location.access_key,
            aws_secret_access_key=location.secret_key,
            aws_session_token=location.session_token,
            region_name=location.region,
        )
        config = Config(
            retries={"mode": "standard", "max_attempts": ATTEMPTS},
            max_pool_connections=max(10, workers + 2),
            connect_timeout=5,
            read_timeout=30,
            # The s3 driver uses path-style URLs whenever regionendpoint is set (2.8: ForcePathStyle).
            s3={"addressing_style": "path"} if location.endpoint else {},
        )
        return session.client("s3", endpoint_url=location.endpoint, config=config, verify=location.verify_tls)

    def _counted(self, **_: Any) -> None:
        with self._count_lock:
            self.requests += 1

    # -- errors -------------------------------------------------------------------

    def error(self, exc: Exception, action: str) -> PruneError:
        """The tool's error for a botocore failure, naming the bucket, never a credential."""
        where = f"s3://{self.name}"
        endpoint = self.location.endpoint or "AWS S3"
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "NoSuchBucket":
                return UsageError(
                    f"bucket {self.name!r} does not exist at {endpoint}",
                    hint="check storage.s3.bucket (or REGISTRY_STORAGE_S3_BUCKET) and regionendpoint in the "
                    "registry config",
                )
            if code in AUTH_CODES:
                return AuthenticationError(f"{endpoint} refused the S3 credentials ({code}) to {action}",
                                           hint=CREDENTIALS_HINT)  # fmt: skip
            if code in ("AccessDenied", "403") or status == 403:
                return AuthenticationError(f"access denied to {action} in {where}", hint=PERMISSION_HINT)
            if code in TRANSIENT_CODES or status >= 500:
                return RegistryServerError(
                    f"{endpoint} kept failing ({code or status}) to {action} after {plural(ATTEMPTS, 'attempt')}",
                    status=status or 503,
                    code=code,
                    hint="S3 is throttling or failing; rerun later: the plan is recomputed",
                )
            return RegistryError(f"S3 refused to {action} in {where}: {code or status}",
                                 hint="see the S3 server's logs")  # fmt: skip
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
            return UsageError(f"no S3 credentials for {where}", hint=CREDENTIALS_HINT)
        if isinstance(exc, ReadTimeoutError):
            return RegistryUnreachableError(f"{endpoint} did not answer in time to {action}",
                                            hint="check the S3 endpoint's health")  # fmt: skip
        if isinstance(exc, BotoConnectionError):
            return RegistryUnreachableError(
                f"cannot reach the S3 endpoint {endpoint}",
                hint="check storage.s3.regionendpoint in the registry config and that the endpoint is up",
            )
        return RegistryError(f"S3 failed to {action} in {where}: {type(exc).__name__}")

    # -- reads --------------------------------------------------------------------

    def listing(self, prefix: str) -> Iterator[Listed]:
        """Every key under ``prefix``, in key order, 1,000 a page."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": PAGE}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise self.error(exc, f"list {prefix}") from None
            for item in page.get("Contents", ()):
                etag = str(item.get("ETag", "")).strip('"')
                yield Listed(item["Key"], int(item.get("Size", 0)), item["LastModified"], etag)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def prefixes(self, prefix: str) -> list[str]:
        """The "directories" right under ``prefix`` (names without the slash), as the s3 driver's List."""
        found: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "Delimiter": "/", "MaxKeys": PAGE}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise self.error(exc, f"list {prefix}") from None
            found.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def get(self, key: str, *, limit: int) -> Fetched | None:
        """The object's bytes, or None when there is no such key; larger than ``limit`` is refused unread."""
        try:
            answer = self.client.get_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self.error(exc, f"read {key}") from None
        except BotoCoreError as exc:
            raise self.error(exc, f"read {key}") from None
        stream = answer["Body"]
        try:
            if int(answer.get("ContentLength", 0)) > limit:
                raise AnswerTooLargeError(f"{key} is larger than {limit} bytes")
            body = stream.read(limit + 1)
        except BotoCoreError as exc:
            raise self.error(exc, f"read {key}") from None
        finally:
            stream.close()
        if len(body) > limit:
            raise AnswerTooLargeError(f"{key} is larger than {limit} bytes")
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return Fetched(body, str(answer.get("ETag", "")), answer["LastModified"], str(headers.get("date", "")))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self.error(exc, f"read {key}") from None
        except BotoCoreError as exc:
            raise self.error(exc, f"read {key}") from None
        return True

    # -- writes -------------------------------------------------------------------

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` with DeleteObjects, at most 1,000 a request; raise if any key still fails.

        The error names how many failed and the first; a rerun converges
        (deleting a missing key succeeds).
        """
        for start in range(0, len(keys), BATCH):
            batch = list(keys[start : start + BATCH])
            failed = self.delete_batch(batch)
            if failed:
                raise self.batch_error(failed, len(batch))

    def batch_error(self, failed: dict[str, str], sent: int) -> RegistryServerError:
        """The error for keys that DeleteObjects would not delete (``failed``: key -> S3 error code)."""
        key, code = next(iter(failed.items()))
        return RegistryServerError(
            f"DeleteObjects failed for {len(failed)} of {sent} keys in s3://{self.name} (first: {key}: {code})",
            status=503 if code in TRANSIENT_CODES else 500,
            code=code,
            hint="rerun: the plan is recomputed and keys already deleted stay deleted",
        )

    def delete_batch(self, keys: list[str]) -> dict[str, str]:
        """One DeleteObjects of at most 1,000 keys. S3 answers per key: keys that failed for a
        transient reason (SlowDown, InternalError) are sent again with backoff. Returns the keys
        that still failed, with their error codes; raises when the whole request fails, or when
        these credentials may not delete (AccessDenied: fatal)."""
        pending = list(dict.fromkeys(keys))
        lasting: dict[str, str] = {}
        if not pending:
            return lasting
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                answer = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": [{"Key": key} for key in pending], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                error = self.error(exc, f"delete {len(pending)} keys")
                if isinstance(error, AuthenticationError) and "access denied" in error.message:
                    raise S3PermissionError(error.message, hint=PERMISSION_HINT) from None
                raise error from None
            failed = {str(e.get("Key")): str(e.get("Code", "")) for e in answer.get("Errors", ())}
            denied = [key for key, code in failed.items() if code == "AccessDenied"]
            if denied:
                raise S3PermissionError(f"access denied to delete {denied[0]} in s3://{self.name}",
                                        hint=PERMISSION_HINT)  # fmt: skip
            lasting.update((key, code) for key, code in failed.items() if code not in TRANSIENT_CODES)
            pending = [key for key in pending if key in failed and key not in lasting]
            if not pending:
                break
            if attempt == BATCH_ATTEMPTS:
                lasting.update((key, failed[key]) for key in pending)
                break
            log.info("DeleteObjects: %d keys failed transiently (attempt %d); retrying", len(pending), attempt)
            time.sleep(min(0.2 * 2**attempt, 4.0))
        return lasting

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str | None:
        """Write ``key``; with a condition, None when it does not hold (412). Returns the new ETag."""
        kwargs: dict[str, Any] = {"Bucket": self.name, "Key": key, "Body": body}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            answer = self.client.put_object(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise self.error(exc, f"write {key}") from None
        except BotoCoreError as exc:
            raise self.error(exc, f"write {key}") from None
        return str(answer.get("ETag", ""))

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete one key; with ``if_match``, only that version of it (False when it changed)."""
        kwargs: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            self.client.delete_object(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "NoSuchKey", "404"):
                return False
            raise self.error(exc, f"delete {key}") from None
        except BotoCoreError as exc:
            raise self.error(exc, f"delete {key}") from None
        return True

    def close(self) -> None:
        self.client.close()
