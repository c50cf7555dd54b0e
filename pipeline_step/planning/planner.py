"""The planner: a pure function from an inventory and a policy to decisions.

Rules, in order:

1. A tag matching a ``protect`` pattern is kept.
2. A tag not matching ``match``, or matching ``exclude``, is kept.
3. The remaining *candidates* are ordered newest first (semver or created).
   A candidate that cannot be ordered (not a version; unknown creation time)
   is kept. The newest ``keep`` are kept.
4. With ``older_than``, a candidate whose age is unknown, or who is younger,
   is kept.
5. A DELETE by digest removes every tag on that digest, so a digest is deleted
   only if *every* tag on it is deletable: a candidate that shares its digest
   with a kept tag is kept ("shares digest with <tag>").
6. A manifest referenced by a kept index (at any depth) is never deleted.
7. Untagged children of a deleted index are deleted with it unless something
   kept still references them, so the space is really freed.
8. If any tag of the repository could not be resolved, nothing in it is
   deleted: that tag might share a digest with a deletion.
9. A ghost tag (direct mode: a tag directory left without its link by an
   interrupted delete) is removed, so the registry stops listing it.
10. Attachments (signatures, attestations, SBOMs, referrers) are never
    candidates and never count toward ``keep``: they follow their subject, after
    it (planning/attachments.py).

Every decision carries its reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline_step.planning import attachments
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.steps import Action, Decision, DeleteStep, Orphan, Phase
from pipeline_step.policy.config import RetentionPolicy
from pipeline_step.policy.versions import version_key
from pipeline_step.support.units import format_duration, plural

__all__ = [
    "GHOST_REASON",
    "SCHEMA1_REASON",
    "Action",
    "Decision",
    "DeleteStep",
    "Orphan",
    "Phase",
    "RepositoryPlan",
    "plan_repository",
    "shared_time_note",
    "tie_break",
]

SCHEMA1_REASON = (
    "schema1 manifest: cannot be read by registry 3.x; blocks its garbage collection "
    "(re-push the image as schema2/OCI, or delete the tag, before upgrading)"
)
GHOST_REASON = "ghost tag: listed, but it resolves to nothing (left by an interrupted delete); its directory is removed"


@dataclass(slots=True)
class RepositoryPlan:
    repository: str
    policy: RetentionPolicy
    decisions: list[Decision] = field(default_factory=list)
    steps: list[DeleteStep] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # ghost tags to remove
    notes: list[str] = field(default_factory=list)  # what the operator should know about this plan
    blocked: str | None = None  # why nothing is deleted here, when that was forced
    orphans: list[Orphan] = field(default_factory=list)  # attachments whose subject is gone
    attachments_kept: dict[str, int] = field(default_factory=dict)  # kind -> attachments kept with their subject

    @property
    def deletions(self) -> list[Decision]:
        return [d for d in self.decisions if d.action is Action.DELETE]

    @property
    def keeps(self) -> list[Decision]:
        return [d for d in self.decisions if d.action is Action.KEEP]

    @property
    def deleting(self) -> list[DeleteStep]:
        """The steps that delete a manifest (a rewrite keeps its tag)."""
        return [step for step in self.steps if step.phase is not Phase.REWRITE]


def _order_candidates(
    candidates: list[str], inventory: RepositoryInventory, policy: RetentionPolicy
) -> tuple[list[str], dict[str, str]]:
    """Newest first, plus the candidates that cannot be ordered (with why)."""
    unordered: dict[str, str] = {}
    if policy.order == "semver":
        keyed = []
        for tag in candidates:
            key = version_key(tag)
            if key is None:
                unordered[tag] = "not a semantic version, so it cannot be ordered by semver"
            else:
                keyed.append((key, tag))
        keyed.sort(reverse=True)
        return [tag for _, tag in keyed], unordered
    dated: list[tuple[datetime, TieBreak, str]] = []
    for tag in candidates:
        created = inventory.created.get(inventory.tags[tag])
        if created is None:
            unordered[tag] = "creation time unknown, so it cannot be ordered by age"
        else:
            dated.append((created, tie_break(tag), tag))
    # Equal times (reproducible builds: SOURCE_DATE_EPOCH) tell nothing apart: then version, then name.
    dated.sort(reverse=True)
    return [tag for _, _, tag in dated], unordered


TieBreak = tuple[int, Any]


def tie_break(tag: str) -> TieBreak:
    """Orders tags that share a creation time: versions by version, others by natural name order."""
    key = version_key(tag)
    if key is not None:
        return (1, key)
    return (0, tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _PARTS.findall(tag)))


_PARTS = re.compile(r"\d+|\D+")


def shared_time_note(ordered: list[str], inventory: RepositoryInventory) -> str | None:
    """Say so when most ordered candidates share one creation time: the order is by version then."""
    if len(ordered) < 3:
        return None
    times = Counter(inventory.created.get(inventory.tags[tag]) for tag in ordered)
    moment, count = times.most_common(1)[0]
    if moment is None or count * 2 <= len(ordered):
        return None
    return (
        f"{count} of {len(ordered)} candidates in {inventory.name} share one creation time ({moment.isoformat()}), "
        "as reproducible builds make them: they are ordered by version, then by tag name"
    )


def plan_repository(inventory: RepositoryInventory, policy: RetentionPolicy, now: datetime) -> RepositoryPlan:
    """Decide every tag of one repository. Deterministic for the same input."""
    repo = inventory.name
    plan = RepositoryPlan(repo, policy)
    keep_reason: dict[str, str] = {}
    delete_reason: dict[str, str] = {}
    candidates: list[str] = []

    for tag in sorted(inventory.unresolved):
        plan.decisions.append(
            Decision(repo, tag, None, Action.KEEP, f"could not be resolved: {inventory.unresolved[tag]}")
        )
    for tag in sorted(inventory.schema1):
        # Never a candidate: nothing it references can be known. It cannot share a digest with one
        # either: a candidate's manifest is schema2 or OCI, so it does not block the repository.
        plan.decisions.append(Decision(repo, tag, inventory.schema1[tag], Action.KEEP, SCHEMA1_REASON))
    found = attachments.find_attachments(inventory, policy)
    for tag in sorted(inventory.tags):
        if tag in found.governed:
            continue  # an attachment's tag: decided by its subject, below
        reason = found.riders.get(tag) or policy.not_candidate_reason(tag)
        if reason is None:
            candidates.append(tag)
        else:
            keep_reason[tag] = reason

    ordered, unordered = _order_candidates(candidates, inventory, policy)
    keep_reason.update(unordered)
    if policy.order == "created":
        note = shared_time_note(ordered, inventory)
        if note is not None:
            plan.notes.append(note)
    order_name = "version" if policy.order == "semver" else "creation time"
    for rank, tag in enumerate(ordered, start=1):
        if rank <= policy.keep:
            keep_reason[tag] = f"among the newest {policy.keep} by {order_name} (#{rank})"
            continue
        beyond = f"beyond the newest {policy.keep} by {order_name} (#{rank})"
        if policy.older_than is None:
            delete_reason[tag] = beyond
            continue
        created = inventory.created.get(inventory.tags[tag])
        if created is None:
            keep_reason[tag] = "age unknown, so it is kept (older_than is set)"
            continue
        age = now - created
        if age < policy.older_than:
            keep_reason[tag] = f"younger than {format_duration(policy.older_than)} ({format_duration(age)} old)"
        else:
            delete_reason[tag] = (
                f"{beyond} and older than {format_duration(policy.older_than)} ({format_duration(age)} old)"
            )

    # Rule 5: a digest survives if any tag on it is kept.
    kept_digest_owner: dict[str, str] = {}
    for tag in sorted(keep_reason):
        kept_digest_owner.setdefault(inventory.tags[tag], tag)
    for tag, schema1_digest in sorted(inventory.schema1.items()):
        if schema1_digest is not None:  # a registry that mislabels a manifest as schema1 still cannot lose it
            kept_digest_owner.setdefault(schema1_digest, tag)
    # Rule 6: everything a kept index references survives too, at any depth.
    kept_by_index: dict[str, str] = {}
    stack = list(kept_digest_owner.items())
    while stack:
        digest, owner = stack.pop()
        manifest = inventory.manifests.get(digest)
        if manifest is None or not manifest.is_index:
            continue
        for child in manifest.children:
            if child.digest not in kept_digest_owner and child.digest not in kept_by_index:
                kept_by_index[child.digest] = owner
                stack.append((child.digest, owner))

    for tag in sorted(delete_reason):
        digest = inventory.tags[tag]
        if digest in kept_digest_owner:
            keep_reason[tag] = f"shares digest with {kept_digest_owner[digest]}"
            del delete_reason[tag]
        elif digest in kept_by_index:
            keep_reason[tag] = f"referenced by kept index {kept_by_index[digest]}"
            del delete_reason[tag]

    if inventory.unchecked is not None:
        plan.notes.append(f"{repo}: the registry's tag list was not compared with the storage ({inventory.unchecked})")
    blocking = sorted(inventory.unresolved)
    if inventory.hidden and delete_reason:
        names = sorted(inventory.hidden)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        plan.blocked = (
            f"nothing deleted in {repo}: the registry's tag list hides {plural(len(names), 'tag')} that its storage "
            f"holds ({shown}); a DELETE through the API would remove them unseen with any digest they share "
            "(distribution #4891). Upgrade the registry past 3.1.1 (or rename the tags), or pass --no-cross-check "
            "to prune from the storage alone, which sees them"
        )
        for tag in list(delete_reason):
            keep_reason[tag] = plan.blocked
            del delete_reason[tag]
    elif blocking and delete_reason:
        why = inventory.unresolved[blocking[0]].split(" (", 1)[0][:300]
        plan.blocked = (
            f"nothing deleted in {repo}: tag {blocking[0]} could not be resolved ({why}), "
            "so a shared digest cannot be ruled out"
        )
        for tag in list(delete_reason):
            keep_reason[tag] = plan.blocked
            del delete_reason[tag]

    for tag in sorted(inventory.tags):
        if tag in found.governed:
            continue
        digest = inventory.tags[tag]
        if tag in delete_reason:
            plan.decisions.append(Decision(repo, tag, digest, Action.DELETE, delete_reason[tag]))
        else:
            plan.decisions.append(Decision(repo, tag, digest, Action.KEEP, keep_reason[tag]))

    plan.steps = _delete_steps(inventory, delete_reason, kept_digest_owner, kept_by_index)
    attachments.plan_attachments(plan, attachments.context(inventory, policy, found, kept_digest_owner, kept_by_index))
    # Rule 9: a ghost tag names no manifest, so it protects nothing; removing it only repairs the listing.
    for tag in sorted(inventory.ghosts):
        plan.repairs.append(tag)
        plan.decisions.append(Decision(repo, tag, None, Action.REPAIR, GHOST_REASON))
    for step in plan.steps:
        if step.phase is Phase.ORPHAN_CHILD:
            plan.decisions.append(Decision(repo, None, step.digest, Action.DELETE, step.reason))
        elif step.phase is not Phase.REWRITE and not step.tags:
            plan.decisions.append(
                Decision(repo, None, step.digest, Action.DELETE, step.reason, step.attachment, step.subject)
            )
    return plan


def _delete_steps(
    inventory: RepositoryInventory,
    delete_reason: dict[str, str],
    kept_digest_owner: dict[str, str],
    kept_by_index: dict[str, str],
) -> list[DeleteStep]:
    repo = inventory.name
    tags_on: dict[str, list[str]] = {}
    for tag in sorted(delete_reason):
        tags_on.setdefault(inventory.tags[tag], []).append(tag)
    steps: list[DeleteStep] = []
    for digest, tags in tags_on.items():
        manifest = inventory.manifests[digest]
        phase = Phase.INDEX if manifest.is_index else Phase.IMAGE
        steps.append(DeleteStep(repo, digest, tuple(tags), manifest.media_type, phase, delete_reason[tags[0]]))

    # Rule 7: children of deleted indexes that nothing kept refers to.
    tagged = set(inventory.tags.values())
    orphans: dict[str, str] = {}
    stack = [(digest, tags[0]) for digest, tags in tags_on.items() if inventory.manifests[digest].is_index]
    while stack:
        digest, owner = stack.pop()
        parent = inventory.manifests.get(digest)
        if parent is None or not parent.is_index:
            continue
        for child in parent.children:
            d = child.digest
            if d in kept_digest_owner or d in kept_by_index or d in tagged or d in orphans:
                continue
            orphans[d] = owner
            stack.append((d, owner))
    for digest in sorted(orphans):
        orphan = inventory.manifests.get(digest)
        steps.append(
            DeleteStep(
                repo,
                digest,
                (),
                orphan.media_type if orphan is not None else "",
                Phase.ORPHAN_CHILD,
                f"untagged child of deleted index {orphans[digest]}",
            )
        )
    steps.sort(key=lambda s: (s.phase, s.digest))
    return steps
