"""The executor's backend for the registry API."""

from __future__ import annotations

from pipeline_step.backends.listing import check_unlisted
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

    def remove_ghost(self, repository: str, tag: str) -> bool:
        return False  # through the API a ghost is a 404; only direct mode can repair it

    def tidy(self, repository: str) -> None:
        return None

    def reinstate(self, repository: str, digest: str, manifest: bytes, media_type: str) -> bool:
        self.client.put_manifest(repository, digest, manifest, media_type)
        return True

    def delete(self, step: DeleteStep) -> DeleteResult:
        check_unlisted(step, self.resolve_tag_manifest)
        if step.replacement is not None:
            # A kept referrers index without the entries being deleted: the new index goes under the
            # tag first, so the tag never names nothing; then the old one, now untagged, is deleted.
            self.client.put_manifest(step.repository, step.tags[0], step.replacement, step.media_type)
        try:
            return self.client.delete_manifest(step.repository, step.digest)
        except NotFoundError:
            return DeleteResult.ALREADY_GONE
