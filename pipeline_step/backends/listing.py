"""The one check both deleters make before deleting a referrer that a kept referrers index listed.

The plan rewrites such an index first (a ``REWRITE`` step); if that rewrite failed or
was skipped, deleting the referrer would leave the kept image's index naming a
manifest that is gone, so the deletion fails instead and a rerun plans it again.
"""

from __future__ import annotations

from typing import Callable

from pipeline_step.errors import RegistryError, RegistryProtocolError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.digest import short
from pipeline_step.registry.model import parse_manifest


def check_unlisted(step: DeleteStep, read_tag: Callable[[str, str], tuple[str, bytes] | None]) -> None:
    """Raise unless every index in ``step.unlisted_from`` is gone or no longer lists ``step.digest``.
    ``read_tag(repository, tag)`` gives the tag's digest and verified manifest bytes, or None."""
    for tag in step.unlisted_from:
        found = read_tag(step.repository, tag)
        if found is None:
            continue  # the index is gone: it lists nothing
        digest, body = found
        try:
            listed = {child.digest for child in parse_manifest(body, digest, None).children}
        except RegistryProtocolError:
            listed = {step.digest}  # cannot tell: as if it still lists it
        if step.digest in listed:
            raise RegistryError(
                f"{step.repository}@{short(step.digest)} is still listed in the kept referrers index {tag} "
                "(its rewrite did not happen); not deleted",
                hint="rerun: the plan is recomputed and the index rewritten first",
            )
