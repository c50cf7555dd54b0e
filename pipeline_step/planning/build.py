"""From configuration to a registry-wide plan: select, collect, decide, predict."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Protocol

from pipeline_step.errors import InterruptedRunError, RegistryError, UsageError
from pipeline_step.planning.attachments import find_attachments
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import RepositoryPlan, plan_repository
from pipeline_step.planning.reclaim import ReclaimEstimate, predict_reclaim
from pipeline_step.policy.config import Configuration, RetentionPolicy
from pipeline_step.policy.globs import glob_matches, has_wildcards
from pipeline_step.registry.reference import validate_repository
from pipeline_step.support.progress import ProgressFactory, null_progress


class InventorySource(Protocol):
    def catalog(self) -> list[str]: ...

    def collect(
        self,
        repository: str,
        *,
        needs_created: Callable[[str], bool] = ...,
        progress: ProgressFactory = ...,
    ) -> RepositoryInventory: ...

    def locate(self, digests: set[str], *, outside: str) -> dict[str, str]:
        """Which other repository holds each of these manifests (digest -> repository; absent:
        none). Raises a RegistryError when that cannot be told (e.g. the catalog is forbidden)."""
        ...

    def add_referrers(self, inventory: RepositoryInventory, subjects: set[str]) -> int:
        """Add the referrers of ``subjects`` that only the registry's referrers API lists (untagged,
        in no referrers index); the number added (0 where the API is not offered, or not needed)."""
        ...


@dataclass
class Plan:
    registry: str
    generated_at: datetime
    repositories: list[RepositoryPlan] = field(default_factory=list)
    inventories: dict[str, RepositoryInventory] = field(default_factory=dict)
    reclaim: ReclaimEstimate | None = None

    def pairs(self) -> list[tuple[RepositoryPlan, RepositoryInventory]]:
        return [(plan, self.inventories[plan.repository]) for plan in self.repositories]

    @property
    def step_count(self) -> int:
        return sum(len(plan.steps) for plan in self.repositories)

    def deleted_digests(self) -> dict[str, set[str]]:
        return {plan.repository: {step.digest for step in plan.steps} for plan in self.repositories}


def select_repositories(source: InventorySource, patterns: Iterable[str]) -> list[str]:
    """Resolve globs against the catalog; literal names skip the catalog entirely."""
    patterns = list(dict.fromkeys(patterns))
    if not patterns:
        raise UsageError(
            "no repositories selected",
            hint="pass --repo NAME_OR_GLOB (repeatable) or set repositories: in the config file",
        )
    literal = [validate_repository(p) for p in patterns if not has_wildcards(p)]
    globs = [p for p in patterns if has_wildcards(p)]
    selected = list(literal)
    if globs:
        catalog = source.catalog()
        if not catalog:
            raise UsageError(
                "the registry catalog is empty: there is nothing to prune",
                hint="check --registry, or that the account may list the catalog (registry:catalog:*)",
            )
        for pattern in globs:
            found = [name for name in catalog if glob_matches(pattern, name)]
            if not found:
                sample = ", ".join(catalog[:5]) + (", ..." if len(catalog) > 5 else "")
                raise UsageError(
                    f"no repository matches {pattern!r} (the catalog has {len(catalog)}: {sample})",
                    hint="`*` stays within one path component; use `**` to cross `/`",
                )
            selected.extend(found)
    return sorted(dict.fromkeys(selected))


def build_plan(
    source: InventorySource,
    configuration: Configuration,
    *,
    registry: str,
    repositories: list[str] | None = None,
    now: datetime | None = None,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
    policy_for: Callable[[str], RetentionPolicy] | None = None,
    extra_inventories: Iterable[RepositoryInventory] = (),
    deleted_before: Callable[[], set[tuple[str, str]]] | None = None,
) -> Plan:
    """Collect every selected repository and plan it.

    ``extra_inventories`` are other repositories already scanned (``usage``,
    ``recover``); their surviving manifests count when predicting reclaim.
    ``deleted_before`` gives the (repository, digest) pairs earlier runs deleted
    (from the undo log), read only when some attachment's subject is missing: an
    attachment of a subject this tool deleted is finished off like its subject.
    """
    now = now or datetime.now(timezone.utc)
    names = (
        repositories if repositories is not None else select_repositories(source, configuration.settings.repositories)
    )
    policy_of = policy_for or configuration.policy_for
    plan = Plan(registry=registry, generated_at=now)
    for name in names:
        policy = policy_of(name)
        inventory = source.collect(name, needs_created=policy.needs_age_of, progress=progress)
        if stop is not None and stop.is_set():
            # A half-collected repository could hide a tag on a digest we would delete.
            raise InterruptedRunError("interrupted while reading the registry; nothing was deleted")
        plan.inventories[name] = inventory
        plan.repositories.append(
            _plan_with_attachments(source, inventory, policy, now=now, deleted_before=deleted_before, stop=stop)
        )
    scanned = list(plan.inventories.values())
    scanned.extend(inv for inv in extra_inventories if inv.name not in plan.inventories)
    plan.reclaim = predict_reclaim(scanned, plan.deleted_digests())
    return plan


def _plan_with_attachments(
    source: InventorySource,
    inventory: RepositoryInventory,
    policy: RetentionPolicy,
    *,
    now: datetime,
    deleted_before: Callable[[], set[tuple[str, str]]] | None,
    stop: threading.Event | None,
) -> RepositoryPlan:
    """Plan one repository; where attachments need facts from beyond it, learn them and plan again.

    Orphans (attachments whose subject is gone) are looked for in the undo log and, under
    ``orphans: delete``, in every other repository. Subjects planned for deletion are asked
    about through the referrers API, which finds referrers no tag names.
    """
    missing = find_attachments(inventory).subjects_missing(inventory) - inventory.present - set(inventory.uncertain)
    if missing and deleted_before is not None:
        inventory.deleted_before = {d for repo, d in deleted_before() if repo == inventory.name} & missing
    if missing and policy.orphans == "delete":
        try:
            inventory.elsewhere = source.locate(missing, outside=inventory.name)
        except RegistryError as exc:
            inventory.elsewhere_error = exc.message  # the orphans are kept, saying why
    plan = plan_repository(inventory, policy, now)
    while plan.deleting and source.add_referrers(inventory, {step.digest for step in plan.deleting}):
        if stop is not None and stop.is_set():
            raise InterruptedRunError("interrupted while reading the registry; nothing was deleted")
        plan = plan_repository(inventory, policy, now)
    return plan
