"""Manifests an earlier run left behind: their tags deleted, their own DELETE never done.

On registries that delete single tags (3.x) a prune removes the planned tags first and the
manifest after. A run stopped between the two, or a manifest DELETE that failed, leaves an
untagged manifest that no tag list shows any more; the undo log still names it. A rerun finishes
it, unless something it can see now depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import Action, Decision, DeleteStep, Phase, RepositoryPlan
from pipeline_step.registry.mediatypes import INDEX_TYPES
from pipeline_step.support.units import plural


@dataclass(frozen=True, slots=True)
class Leftover:
    repository: str
    digest: str
    media_type: str
    tags: tuple[str, ...]  # the tags the earlier run deleted
    child: bool = False  # a child of an index that run deleted (goes after every index)


def referenced(inventory: RepositoryInventory) -> set[str]:
    """Every digest a tag names now, directly or as a child of a tagged index."""
    found = inventory.digests()
    for manifest in inventory.manifests.values():
        found.update(child.digest for child in manifest.children)
    return found


def plan_leftovers(plan: RepositoryPlan, inventory: RepositoryInventory, leftovers: list[Leftover]) -> None:
    """Append a DELETE for each leftover nothing depends on; name the ones kept."""
    if not leftovers:
        return
    if plan.blocked:
        plan.notes.append(f"{plural(len(leftovers), 'manifest')} left by an earlier run wait: {plan.blocked}")
        return
    in_use = referenced(inventory)
    planned = {step.digest for step in plan.steps}
    for leftover in leftovers:
        if leftover.digest in planned:
            continue
        back = [tag for tag in leftover.tags if tag in inventory.tags or tag in inventory.unresolved]
        if leftover.digest in in_use or back:
            why = f"tag {back[0]} is back" if back else "a tag or a tagged index names it now"
            plan.notes.append(f"{leftover.digest}: left by an earlier run, kept: {why}")
            continue
        if leftover.child:
            phase = Phase.ORPHAN_CHILD
        else:
            phase = Phase.INDEX if leftover.media_type in INDEX_TYPES else Phase.IMAGE
        if leftover.child:
            reason = "an earlier run deleted the index that referenced it, and was stopped before this manifest"
        elif leftover.tags:
            reason = (
                f"its tags ({', '.join(leftover.tags)}) were deleted by an earlier run, which did not finish "
                "deleting the manifest"
            )
        else:
            reason = "an earlier run began deleting it and was stopped before it finished"
        plan.decisions.append(Decision(plan.repository, None, leftover.digest, Action.DELETE, reason))
        plan.steps.append(DeleteStep(plan.repository, leftover.digest, (), leftover.media_type, phase, reason))
    plan.steps.sort(key=lambda step: step.phase)  # the executor runs phase by phase
