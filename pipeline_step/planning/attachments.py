"""Attachments follow their subject: signatures, attestations, SBOMs and referrers.

Pure, like the planner. :func:`find_attachments` says what in an inventory is
attached to what (pipeline_step/registry/artifacts.py names the schemes);
:func:`plan_attachments` decides each attachment after the planner decided the
images:

* an attachment is never a candidate and never counts toward ``keep``;
* while its subject survives, it is kept: "signature of 3.3.0-alpha.16";
* when its subject is deleted, it is deleted too, in a later phase (unless
  ``attachments: keep``);
* when its subject exists nowhere in the repository it is an *orphan*: listed,
  and deleted only under ``orphans: delete`` once no other repository of the
  catalog holds the subject either (cosign's ``COSIGN_REPOSITORY`` stores
  signatures away from their images), or when the undo log shows this tool
  deleted the subject (a run cut short between the two);
* a kept referrers index that lists a deleted attachment is rewritten without
  that entry, or deleted when no entry is left (distribution-spec 1.1,
  "Deleting Manifests").

A manifest's own ``subject`` field is content-addressed and outranks what tags
say (the cosign tag name, a listing in a referrers index). Whatever is in
doubt is kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.steps import Action, Decision, DeleteStep, Orphan, Phase
from pipeline_step.policy.config import RetentionPolicy
from pipeline_step.registry.artifacts import (
    ATTESTATION,
    KINDS,
    REFERRERS_INDEX,
    artifact_kind,
    is_scheme_tag,
    parse_scheme_tag,
    without_entries,
)
from pipeline_step.registry.artifacts import plural as kind_plural
from pipeline_step.registry.digest import short

if TYPE_CHECKING:
    from pipeline_step.planning.planner import RepositoryPlan

RIDER_REASON = (
    "named like a signature or referrers tag, but it names a tagged image rather than an attachment: "
    "kept, since deleting it would delete that image"
)
MAX_ROUNDS = 64  # each round only moves deletions to keeps; real plans settle in one or two


@dataclass(slots=True)
class Attachment:
    digest: str
    kind: str
    subjects: list[str]  # the manifest's own subject field, else what its tags and listings say
    tags: list[str] = field(default_factory=list)
    listed_in: list[str] = field(default_factory=list)  # referrers indexes (digests) listing it
    distrust: str | None = None  # why it is kept whatever its subject's fate


@dataclass(slots=True)
class Found:
    """What :func:`find_attachments` learned about one inventory."""

    attachments: dict[str, Attachment] = field(default_factory=dict)
    contained: dict[str, tuple[str, str]] = field(default_factory=dict)  # buildx attestation -> (index, described)
    governed: set[str] = field(default_factory=set)  # tags decided by their attachment's subject
    riders: dict[str, str] = field(default_factory=dict)  # scheme-named tags on image digests -> keep reason

    def subjects_missing(self, inventory: RepositoryInventory) -> set[str]:
        """Subjects not among the manifests read: they exist untagged, elsewhere, or nowhere."""
        return {
            subject
            for attachment in self.attachments.values()
            for subject in attachment.subjects
            if subject not in inventory.manifests and subject not in inventory.unreadable
        }


def find_attachments(inventory: RepositoryInventory, policy: RetentionPolicy | None = None) -> Found:
    """Every attachment of ``inventory``, with its subjects, tags and kind."""
    found = Found()
    manifests = inventory.manifests
    plain_digests = {digest for tag, digest in inventory.tags.items() if parse_scheme_tag(tag) is None}
    attached = found.attachments
    for digest, manifest in manifests.items():
        if manifest.subject is not None:
            attached[digest] = Attachment(digest, artifact_kind(manifest), [manifest.subject])
    for tag in sorted(inventory.tags):
        digest = inventory.tags[tag]
        scheme = parse_scheme_tag(tag)
        named = manifests.get(digest)
        attachment = attached.get(digest)
        if attachment is not None:
            attachment.tags.append(tag)
            # A second scheme tag on one manifest adds its claim, unless the manifest names its subject.
            claims = named is not None and named.subject is None
            if claims and scheme is not None and scheme.subject not in attachment.subjects:
                attachment.subjects.append(scheme.subject)
            continue
        if scheme is None:
            continue
        if digest in plain_digests:
            found.riders[tag] = RIDER_REASON
            continue
        attachment = Attachment(digest, scheme.kind, [scheme.subject], [tag])
        if scheme.kind == REFERRERS_INDEX and (named is None or not named.is_index):
            attachment.distrust = "named like a referrers index, but it is not an image index: kept"
        attached[digest] = attachment
    for index in [a for a in attached.values() if a.kind == REFERRERS_INDEX and a.distrust is None]:
        listing = manifests.get(index.digest)
        for child in listing.children if listing is not None else ():
            listed = attached.get(child.digest)
            if listed is None and child.digest not in plain_digests:
                listed = Attachment(child.digest, artifact_kind(manifests.get(child.digest)), [])
                attached[child.digest] = listed
            if listed is None:
                continue
            listed.listed_in.append(index.digest)
            own = manifests.get(child.digest)
            if (own is None or own.subject is None) and index.subjects[0] not in listed.subjects:
                listed.subjects.append(index.subjects[0])
    for digest, holder in manifests.items():
        for contained, described in holder.attestations:
            if contained not in attached:
                found.contained[contained] = (digest, described)
    for attachment in attached.values():
        attachment.subjects.sort()
        for tag in attachment.tags:
            # A tag the operator named (not cosign's or the tag schema's) keeps its manifest if the
            # policy would not delete it on its own; protect covers every tag.
            reason = policy.not_candidate_reason(tag) if policy is not None else None
            if policy is not None and is_scheme_tag(tag) and policy.protected_by(tag) is None:
                reason = None
            if reason is None:
                found.governed.add(tag)
    return found


# -- planning ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fate:
    state: str  # kept | present | deleted | absent
    label: str  # how a reason names it: "3.3.0-alpha.16", "SBOM of 3.3.0-alpha.16", "untagged sha256:..."


@dataclass(frozen=True, slots=True)
class _Context:
    """What the planner decided about the images of one repository."""

    inventory: RepositoryInventory
    policy: RetentionPolicy
    found: Found
    kept_owner: dict[str, str]  # digest -> the kept tag that names it
    kept_by_index: dict[str, str]  # digest -> the kept tag whose index references it
    tags_on: dict[str, list[str]]  # digest -> every tag naming it, sorted


class _Round:
    """One pass over every attachment, given the images' decisions and what earlier rounds forced to stay."""

    def __init__(self, context: _Context, image_steps: dict[str, DeleteStep], forced: dict[str, str]) -> None:
        self.inventory = context.inventory
        self.policy = context.policy
        self.found = context.found
        self.kept_owner = context.kept_owner
        self.kept_by_index = context.kept_by_index
        self.tags_on = context.tags_on
        self.image_steps = image_steps
        self.forced = forced
        self.fates: dict[str, Fate] = {}
        self.reasons: dict[str, str] = {}
        self.orphans: dict[str, str] = {}  # attachment digest -> its absent subject
        self._visiting: set[str] = set()

    def tag_label(self, digest: str) -> str | None:
        tags = self.tags_on.get(digest)
        return tags[0] if tags else None

    def fate(self, digest: str) -> Fate:
        if digest in self.found.attachments:
            return self.attachment_fate(digest)
        if digest in self.forced:
            return Fate("kept", self.tag_label(digest) or f"untagged {short(digest)}")
        if digest in self.kept_owner:
            return Fate("kept", self.kept_owner[digest])
        if digest in self.kept_by_index:
            return Fate("kept", f"{self.kept_by_index[digest]} (its child {short(digest)})")
        step = self.image_steps.get(digest)
        if step is not None:
            return Fate("deleted", step.tags[0] if step.tags else f"{short(digest)} ({step.reason})")
        inventory = self.inventory
        if digest in inventory.manifests or digest in inventory.present or digest in inventory.unreadable:
            return Fate("present", f"untagged {short(digest)}")
        if digest in inventory.uncertain:
            why = inventory.uncertain[digest]
            return Fate("present", f"{short(digest)}, whose existence could not be checked ({why})")
        return Fate("absent", short(digest))

    def attachment_fate(self, digest: str) -> Fate:
        known = self.fates.get(digest)
        if known is not None:
            return known
        attachment = self.found.attachments[digest]
        if digest in self._visiting:
            return Fate("kept", f"{attachment.kind} {short(digest)}")  # a cycle of tag claims: keep
        self._visiting.add(digest)
        try:
            fate, reason = self._decide(attachment)
        finally:
            self._visiting.discard(digest)
        self.fates[digest] = fate
        self.reasons[digest] = reason
        return fate

    def _decide(self, attachment: Attachment) -> tuple[Fate, str]:
        digest, kind = attachment.digest, attachment.kind
        kept_as = self.forced.get(digest) or self.kept_owner.get(digest)
        if kept_as is not None:
            subjects = [self.fate(subject) for subject in attachment.subjects]
            label = next((f.label for f in subjects if f.state != "absent"), subjects[0].label if subjects else "")
            reason = self.forced.get(digest) or f"shares digest with {kept_as}"
            return Fate("kept", f"{kind} of {label}"), reason
        if digest in self.kept_by_index:
            return Fate("kept", f"{kind} in {self.kept_by_index[digest]}"), (
                f"referenced by kept index {self.kept_by_index[digest]}"
            )
        subjects = [self.fate(subject) for subject in attachment.subjects]
        alive = next((f for f in subjects if f.state in ("kept", "present")), None)
        if attachment.distrust is not None:
            label = alive.label if alive else (subjects[0].label if subjects else short(digest))
            return Fate("kept", f"{kind} of {label}"), attachment.distrust
        if alive is not None:
            return Fate("kept", f"{kind} of {alive.label}"), f"{kind} of {alive.label}"
        gone = next((f for f in subjects if f.state == "deleted"), None)
        if gone is not None:
            label = f"{kind} of deleted {gone.label}"
            if self.policy.attachments == "keep":
                return Fate("kept", f"{kind} of {gone.label}"), f"{label}; kept (attachments: keep)"
            return Fate("deleted", f"{kind} of {gone.label}"), label
        return self._orphan(attachment, subjects)

    def _orphan(self, attachment: Attachment, subjects: list[Fate]) -> tuple[Fate, str]:
        kind = attachment.kind
        subject = attachment.subjects[0] if attachment.subjects else ""
        self.orphans[attachment.digest] = subject
        what = f"{kind} of {short(subject)}" if subject else kind
        inventory = self.inventory
        if subject in inventory.deleted_before and self.policy.attachments == "delete":
            return Fate("deleted", what), (
                f"orphan: {what}, which an earlier run of this tool deleted (it stopped before its attachments)"
            )
        if self.policy.orphans != "delete":
            return Fate("kept", what), (
                f"orphan: {what}, which is not in this repository; kept (orphans: delete prunes it "
                "once no other repository holds it)"
            )
        if inventory.elsewhere is None:
            why = inventory.elsewhere_error or "they were not checked"
            return Fate("kept", what), f"orphan: {what}; kept: the other repositories could not be checked ({why})"
        homes = sorted({inventory.elsewhere[s] for s in attachment.subjects if s in inventory.elsewhere})
        if homes:
            return Fate("kept", what), (
                f"{what}, which lives in {homes[0]}: kept (signatures stored apart from their image, "
                "as COSIGN_REPOSITORY does)"
            )
        return Fate("deleted", what), f"orphan: {what}, which no repository of the catalog holds"


def _closure(roots: set[str], inventory: RepositoryInventory, skip_children_of: set[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = inventory.manifests.get(digest)
        if manifest is not None and digest not in skip_children_of:
            stack.extend(child.digest for child in manifest.children)
    return seen


def _bytes(inventory: RepositoryInventory, digest: str) -> int:
    manifest = inventory.manifests.get(digest)
    if manifest is None:
        return 0
    blobs = {blob.digest: blob.size for blob in manifest.blobs()}
    return manifest.size + sum(blobs.values())


@dataclass(slots=True)
class _Settled:
    """The last round's verdict: what is deleted, which kept referrers indexes are rewritten or emptied."""

    round: _Round
    deleted: set[str]
    emptied: set[str]
    rewrites: list[tuple[Attachment, bytes, list[str]]]
    forced: dict[str, str]


def plan_attachments(plan: RepositoryPlan, context: _Context) -> None:
    """Decide every attachment of ``plan``'s repository; add its steps; withdraw image deletions
    a kept attachment still needs."""
    inventory, found = context.inventory, context.found
    attached = found.attachments
    if not attached and not found.contained:
        return
    forced: dict[str, str] = {}
    for _ in range(MAX_ROUNDS):
        image_steps = {step.digest: step for step in plan.steps if step.digest not in forced}
        round_ = _Round(context, image_steps, forced)
        for digest in sorted(attached):
            round_.attachment_fate(digest)
        deleted = {d for d, fate in round_.fates.items() if fate.state == "deleted"}
        rewrites, emptied, stuck = _rewrites(round_, deleted)
        deleted |= emptied
        for digest, reason in stuck.items():
            forced.setdefault(digest, reason)
        # What kept attachments and rewritten indexes still reference must stay.
        kept_attachments = {d for d, fate in round_.fates.items() if fate.state != "deleted"} - emptied
        referrers = {d for d in kept_attachments if attached[d].kind == REFERRERS_INDEX}
        survivors = _closure(kept_attachments, inventory, referrers)
        for index in referrers:
            listing = inventory.manifests.get(index)
            if listing is not None:
                survivors.update(child.digest for child in listing.children if child.digest not in deleted)
        conflicts = (deleted | set(image_steps)) & survivors
        if not conflicts and not stuck:
            break
        for digest in sorted(conflicts):
            forced.setdefault(digest, f"referenced by a kept attachment ({short(digest)} is still needed)")
    else:  # pragma: no cover - MAX_ROUNDS is far beyond any real plan; stay safe anyway
        deleted, rewrites, emptied = set(), [], set()
        forced.update({step.digest: "attachments did not settle: kept" for step in plan.steps})
    _emit(plan, _Settled(round_, deleted, emptied, rewrites, forced))


def _relabel(step: DeleteStep, found: Found) -> DeleteStep:
    """A buildx attestation manifest of a deleted index is an attestation, deleted after the images."""
    holder = found.contained.get(step.digest)
    if holder is None or step.phase is not Phase.ORPHAN_CHILD:
        return step
    owner = step.reason.rsplit(" ", 1)[-1]
    return replace(
        step,
        phase=Phase.ATTACHMENT_CHILD,
        attachment=ATTESTATION,
        subject=holder[1] or holder[0],
        reason=f"attestation of deleted {owner} (an attestation manifest in its index)",
    )


def _rewrites(
    round_: _Round, deleted: set[str]
) -> tuple[list[tuple[Attachment, bytes, list[str]]], set[str], dict[str, str]]:
    """Kept referrers indexes listing deleted attachments: (index, new bytes, dropped) to rewrite,
    indexes left empty (deleted instead), and deletions to withdraw when an index cannot be rewritten."""
    inventory = round_.inventory
    rewrites: list[tuple[Attachment, bytes, list[str]]] = []
    emptied: set[str] = set()
    stuck: dict[str, str] = {}
    for digest in sorted(round_.fates):
        attachment = round_.found.attachments[digest]
        if attachment.kind != REFERRERS_INDEX or round_.fates[digest].state == "deleted":
            continue
        manifest = inventory.manifests.get(digest)
        if manifest is None or not manifest.is_index:
            continue
        listed = [child.digest for child in manifest.children]
        dropped = sorted({d for d in listed if d in deleted})
        if not dropped:
            continue
        tag = attachment.tags[0] if attachment.tags else None
        raw = inventory.raw.get(digest)
        if tag is None or len(attachment.tags) > 1 or raw is None:
            why = "it could not be read again" if raw is None else "other tags name it too"
            for d in dropped:
                stuck[d] = f"listed in kept referrers index {tag or short(digest)}, which cannot be rewritten ({why})"
            continue
        if set(listed) <= deleted:
            emptied.add(digest)
            round_.reasons[digest] = f"{round_.reasons[digest]}; every referrer it lists is deleted, so it goes too"
            continue
        rewrites.append((attachment, without_entries(raw, set(dropped)), dropped))
    return rewrites, emptied, stuck


def _emit(plan: RepositoryPlan, settled: _Settled) -> None:
    round_, forced = settled.round, settled.forced
    deleted, rewrites = settled.deleted, settled.rewrites
    inventory, found = round_.inventory, round_.found
    repo = inventory.name
    attached = found.attachments
    blocked = bool(inventory.unresolved) and bool(deleted or rewrites)
    if blocked and plan.blocked is None:
        first = sorted(inventory.unresolved)[0]
        why = inventory.unresolved[first].split(" (", 1)[0][:300]
        plan.blocked = (
            f"nothing deleted in {repo}: tag {first} could not be resolved ({why}), "
            "so a shared digest cannot be ruled out"
        )
    if blocked:
        deleted, rewrites = set(), []
    # Image deletions a kept attachment needs are withdrawn, their tags kept.
    withdrawn = {step.digest for step in plan.steps if step.digest in forced}
    if withdrawn:
        plan.steps = [step for step in plan.steps if step.digest not in withdrawn]
        plan.decisions = [
            replace(d, action=Action.KEEP, reason=forced[d.digest])
            if d.digest in withdrawn and d.action is Action.DELETE
            else d
            for d in plan.decisions
        ]
    unlisted: dict[str, list[str]] = {}
    for index, _, dropped in rewrites:
        for digest in dropped:
            unlisted.setdefault(digest, []).append(index.tags[0])
    steps = [_relabel(step, found) for step in plan.steps if step.digest not in deleted]
    kept_kinds: Counter[str] = Counter()
    for digest in sorted(attached):
        attachment = attached[digest]
        fate = round_.fates[digest]
        reason = round_.reasons[digest]
        subject = attachment.subjects[0] if attachment.subjects else None
        gone = digest in deleted
        if blocked and fate.state == "deleted":
            reason = plan.blocked or reason
        if not gone:
            kept_kinds[attachment.kind] += 1
        for tag in attachment.tags:
            if tag in found.governed:
                action = Action.DELETE if gone else Action.KEEP
                plan.decisions.append(Decision(repo, tag, digest, action, reason, attachment.kind, subject))
        if digest in round_.orphans:
            plan.orphans.append(
                Orphan(
                    repo,
                    digest,
                    tuple(attachment.tags),
                    attachment.kind,
                    round_.orphans[digest],
                    Action.DELETE if gone else Action.KEEP,
                    reason,
                    _bytes(inventory, digest),
                )
            )
        if not gone:
            continue
        manifest = inventory.manifests.get(digest)
        media_type = manifest.media_type if manifest is not None else ""
        is_index = manifest is not None and manifest.is_index
        if attachment.tags:
            phase = Phase.ATTACHMENT_INDEX if is_index else Phase.ATTACHMENT
        else:
            phase = Phase.ATTACHMENT_CHILD
        steps.append(
            DeleteStep(
                repo,
                digest,
                tuple(round_.tags_on.get(digest, ())),
                media_type,
                phase,
                reason,
                attachment.kind,
                subject,
                unlisted_from=tuple(unlisted.get(digest, ())),
            )
        )
    # Untagged children of deleted attachment indexes that are not attachments themselves.
    doomed = {step.digest for step in steps}
    survivors = _closure(
        {d for d in inventory.tags.values() if d not in doomed} | {d for d in attached if d not in deleted},
        inventory,
        {d for d in attached if attached[d].kind == REFERRERS_INDEX},
    )
    tagged = set(inventory.tags.values())
    for digest in sorted(deleted):
        manifest = inventory.manifests.get(digest)
        if manifest is None or not manifest.is_index or attached[digest].kind == REFERRERS_INDEX:
            continue
        for child in manifest.children:
            if child.digest in doomed or child.digest in survivors or child.digest in tagged:
                continue
            doomed.add(child.digest)
            child_manifest = inventory.manifests.get(child.digest)
            steps.append(
                DeleteStep(
                    repo,
                    child.digest,
                    (),
                    child_manifest.media_type if child_manifest is not None else "",
                    Phase.ATTACHMENT_CHILD,
                    f"untagged child of deleted {attached[digest].kind} {short(digest)}",
                    attached[digest].kind,
                    digest,
                )
            )
    for index, body, dropped in rewrites:
        manifest = inventory.manifests[index.digest]
        names = ", ".join(short(d) for d in dropped)
        steps.append(
            DeleteStep(
                repo,
                index.digest,
                tuple(index.tags),
                manifest.media_type,
                Phase.REWRITE,
                f"{round_.reasons[index.digest]}: rewritten without the {len(dropped)} deleted "
                f"referrer{'s' if len(dropped) != 1 else ''} it listed ({names})",
                REFERRERS_INDEX,
                index.subjects[0] if index.subjects else None,
                replacement=body,
            )
        )
    for digest in found.contained:
        if digest not in doomed:
            kept_kinds[ATTESTATION] += 1
    steps.sort(key=lambda s: (s.phase, s.digest))
    plan.steps = steps
    plan.attachments_kept = dict(sorted(kept_kinds.items()))


def context(
    inventory: RepositoryInventory,
    policy: RetentionPolicy,
    found: Found,
    kept_owner: dict[str, str],
    kept_by_index: dict[str, str],
) -> _Context:
    tags_on: dict[str, list[str]] = {}
    if found.attachments or found.contained:
        for tag in sorted(inventory.tags):
            tags_on.setdefault(inventory.tags[tag], []).append(tag)
    return _Context(inventory, policy, found, kept_owner, kept_by_index, tags_on)


# -- counting --------------------------------------------------------------------------


def is_attachment(step: DeleteStep) -> bool:
    return step.attachment is not None and step.phase is not Phase.REWRITE


def attachment_kinds(steps: list[DeleteStep]) -> dict[str, int]:
    """Kind -> how many of ``steps`` delete an attachment of that kind, in a fixed kind order."""
    counts = {kind: sum(1 for step in steps if is_attachment(step) and step.attachment == kind) for kind in KINDS}
    return {kind: count for kind, count in counts.items() if count}


def describe_attachments(kinds: dict[str, int]) -> str:
    """``15 signatures, 15 SBOMs and 1 attestation``."""
    parts = [f"{count} {kind_plural(kind, count)}" for kind, count in kinds.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
