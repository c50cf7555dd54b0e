"""Property-based tests of the planner: random repositories, random policies.

Repositories have tags (versions, releases, ``latest``, names that are not
versions), digests shared between tags, indexes whose children may be tagged,
untagged, shared or missing, creation times that may be unknown, and sometimes
a tag that could not be resolved. The properties are the planner's promises:

* a protected tag is never deleted;
* no digest carrying a kept tag is deleted, nor anything a kept index
  references at any depth, and a DELETE never takes a kept tag with it;
* with ``keep=N`` exactly the min(N, candidates) newest orderable candidates
  survive by rank, and every other survivor is explained by sharing, age or
  an unresolved tag; everything unexplained is deleted;
* the same input always gives the same plan;
* no attachment (signature, attestation, SBOM, referrer) of a kept image, or of
  a kept attachment, is ever planned for deletion, whatever tags, subject
  fields and referrers indexes claim, and the rules above hold with
  attachments present too.

CI runs the derandomised "ci" profile (fixed examples, fixed seed); set
HYPOTHESIS_PROFILE=thorough for a longer random search.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_step.planning.attachments import find_attachments
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import Action, Phase, RepositoryPlan, plan_repository, tie_break
from pipeline_step.policy.config import DEFAULT_PROTECT, RetentionPolicy
from pipeline_step.policy.versions import VersionKey, version_key
from pipeline_step.registry import mediatypes
from pipeline_step.registry.model import Descriptor, Manifest

# "ci": the same 300 examples on every run and machine (no seed, no example database).
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=5000, deadline=None)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


# -- strategies -------------------------------------------------------------------

versions = st.builds(
    lambda v, core, pre, n: f"{v}{core}-{pre}.{n}",
    st.sampled_from(["", "v"]),
    st.sampled_from(["1.0.0", "1.1.0", "2.0.0"]),
    st.sampled_from(["alpha", "beta", "rc"]),
    st.integers(1, 12),
)
releases = st.sampled_from(["1.0.0", "1.1.0", "2.0.0", "v2.0.0"])
others = st.sampled_from(["latest", "nightly", "feature-x", "1.0.0-alpha.3-keep", "1.0.0-alpha-nightly", "stable"])
tag_names = st.one_of(versions, versions, versions, releases, others)
times = st.one_of(st.none(), st.integers(0, 200).map(lambda days: NOW - timedelta(days=days)))


@st.composite
def repositories(draw: st.DrawFn) -> RepositoryInventory:
    images = draw(st.integers(1, 8))
    manifests: dict[str, Manifest] = {}
    for i in range(images):
        layer = Descriptor(digest(5000 + draw(st.integers(0, 3))), 1000)
        manifests[digest(i + 1)] = Manifest(
            digest(i + 1), mediatypes.DOCKER_MANIFEST, 500, config=Descriptor(digest(4000 + i), 100), layers=(layer,)
        )
    for j in range(draw(st.integers(0, 3))):
        # Children come from manifests made earlier, so the graph has no cycles but can nest.
        children = draw(st.lists(st.sampled_from(sorted(manifests)), min_size=1, max_size=3, unique=True))
        d = digest(1000 + j)
        manifests[d] = Manifest(d, mediatypes.OCI_INDEX, 300, children=tuple(Descriptor(c, 500) for c in children))
    names = draw(st.lists(tag_names, min_size=1, max_size=14, unique=True))
    tags = {name: draw(st.sampled_from(sorted(manifests))) for name in names}
    inventory = RepositoryInventory("team/app", tags=tags)
    tagged = set(tags.values())
    for d, manifest in manifests.items():
        # An untagged child whose fetch failed is simply missing from the inventory.
        if d in tagged or draw(st.integers(0, 9)) != 0:
            inventory.manifests[d] = manifest
    inventory.created = {d: draw(times) for d in manifests}
    if draw(st.integers(0, 7)) == 0:
        inventory.unresolved = {"9.9.9-alpha.1": "HTTP 500 after 4 attempts"}
    if draw(st.booleans()):
        inventory.vanished = {"9.9.9-alpha.2"}
    return inventory


@st.composite
def policies(draw: st.DrawFn) -> RetentionPolicy:
    exclude = draw(st.sampled_from([None, r"-keep$", r"beta"]))
    protect = draw(st.sampled_from([DEFAULT_PROTECT, (), (r"^latest$",), (r"rc", r"^stable$")]))
    order: Literal["semver", "created"] = draw(st.sampled_from(["semver", "created"]))
    return RetentionPolicy(
        match=re.compile(draw(st.sampled_from([r"alpha", r"^v?\d+\.\d+\.\d+-", r"-(alpha|beta|rc)\.", r"."]))),
        exclude=re.compile(exclude) if exclude else None,
        keep=draw(st.integers(0, 6)),
        order=order,
        older_than=draw(st.sampled_from([None, timedelta(days=7), timedelta(days=90)])),
        protect=tuple(re.compile(p) for p in protect),
    )


# -- helpers: what the plan says, and what the inventory implies ----------------------


def deleted_tags(plan: RepositoryPlan) -> set[str]:
    return {d.tag for d in plan.deletions if d.tag is not None}


def kept_tags(plan: RepositoryPlan) -> set[str]:
    return {d.tag for d in plan.keeps if d.tag is not None}


def step_digests(plan: RepositoryPlan) -> set[str]:
    return {step.digest for step in plan.steps}


def closure(inventory: RepositoryInventory, roots: set[str]) -> set[str]:
    """``roots`` and every manifest an index among them references, at any depth."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        manifest = inventory.manifests.get(d)
        if manifest is not None:
            stack.extend(child.digest for child in manifest.children)
    return seen


def order_key(tag: str, inventory: RepositoryInventory, policy: RetentionPolicy) -> VersionKey | datetime | None:
    if policy.order == "semver":
        return version_key(tag)
    return inventory.created.get(inventory.tags[tag])


# -- properties ------------------------------------------------------------------------


@PROFILE
@given(repositories(), policies())
def test_a_protected_tag_is_never_deleted(inventory: RepositoryInventory, policy: RetentionPolicy) -> None:
    plan = plan_repository(inventory, policy, NOW)
    protected = {tag for tag in inventory.tags if policy.protected_by(tag) is not None}
    assert not protected & deleted_tags(plan)
    assert not {inventory.tags[tag] for tag in protected} & step_digests(plan)


@PROFILE
@given(repositories(), policies())
def test_kept_tags_digests_and_kept_index_children_are_never_deleted(
    inventory: RepositoryInventory, policy: RetentionPolicy
) -> None:
    plan = plan_repository(inventory, policy, NOW)
    kept_digests = {inventory.tags[tag] for tag in kept_tags(plan) if tag in inventory.tags}
    assert not closure(inventory, kept_digests) & step_digests(plan)
    # A DELETE by digest removes every tag on it: each one must be a planned deletion.
    for step in plan.steps:
        on_digest = {tag for tag, d in inventory.tags.items() if d == step.digest}
        assert set(step.tags) == on_digest <= deleted_tags(plan)
    # Every decision is one of keep/delete, once per tag; unresolved tags are kept.
    assert kept_tags(plan) | deleted_tags(plan) == set(inventory.tags) | set(inventory.unresolved)
    assert not kept_tags(plan) & deleted_tags(plan)


@PROFILE
@given(repositories(), policies())
def test_keep_n_keeps_exactly_the_newest_candidates_and_explains_every_other_survivor(
    inventory: RepositoryInventory, policy: RetentionPolicy
) -> None:
    plan = plan_repository(inventory, policy, NOW)
    candidates = [tag for tag in inventory.tags if policy.not_candidate_reason(tag) is None]
    orderable = [tag for tag in candidates if order_key(tag, inventory, policy) is not None]
    # Newest first. Equal creation times are broken by version, then natural name order (tie_break);
    # equal versions (1.0 and v1.0) by tag name, as the planner documents.
    if policy.order == "created":
        orderable.sort(key=lambda tag: (order_key(tag, inventory, policy), tie_break(tag), tag), reverse=True)
    else:
        orderable.sort(key=lambda tag: (order_key(tag, inventory, policy), tag), reverse=True)
    newest, rest = orderable[: policy.keep], orderable[policy.keep :]
    assert len(newest) == min(policy.keep, len(orderable))
    assert set(newest) <= kept_tags(plan)

    def too_young_or_unknown(tag: str) -> bool:
        if policy.older_than is None:
            return False
        created = inventory.created.get(inventory.tags[tag])
        return created is None or NOW - created < policy.older_than

    # Survivors for their own sake; then sharing a digest, or being referenced, saves more.
    own = (set(inventory.tags) - set(rest)) | {tag for tag in rest if too_young_or_unknown(tag)}
    saved = closure(inventory, {inventory.tags[tag] for tag in own})
    expected = {tag for tag in rest if tag not in own and inventory.tags[tag] not in saved}
    if inventory.unresolved and expected:
        assert deleted_tags(plan) == set() and plan.steps == [] and plan.blocked
    else:
        assert deleted_tags(plan) == expected
        assert plan.blocked is None


@PROFILE
@given(repositories(), policies())
def test_planning_is_deterministic(inventory: RepositoryInventory, policy: RetentionPolicy) -> None:
    first = plan_repository(inventory, policy, NOW)
    again = plan_repository(inventory, policy, NOW)
    # The same content inserted in another order (a registry lists tags in any order).
    shuffled = RepositoryInventory(
        inventory.name,
        tags=dict(reversed(list(inventory.tags.items()))),
        unresolved=dict(inventory.unresolved),
        vanished=set(inventory.vanished),
        manifests=dict(reversed(list(inventory.manifests.items()))),
        created=dict(reversed(list(inventory.created.items()))),
    )
    reordered = plan_repository(shuffled, policy, NOW)
    for other in (again, reordered):
        assert other.decisions == first.decisions
        assert other.steps == first.steps
        assert other.blocked == first.blocked


@PROFILE
@given(repositories(), policies())
def test_indexes_go_before_their_children_and_orphans_are_unreferenced(
    inventory: RepositoryInventory, policy: RetentionPolicy
) -> None:
    plan = plan_repository(inventory, policy, NOW)
    position = {step.digest: i for i, step in enumerate(plan.steps)}
    assert len(position) == len(plan.steps)  # one DELETE per digest
    # A named index goes before its children: were the run to stop in between, no tag
    # would point at an index whose children are gone. (An untagged nested index has
    # no name to break, so its order among the orphans does not matter.)
    for step in plan.steps:
        if not step.tags:
            continue
        manifest = inventory.manifests.get(step.digest)
        for child in manifest.children if manifest is not None else ():
            if child.digest in position:
                assert position[child.digest] > position[step.digest]
    surviving = {d for tag, d in inventory.tags.items() if tag not in deleted_tags(plan)}
    needed = closure(inventory, surviving)
    for step in plan.steps:
        if step.phase is Phase.ORPHAN_CHILD:
            assert step.tags == () and step.digest not in needed
            assert step.digest not in inventory.tags.values()
    assert [d.action for d in plan.decisions if d.tag is None] == [Action.DELETE] * sum(
        1 for s in plan.steps if s.phase is Phase.ORPHAN_CHILD
    )


# -- attachments ------------------------------------------------------------------------


@st.composite
def repositories_with_attachments(draw: st.DrawFn) -> RepositoryInventory:
    """A repository from :func:`repositories`, plus cosign tags, referrers indexes and untagged
    referrers, whose subjects are its manifests or digests it does not hold, and whose own
    ``subject`` fields sometimes disagree with what their tags and listings claim."""
    inventory = draw(repositories())
    absent = [digest(7000 + n) for n in range(3)]
    subjects = st.sampled_from(sorted(inventory.manifests) + absent)
    counter = iter(range(8000, 9000))

    def artifact(own: str | None, kind: str) -> str:
        d = digest(next(counter))
        layer = Descriptor(digest(next(counter)), 100, kind)
        config = Descriptor(digest(next(counter)), 2, "application/vnd.oci.empty.v1+json")
        inventory.manifests[d] = Manifest(d, mediatypes.OCI_MANIFEST, 300, config, (layer,), subject=own)
        return d

    for _ in range(draw(st.integers(0, 5))):  # cosign: sha256-<hex>.sig / .att / .sbom
        subject = draw(subjects)
        own = draw(st.sampled_from([None, None, subject, draw(subjects)]))
        suffix = draw(st.sampled_from([".sig", ".att", ".sbom"]))
        inventory.tags[f"sha256-{subject.split(':', 1)[1]}{suffix}"] = artifact(own, "application/vnd.dev.cosign")
    for _ in range(draw(st.integers(0, 3))):  # the referrers tag schema: sha256-<hex> -> an index of referrers
        subject = draw(subjects)
        listed = [
            artifact(draw(st.sampled_from([subject, subject, draw(subjects), None])), "application/spdx+json")
            for _ in range(draw(st.integers(1, 3)))
        ]
        d = digest(next(counter))
        inventory.manifests[d] = Manifest(
            d, mediatypes.OCI_INDEX, 200, children=tuple(Descriptor(c, 300) for c in listed)
        )
        entries = [{"mediaType": mediatypes.OCI_MANIFEST, "digest": c, "size": 300} for c in listed]
        inventory.raw[d] = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
        inventory.tags[f"sha256-{subject.split(':', 1)[1]}"] = d
    for _ in range(draw(st.integers(0, 2))):  # referrers no tag names (referrers API, direct mode)
        artifact(draw(subjects), "application/vnd.in-toto+json")
    if draw(st.booleans()):
        inventory.elsewhere = {a: "team/other" for a in absent if draw(st.booleans())}
    if draw(st.integers(0, 3)) == 0:
        inventory.deleted_before = {absent[0]}
    return inventory


@st.composite
def attachment_policies(draw: st.DrawFn) -> RetentionPolicy:
    policy = draw(policies())
    return dataclasses.replace(
        policy,
        attachments=draw(st.sampled_from(["delete", "delete", "keep"])),
        orphans=draw(st.sampled_from(["keep", "delete"])),
    )


@PROFILE
@given(repositories_with_attachments(), attachment_policies())
def test_no_attachment_of_a_kept_image_is_ever_planned_for_deletion(
    inventory: RepositoryInventory, policy: RetentionPolicy
) -> None:
    plan = plan_repository(inventory, policy, NOW)
    deleting = {step.digest for step in plan.deleting}
    kept_images = {d.digest for d in plan.decisions if d.action is Action.KEEP and d.tag and not d.attachment}
    alive = closure(inventory, {d for d in kept_images if d is not None})
    attachments = find_attachments(inventory, policy).attachments
    alive |= {d for d in attachments if d not in deleting}  # a kept attachment's attachments stay too
    for attachment in attachments.values():
        if any(subject in alive for subject in attachment.subjects):
            assert attachment.digest not in deleting, (attachment, plan.steps)
    # The image rules hold with attachments present: a kept or protected tag's manifest stays,
    # what a kept image index references stays, and a DELETE takes only tags planned for deletion.
    protected = {tag for tag in inventory.tags if policy.protected_by(tag) is not None}
    assert not protected & deleted_tags(plan)
    assert not closure(inventory, {d for d in kept_images if d is not None}) & deleting
    kept_tags_digests = {inventory.tags[tag] for tag in kept_tags(plan) if tag in inventory.tags}
    assert not kept_tags_digests & deleting
    for step in plan.deleting:
        on_digest = {tag for tag, d in inventory.tags.items() if d == step.digest}
        assert set(step.tags) == on_digest <= deleted_tags(plan)
    assert kept_tags(plan) | deleted_tags(plan) == set(inventory.tags) | set(inventory.unresolved)
    assert len({step.digest for step in plan.steps}) == len(plan.steps)  # one step per digest
    if inventory.unresolved:
        assert not plan.steps  # an unresolved tag might share a digest with any deletion


@PROFILE
@given(repositories_with_attachments(), attachment_policies())
def test_attachments_go_after_their_subjects_and_planning_them_is_deterministic(
    inventory: RepositoryInventory, policy: RetentionPolicy
) -> None:
    plan = plan_repository(inventory, policy, NOW)
    again = plan_repository(inventory, policy, NOW)
    assert again.decisions == plan.decisions and again.steps == plan.steps and again.orphans == plan.orphans
    position = {step.digest: i for i, step in enumerate(plan.steps)}
    for step in plan.steps:
        if step.attachment is not None and step.subject in position and step.phase is not Phase.REWRITE:
            assert (
                position[step.subject] < position[step.digest] or plan.steps[position[step.subject]].phase == step.phase
            )
        if step.unlisted_from:
            rewrites = {s.tags[0]: i for i, s in enumerate(plan.steps) if s.phase is Phase.REWRITE}
            assert all(rewrites[tag] < position[step.digest] for tag in step.unlisted_from)
