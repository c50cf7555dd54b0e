"""The attachment rules of the planner, one by one, on hand-made inventories (no registry)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from pipeline_step.planning.inventory import RepositoryInventory, created_of
from pipeline_step.planning.planner import Action, Phase, RepositoryPlan, plan_repository
from pipeline_step.policy.config import DEFAULT_PROTECT, RetentionPolicy
from pipeline_step.registry import mediatypes
from pipeline_step.registry.artifacts import artifact_kind, parse_scheme_tag, referrers_tag, without_entries
from pipeline_step.registry.digest import compute_digest
from pipeline_step.registry.model import Descriptor, Manifest, parse_manifest

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def sig_tag(subject: str, suffix: str = ".sig") -> str:
    return f"sha256-{subject.split(':', 1)[1]}{suffix}"


def image(n: int) -> Manifest:
    return Manifest(
        digest(n),
        mediatypes.OCI_MANIFEST,
        400,
        Descriptor(digest(90000 + n), 100),
        (Descriptor(digest(80000 + n), 1000),),
    )


def signature(n: int, subject: str | None = None, artifact_type: str = "") -> Manifest:
    layer = Descriptor(digest(70000 + n), 200, "application/vnd.dev.cosign.simplesigning.v1+json")
    return Manifest(
        digest(n),
        mediatypes.OCI_MANIFEST,
        300,
        Descriptor(digest(60000 + n), 50),
        (layer,),
        subject=subject,
        artifact_type=artifact_type,
    )


def sbom(n: int, subject: str) -> Manifest:
    return Manifest(
        digest(n),
        mediatypes.OCI_MANIFEST,
        300,
        Descriptor(digest(50000 + n), 2, "application/vnd.oci.empty.v1+json"),
        (Descriptor(digest(40000 + n), 500),),
        subject=subject,
        artifact_type="application/spdx+json",
    )


def index(n: int, children: list[str], attestations: tuple[tuple[str, str], ...] = ()) -> Manifest:
    return Manifest(
        digest(n),
        mediatypes.OCI_INDEX,
        200,
        children=tuple(Descriptor(c, 300) for c in children),
        attestations=attestations,
    )


def referrers_raw(children: list[str]) -> bytes:
    entries = [{"mediaType": mediatypes.OCI_MANIFEST, "digest": c, "size": 300, "artifactType": "x"} for c in children]
    return json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries}).encode()


def policy(**changes: object) -> RetentionPolicy:
    values: dict[str, object] = {
        "match": re.compile("alpha"),
        "exclude": None,
        "keep": 1,
        "order": "semver",
        "older_than": None,
        "protect": tuple(re.compile(p) for p in DEFAULT_PROTECT),
    }
    values.update(changes)
    return RetentionPolicy(**values)  # type: ignore[arg-type]


def repo(tags: dict[str, str], manifests: list[Manifest]) -> RepositoryInventory:
    return RepositoryInventory("team/app", tags=tags, manifests={m.digest: m for m in manifests})


def two_alphas() -> tuple[RepositoryInventory, str, str]:
    """alpha.1 (deleted with keep=1) and alpha.2 (kept), each cosign-signed and with an SBOM in a referrers index."""
    old, new = digest(1), digest(2)
    manifests = [image(1), image(2), signature(11), signature(12), sbom(21, old), sbom(22, new)]
    manifests += [index(31, [digest(21)]), index(32, [digest(22)])]
    tags = {
        "1.0.0-alpha.1": old,
        "1.0.0-alpha.2": new,
        sig_tag(old): digest(11),
        sig_tag(new): digest(12),
        referrers_tag(old): digest(31),
        referrers_tag(new): digest(32),
    }
    inventory = repo(tags, manifests)
    inventory.raw = {digest(31): referrers_raw([digest(21)]), digest(32): referrers_raw([digest(22)])}
    return inventory, old, new


def fates(plan: RepositoryPlan) -> dict[str, tuple[Action, str]]:
    return {d.tag or d.digest or "": (d.action, d.reason) for d in plan.decisions}


def test_the_tag_schemes_are_recognised() -> None:
    subject = digest(7)
    assert parse_scheme_tag(sig_tag(subject)).kind == "signature"  # type: ignore[union-attr]
    assert parse_scheme_tag(sig_tag(subject, ".att")).kind == "attestation"  # type: ignore[union-attr]
    assert parse_scheme_tag(sig_tag(subject, ".sbom")).kind == "SBOM"  # type: ignore[union-attr]
    assert parse_scheme_tag(referrers_tag(subject)) is not None and referrers_tag(subject) == sig_tag(subject, "")
    for other in ("sha256-abc.sig", "latest", sig_tag(subject, ".sig2"), "sha512-" + "0" * 128):
        assert parse_scheme_tag(other) is None
    assert artifact_kind(sbom(1, subject)) == "SBOM" and artifact_kind(signature(2)) == "signature"
    assert artifact_kind(signature(3, artifact_type="application/vnd.in-toto+json")) == "attestation"


def test_attachments_follow_their_subject_and_go_after_it() -> None:
    inventory, old, new = two_alphas()
    plan = plan_repository(inventory, policy(), NOW)
    got = fates(plan)
    assert got[sig_tag(new)] == (Action.KEEP, "signature of 1.0.0-alpha.2")
    assert got[referrers_tag(new)] == (Action.KEEP, "referrers index of 1.0.0-alpha.2")
    assert got[sig_tag(old)] == (Action.DELETE, "signature of deleted 1.0.0-alpha.1")
    assert got[digest(21)] == (Action.DELETE, "SBOM of deleted 1.0.0-alpha.1")
    phases = [(step.phase, step.digest) for step in plan.steps]
    assert phases == [
        (Phase.IMAGE, old),
        (Phase.ATTACHMENT_INDEX, digest(31)),
        (Phase.ATTACHMENT, digest(11)),
        (Phase.ATTACHMENT_CHILD, digest(21)),
    ]
    assert plan.attachments_kept == {"SBOM": 1, "referrers index": 1, "signature": 1}


def test_attachments_keep_keeps_those_of_deleted_images_too() -> None:
    inventory, old, _ = two_alphas()
    plan = plan_repository(inventory, policy(attachments="keep"), NOW)
    assert [step.digest for step in plan.steps] == [old]
    assert fates(plan)[sig_tag(old)] == (Action.KEEP, "signature of deleted 1.0.0-alpha.1; kept (attachments: keep)")


def test_attachments_never_take_a_keep_slot_even_when_match_catches_them() -> None:
    inventory, _, new = two_alphas()
    plan = plan_repository(inventory, policy(match=re.compile(".*"), keep=1), NOW)
    got = fates(plan)
    assert got["1.0.0-alpha.2"][0] is Action.KEEP and got["1.0.0-alpha.1"][0] is Action.DELETE
    assert got[sig_tag(new)] == (Action.KEEP, "signature of 1.0.0-alpha.2")


def test_a_protected_signature_tag_is_kept_and_a_scheme_named_image_tag_protects_its_image() -> None:
    inventory, old, _ = two_alphas()
    plan = plan_repository(inventory, policy(protect=(re.compile(r"\.sig$"),)), NOW)
    assert fates(plan)[sig_tag(old)] == (Action.KEEP, r"protected by '\.sig$'")
    inventory, old, _ = two_alphas()
    inventory.tags[sig_tag(digest(99))] = old  # a signature-named tag that names alpha.1 itself
    plan = plan_repository(inventory, policy(), NOW)
    assert fates(plan)["1.0.0-alpha.1"][1] == f"shares digest with {sig_tag(digest(99))}"


def test_orphans_are_kept_unless_asked_and_then_only_when_no_repository_holds_their_subject() -> None:
    gone = digest(5)
    manifests = [image(1), signature(11)]
    tags = {"1.0.0-alpha.1": digest(1), sig_tag(gone): digest(11)}

    def planned(rules: RetentionPolicy, **facts: object) -> RepositoryPlan:
        inventory = repo(dict(tags), manifests)
        for name, value in facts.items():
            setattr(inventory, name, value)
        return plan_repository(inventory, rules, NOW)

    listed = planned(policy())
    assert [o.digest for o in listed.orphans] == [digest(11)] and listed.orphans[0].bytes == 300 + 50 + 200
    assert listed.orphans[0].action is Action.KEEP and not listed.steps
    unchecked = planned(policy(orphans="delete"), elsewhere_error="the catalog is forbidden")
    assert "could not be checked (the catalog is forbidden)" in unchecked.orphans[0].reason and not unchecked.steps
    held = planned(policy(orphans="delete"), elsewhere={gone: "team/base"})
    assert "lives in team/base" in held.orphans[0].reason and not held.steps
    pruned = planned(policy(orphans="delete"), elsewhere={})
    assert [(s.digest, s.phase) for s in pruned.steps] == [(digest(11), Phase.ATTACHMENT)]
    assert pruned.orphans[0].action is Action.DELETE
    finished = planned(policy(), deleted_before={gone})  # an earlier run deleted the subject, then died
    assert [s.digest for s in finished.steps] == [digest(11)] and "earlier run" in finished.orphans[0].reason
    untagged = planned(policy(orphans="delete"), elsewhere={}, present={gone})  # it exists, untagged
    assert not untagged.steps and not untagged.orphans
    assert fates(untagged)[sig_tag(gone)][1].startswith("signature of untagged sha256:")


def test_an_unresolved_tag_blocks_attachment_deletions_too() -> None:
    inventory, _, _ = two_alphas()
    inventory.unresolved = {"1.0.0-alpha.9": "HTTP 500"}
    plan = plan_repository(inventory, policy(), NOW)
    assert not plan.steps and plan.blocked
    inventory = repo({sig_tag(digest(5)): digest(11)}, [signature(11)])
    inventory.unresolved, inventory.elsewhere = {"x": "HTTP 500"}, {}
    plan = plan_repository(inventory, policy(orphans="delete"), NOW)
    assert not plan.steps and plan.blocked and plan.orphans[0].action is Action.KEEP


def test_a_kept_referrers_index_is_rewritten_without_an_entry_deleted_with_another_subject() -> None:
    inventory, _, new = two_alphas()
    # alpha.1's SBOM also listed in alpha.2's referrers index.
    inventory.manifests[digest(32)] = index(32, [digest(22), digest(21)])
    inventory.raw[digest(32)] = referrers_raw([digest(22), digest(21)])
    plan = plan_repository(inventory, policy(), NOW)
    rewrite = next(step for step in plan.steps if step.phase is Phase.REWRITE)
    assert rewrite.digest == digest(32) and rewrite.tags == (referrers_tag(new),)
    assert rewrite.replacement is not None
    assert [e["digest"] for e in json.loads(rewrite.replacement)["manifests"]] == [digest(22)]
    gone = next(step for step in plan.steps if step.digest == digest(21))
    assert gone.unlisted_from == (referrers_tag(new),) and gone.phase > rewrite.phase
    assert fates(plan)[referrers_tag(new)][0] is Action.KEEP
    # When nothing is left to list, the index goes instead of being rewritten.
    inventory.manifests[digest(32)] = index(32, [digest(21)])
    inventory.raw[digest(32)] = referrers_raw([digest(21)])
    plan = plan_repository(inventory, policy(), NOW)
    assert Phase.REWRITE not in {s.phase for s in plan.steps}
    assert fates(plan)[referrers_tag(new)][0] is Action.DELETE
    # Without its bytes it cannot be rewritten: the entry it lists stays.
    inventory.manifests[digest(32)] = index(32, [digest(22), digest(21)])
    del inventory.raw[digest(32)]
    plan = plan_repository(inventory, policy(), NOW)
    assert digest(21) not in {s.digest for s in plan.steps}


def test_without_entries_keeps_everything_else_byte_for_byte() -> None:
    raw = referrers_raw([digest(1), digest(2)])
    new = without_entries(raw, {digest(1)})
    assert json.loads(new) == {**json.loads(raw), "manifests": json.loads(raw)["manifests"][1:]}
    parsed = parse_manifest(new, compute_digest(new), None)
    assert [c.digest for c in parsed.children] == [digest(2)]


def test_a_kept_attachment_inside_a_deleted_index_keeps_it_there() -> None:
    # An image index (alpha.1, deleted) whose child is a signature of alpha.2 (kept).
    old, new = digest(3), digest(2)
    manifests = [image(2), signature(11, subject=new), index(3, [digest(11)])]
    plan = plan_repository(repo({"1.0.0-alpha.1": old, "1.0.0-alpha.2": new}, manifests), policy(), NOW)
    assert [step.digest for step in plan.steps] == [old]  # the index, not the signature it holds


def test_buildx_attestations_go_with_their_index_after_the_images_and_do_not_date_it() -> None:
    platform, attestation = image(1), image(2)
    buildx = index(3, [platform.digest, attestation.digest], ((attestation.digest, platform.digest),))
    manifests = [platform, attestation, buildx, image(4)]
    inventory = repo({"1.0.0-alpha.1": buildx.digest, "1.0.0-alpha.2": digest(4)}, manifests)
    configs = {platform.config.digest: NOW - timedelta(days=3), attestation.config.digest: None}  # type: ignore[union-attr]
    assert created_of(buildx.digest, inventory.manifests, configs) == NOW - timedelta(days=3)
    plan = plan_repository(inventory, policy(), NOW)
    steps = {step.digest: step for step in plan.steps}
    assert (
        steps[attestation.digest].phase is Phase.ATTACHMENT_CHILD
        and steps[attestation.digest].attachment == "attestation"
    )
    assert steps[platform.digest].phase is Phase.ORPHAN_CHILD


def test_a_cycle_of_tag_claims_keeps_both() -> None:
    a, b = signature(11), signature(12)
    inventory = repo({sig_tag(b.digest): a.digest, sig_tag(a.digest): b.digest}, [a, b])
    plan = plan_repository(inventory, policy(orphans="delete"), NOW)
    assert not plan.steps


def test_parse_manifest_reads_subject_artifact_type_and_attestation_entries() -> None:
    platform, attestation = digest(1), digest(2)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mediatypes.OCI_MANIFEST,
                    "digest": platform,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "mediaType": mediatypes.OCI_MANIFEST,
                    "digest": attestation,
                    "size": 1,
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": platform,
                    },
                    "platform": {"os": "unknown", "architecture": "unknown"},
                },
            ],
        }
    ).encode()
    parsed = parse_manifest(body, compute_digest(body), None)
    assert parsed.attestations == ((attestation, platform),)
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(3), "size": 2},
            "layers": [],
            "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": platform, "size": 1},
        }
    ).encode()
    parsed = parse_manifest(artifact, compute_digest(artifact), None)
    assert parsed.subject == platform and parsed.artifact_type == "application/spdx+json"
