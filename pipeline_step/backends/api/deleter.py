"""The executor's backend for the registry API.

On distribution 2.8 a manifest is deleted by digest, which removes every tag on
it. On 3.x the planned tags are deleted one by one first (DELETE by tag), so a
tag the registry's list did not show is never lost, and the DELETE by digest
that follows scans only the tags left.
"""

from __future__ import annotations

from pipeline_step.backends.listing import check_unlisted
from pipeline_step.errors import DeleteDisabledError, NotFoundError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.model import DeleteResult, RegistryLine


class ApiDeleter:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._line: RegistryLine | None = None

    def registry_line(self, repository: str) -> RegistryLine:
        """2.8 or 3.x, asked once (harmlessly, by a GET) and remembered."""
        if self._line is None:
            self._line = self.client.line(repository)
        return self._line

    def check_delete_enabled(self, repository: str) -> None:
        try:
            self.client.check_delete_enabled(repository)
        except DeleteDisabledError as exc:
            # distribution 3.0.0 deletes tags even with deletes disabled: a misconfiguration to name, not to use.
            if self.registry_line(repository).name != "3.x":
                raise
            try:
                deletes_tags = self.client.deletes_tags(repository)
            except DeleteDisabledError:
                raise exc from None
            if deletes_tags:
                raise DeleteDisabledError(
                    f"{exc.message}, yet it deletes single tags anyway (distribution 3.0.0 ignores "
                    "storage.delete.enabled for tag DELETEs): a misconfiguration, so nothing is deleted",
                    hint=f"{exc.hint}; and upgrade the registry to 3.1.1 or later, which honours it",
                ) from None
            raise

    def untags(self, repository: str) -> bool:
        """Whether planned tags are deleted one by one first: on registries that can (3.x, which
        every release of that line does). Known from a GET, so a dry run asks the same."""
        return self.registry_line(repository).name == "3.x"

    def untag(self, repository: str, tag: str) -> DeleteResult:
        return self.client.delete_tag(repository, tag)

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
