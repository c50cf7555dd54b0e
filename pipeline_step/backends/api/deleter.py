"""The executor's backend for the registry API."""

from __future__ import annotations

from pipeline_step.errors import NotFoundError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.model import DeleteResult


class ApiDeleter:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def check_delete_enabled(self, repository: str) -> None:
        self.client.check_delete_enabled(repository)

    def list_tags(self, repository: str) -> list[str]:
        return self.client.tags(repository)

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        head = self.client.head_manifest(repository, tag)
        return head.digest if head is not None else None

    def resolve_tag_manifest(self, repository: str, tag: str) -> tuple[str, bytes] | None:
        try:
            fetched = self.client.get_manifest(repository, tag)
        except NotFoundError:
            return None
        return fetched.manifest.digest, fetched.raw

    def index_children(self, repository: str, digest: str) -> tuple[str, ...]:
        try:
            manifest = self.client.get_manifest(repository, digest).manifest
        except NotFoundError:
            return ()
        return tuple(child.digest for child in manifest.children)

    def manifest_bytes(self, repository: str, digest: str) -> bytes:
        return self.client.get_manifest(repository, digest).raw

    def delete(self, step: DeleteStep) -> DeleteResult:
        try:
            return self.client.delete_manifest(step.repository, step.digest)
        except NotFoundError:
            return DeleteResult.ALREADY_GONE
