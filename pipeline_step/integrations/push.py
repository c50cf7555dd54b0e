"""Retry the failed push, then prove the image on the registry is whole.

The push is the operator's own command (``docker push``, ``skopeo copy``...),
retried a bounded number of times with backoff. A push that "succeeds" is then
verified: its manifest, every child of an index, and every blob are read back
from the registry. This catches a layer the client skipped because a stale
blob cache said it existed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from pipeline_step.errors import NotFoundError, RegistryError
from pipeline_step.integrations.classify import Category, classify_text
from pipeline_step.integrations.shell import CommandResult, run_command
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.reference import ImageRef


@dataclass(frozen=True, slots=True)
class PushAttempt:
    number: int
    exit_code: int
    seconds: float
    tail: str
    category: str


@dataclass
class VerifyResult:
    ok: bool
    checked_blobs: int = 0
    problems: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # blob digests whose data could not be read


@dataclass
class PushResult:
    attempts: list[PushAttempt] = field(default_factory=list)
    succeeded: bool = False
    verify: VerifyResult | None = None
    gave_up: str | None = None


def run_push(
    command: str,
    *,
    attempts: int = 3,
    backoff: float = 5.0,
    timeout: float = 3600.0,
    echo: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Run ``command`` until it exits 0, at most ``attempts`` times, backing off between tries."""
    result = PushResult()
    for number in range(1, attempts + 1):
        echo(f"push attempt {number}/{attempts}: $ {command}")
        outcome: CommandResult = run_command(command, timeout=timeout, echo=lambda line: echo(f"push: {line}"))
        category = Category.UNKNOWN if outcome.ok else classify_text(outcome.output).category
        result.attempts.append(PushAttempt(number, outcome.exit_code, outcome.seconds, outcome.tail(), category.value))
        if outcome.ok:
            result.succeeded = True
            return result
        if category in (Category.AUTH, Category.AGENT_DISK_FULL):
            # Retrying cannot fix these; say so instead of burning the attempts.
            result.gave_up = f"the push failed with {category.value}; retrying cannot fix that"
            return result
        if number < attempts:
            sleep(backoff * number)
    return result


def verify_image(client: RegistryClient, image: ImageRef) -> VerifyResult:
    """Read back the manifest, index children and every blob; any miss fails verification."""
    result = VerifyResult(ok=True)
    try:
        top = client.get_manifest(image.repository, image.reference).manifest
    except RegistryError as exc:
        return VerifyResult(ok=False, problems=[f"manifest {image}: {exc}"])
    manifests = [top]
    for child in top.children:
        try:
            manifests.append(client.get_manifest(image.repository, child.digest).manifest)
        except RegistryError as exc:
            result.problems.append(f"child manifest {child.digest}: {exc}")
    seen: set[str] = set()
    for manifest in manifests:
        for blob in manifest.blobs():
            if blob.digest in seen:
                continue
            seen.add(blob.digest)
            try:
                if not client.blob_readable(image.repository, blob.digest):
                    result.problems.append(f"blob {blob.digest} cannot be read")
                    result.unreadable.append(blob.digest)
            except (NotFoundError, RegistryError) as exc:
                result.problems.append(f"blob {blob.digest}: {exc}")
    result.checked_blobs = len(seen)
    result.ok = not result.problems
    return result


def verify_replicas(clients: list[RegistryClient], image: ImageRef) -> VerifyResult:
    """``verify_image`` through every replica's URL (the first is the registry itself).

    A replica that was not restarted after GC keeps a blob cache that answers
    HEAD 200 for blobs whose data is gone: a push through it skips those
    layers. Reading the data through each replica catches it, and a HEAD on
    each unreadable blob tells a stale cache (HEAD says present) from a
    missing blob.
    """
    if len(clients) == 1:
        return verify_image(clients[0], image)
    combined = VerifyResult(ok=True)
    for client in clients:
        result = verify_image(client, image)
        combined.checked_blobs += result.checked_blobs
        if result.ok:
            continue
        stale = []
        for digest in result.unreadable:
            try:
                if client.blob_exists(image.repository, digest):
                    stale.append(digest)
            except RegistryError:
                pass
        if stale:
            more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
            combined.problems.append(
                f"replica {client.url} is stale: it answers HEAD 200 for blob {stale[0]}{more} whose data is gone "
                "(its blob cache outlived garbage collection): restart it, and give its restart command to "
                "--restart-cmd"
            )
        combined.problems.extend(f"{client.url}: {problem}" for problem in result.problems)
        combined.unreadable.extend(d for d in result.unreadable if d not in combined.unreadable)
    combined.ok = not combined.problems
    return combined
