"""Unit tests: version ordering, globs, configuration and the planner's rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline_step.errors import UsageError
from pipeline_step.planning.inventory import RepositoryInventory
from pipeline_step.planning.planner import Action, Phase, plan_repository
from pipeline_step.planning.reclaim import predict_reclaim
from pipeline_step.policy.config import Configuration, RetentionPolicy, Settings, load_configuration
from pipeline_step.policy.globs import glob_matches
from pipeline_step.policy.versions import version_key
from pipeline_step.registry import mediatypes
from pipeline_step.registry.model import Descriptor, Manifest, parse_timestamp

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def digest(n: int | str) -> str:
    return "sha256:" + str(n).rjust(64, "0")[-64:]


def image(d: str, *layers: tuple[str, int]) -> Manifest:
    blobs = tuple(Descriptor(layer, size) for layer, size in layers)
    return Manifest(d, mediatypes.DOCKER_MANIFEST, 500, config=Descriptor(digest("c" + d[-6:]), 100), layers=blobs)


def index(d: str, *children: str) -> Manifest:
    return Manifest(d, mediatypes.OCI_INDEX, 300, children=tuple(Descriptor(c, 500) for c in children))


def policy(**values: object) -> RetentionPolicy:
    configuration = load_configuration(None, flags={f"policy.{k}": v for k, v in values.items()})
    return configuration.policy_for("team/app")


def inventory(tags: dict[str, str], manifests: list[Manifest] | None = None, **extra: object) -> RepositoryInventory:
    inv = RepositoryInventory("team/app", tags=dict(tags))
    for manifest in manifests or []:
        inv.manifests[manifest.digest] = manifest
    for d in set(tags.values()):
        inv.manifests.setdefault(d, image(d))
    for key, value in extra.items():
        setattr(inv, key, value)
    return inv


def decisions(plan_: object) -> dict[str | None, tuple[Action, str]]:
    return {d.tag: (d.action, d.reason) for d in plan_.decisions}  # type: ignore[attr-defined]


# -- versions and globs -------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("3.3.0-alpha.9", "3.3.0-alpha.10"),
        ("3.3.0-alpha.74", "3.3.0-beta.1"),
        ("3.3.0-alpha", "3.3.0-alpha.1"),
        ("3.3.0-rc.1", "3.3.0"),
        ("3.2.9", "3.3.0-alpha.1"),
        ("1.9.0", "1.10.0"),
        ("v1.2.3-1", "1.2.3-2"),
        ("1.0.0-2", "1.0.0-alpha"),  # numeric identifiers sort below alphanumeric ones
    ],
)
def test_semver_order(older: str, newer: str) -> None:
    old_key, new_key = version_key(older), version_key(newer)
    assert old_key is not None and new_key is not None
    assert old_key < new_key


def test_version_key_equivalences_and_rejects() -> None:
    assert version_key("v1.2") == version_key("1.2.0")
    assert version_key("1.2.3+build.5") == version_key("1.2.3")
    for tag in ("latest", "main-abc123", "1.2.3-", "release-1.2", ""):
        assert version_key(tag) is None


def test_globs_keep_star_within_a_component() -> None:
    assert glob_matches("team/*", "team/app")
    assert not glob_matches("team/*", "team/sub/app")
    assert glob_matches("team/**", "team/sub/app")
    assert glob_matches("team/app-[ab]", "team/app-b")
    assert not glob_matches("team/app", "team/app2")


# -- configuration ------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prune.yml"
    path.write_text(text)
    return path


def test_defaults_protect_latest_and_releases() -> None:
    p = Configuration(Settings()).policy_for("team/app")
    assert p.keep == 10 and p.order == "semver"
    assert p.protected_by("latest") and p.protected_by("3.2.0") and p.protected_by("v3.2.0")
    assert p.protected_by("3.2.0-alpha.1") is None
    assert p.not_candidate_reason("3.2.0-alpha.1") is None
    assert p.not_candidate_reason("main") == r"does not match '^v?\d+\.\d+\.\d+-'"


def test_most_specific_override_wins_and_flags_win_over_all(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
registry: {url: http://127.0.0.1:5000}
policy: {keep: 10, match: alpha}
overrides:
  "team/*": {keep: 5}
  "team/app": {keep: 20, older_than: 3d}
  "**": {keep: 1}
""",
    )
    configuration = load_configuration(path)
    assert configuration.policy_for("team/app").keep == 20
    assert configuration.policy_for("team/app").older_than == timedelta(days=3)
    assert configuration.policy_for("team/web").keep == 5
    assert configuration.policy_for("other/x").keep == 1
    assert configuration.policy_for("team/web").match.pattern == "alpha"
    with_flags = load_configuration(path, flags={"policy.keep": 7, "policy.protect": ["^keep-"]})
    assert with_flags.policy_for("team/app").keep == 7
    assert [p.pattern for p in with_flags.policy_for("team/app").protect][-1] == "^keep-"
    assert len(with_flags.policy_for("team/app").protect) == 3  # --protect adds to the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policy: {keep: -1}", "policy.keep: must be >= 0 (got -1)"),
        ("policy: {kep: 3}", "policy.kep: unknown key (did you mean 'keep'?"),
        ("policy: {match: '('}", "policy.match: invalid regular expression '('"),
        ("policy: {order: newest}", "policy.order: must be one of 'semver' or 'created' (got 'newest')"),
        ("policy: {older_than: 2 weeks}", "policy.older_than: '2 weeks' is not a duration"),
        ("registry: {url: 'reg:5000'}", "registry.url: registry URL 'reg:5000' has no http:// or https:// scheme"),
        ("registry: {url: 'http://r', password: x}", "registry.password: passwords are never read from files"),
        ("overrides: {'team/*': {keep: x}}", "overrides.team/*.keep: must be an integer (got 'x')"),
        ("concurrency: 0", "concurrency: must be >= 1 (got 0)"),
        ("- a\n- b", "the top level must be a mapping"),
        ("policy: [unclosed", "invalid YAML at line 1"),
    ],
)
def test_config_errors_name_the_field_and_value(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_configuration(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(UsageError, match=r"^--keep: must be >= 0 \(got -1\)$"):
        load_configuration(None, flags={"policy.keep": -1}, flag_labels={"policy.keep": "--keep"})
    with pytest.raises(UsageError, match=r"^--match: invalid regular expression '\['"):
        load_configuration(None, flags={"policy.match": "["}, flag_labels={"policy.match": "--match"})


# -- planner ------------------------------------------------------------------


def test_candidate_sharing_a_digest_with_a_protected_tag_is_kept() -> None:
    tags = {f"1.0.0-alpha.{n}": digest(n) for n in range(1, 6)}
    tags["latest"] = digest(1)
    result = plan_repository(inventory(tags), policy(keep=2), NOW)
    got = decisions(result)
    assert got["1.0.0-alpha.1"] == (Action.KEEP, "shares digest with latest")
    assert {t for t, (a, _) in got.items() if a is Action.DELETE} == {"1.0.0-alpha.2", "1.0.0-alpha.3"}
    assert {s.digest for s in result.steps} == {digest(2), digest(3)}


def test_two_candidates_on_one_digest_are_deleted_by_one_step() -> None:
    tags = {"1.0.0-alpha.1": digest(1), "1.0.0-alpha.1+rebuild": digest(1), "1.0.0-alpha.9": digest(9)}
    result = plan_repository(inventory(tags), policy(keep=1), NOW)
    assert [(s.digest, s.tags) for s in result.steps] == [(digest(1), ("1.0.0-alpha.1", "1.0.0-alpha.1+rebuild"))]


def test_a_kept_candidate_on_a_shared_digest_saves_the_other_candidate() -> None:
    tags = {"1.0.0-alpha.1": digest(7), "1.0.0-alpha.9": digest(7), "1.0.0-alpha.5": digest(5)}
    result = plan_repository(inventory(tags), policy(keep=1), NOW)
    got = decisions(result)
    assert got["1.0.0-alpha.9"][0] is Action.KEEP
    assert got["1.0.0-alpha.1"] == (Action.KEEP, "shares digest with 1.0.0-alpha.9")
    assert got["1.0.0-alpha.5"][0] is Action.DELETE


def test_children_of_a_kept_index_are_never_deleted_even_when_tagged_as_candidates() -> None:
    child_a, child_b = digest("a1"), digest("b1")
    tags = {"multi": digest("ff"), "1.0.0-alpha.1": child_a, "1.0.0-alpha.2": digest(2), "1.0.0-alpha.3": digest(3)}
    inv = inventory(tags, [index(digest("ff"), child_a, child_b), image(child_b)])
    got = decisions(plan_repository(inv, policy(keep=1), NOW))
    assert got["1.0.0-alpha.1"] == (Action.KEEP, "referenced by kept index multi")
    assert got["1.0.0-alpha.2"][0] is Action.DELETE


def test_deleting_an_index_deletes_its_orphaned_children_after_it() -> None:
    child_a, child_b, shared = digest("a1"), digest("b1"), digest("5a")
    tags = {
        "1.0.0-alpha.1": digest("f1"),  # an old multi-arch pre-release
        "1.0.0-alpha.2": digest("f2"),  # the kept one, sharing one child
    }
    inv = inventory(
        tags,
        [
            index(digest("f1"), child_a, shared),
            index(digest("f2"), child_b, shared),
            image(child_a),
            image(child_b),
            image(shared),
        ],
    )
    result = plan_repository(inv, policy(keep=1), NOW)
    phases = [(s.phase, s.digest) for s in result.steps]
    assert phases == [(Phase.INDEX, digest("f1")), (Phase.ORPHAN_CHILD, child_a)]
    orphan = [d for d in result.decisions if d.tag is None]
    assert orphan[0].reason == "untagged child of deleted index 1.0.0-alpha.1"


def test_unordered_candidates_are_kept() -> None:
    tags = {"1.0.0-alpha.1": digest(1), "1.0.0-alpha.2": digest(2), "nightly-alpha": digest(3)}
    got = decisions(plan_repository(inventory(tags), policy(keep=0, match="alpha"), NOW))
    assert got["nightly-alpha"] == (Action.KEEP, "not a semantic version, so it cannot be ordered by semver")
    assert got["1.0.0-alpha.1"][0] is got["1.0.0-alpha.2"][0] is Action.DELETE


def test_older_than_keeps_young_and_unknown_ages() -> None:
    tags = {f"1.0.0-alpha.{n}": digest(n) for n in range(1, 5)}
    inv = inventory(
        tags,
        created={
            digest(1): NOW - timedelta(days=30),
            digest(2): NOW - timedelta(days=2),
            digest(3): None,
            digest(4): NOW,
        },
    )
    got = decisions(plan_repository(inv, policy(keep=1, older_than="14d"), NOW))
    assert got["1.0.0-alpha.4"][0] is Action.KEEP  # newest
    assert got["1.0.0-alpha.3"] == (Action.KEEP, "age unknown, so it is kept (older_than is set)")
    assert got["1.0.0-alpha.2"] == (Action.KEEP, "younger than 14d (2d old)")
    assert got["1.0.0-alpha.1"][0] is Action.DELETE
    assert "older than 14d (30d old)" in got["1.0.0-alpha.1"][1]


def test_created_order_ranks_by_time_and_keeps_unknown() -> None:
    tags = {"a-1": digest(1), "a-2": digest(2), "a-3": digest(3), "a-4": digest(4)}
    inv = inventory(
        tags,
        created={
            digest(1): NOW,
            digest(2): NOW - timedelta(days=1),
            digest(3): NOW - timedelta(days=2),
            digest(4): None,
        },
    )
    got = decisions(plan_repository(inv, policy(keep=1, match="^a-", order="created"), NOW))
    assert got["a-1"][0] is Action.KEEP
    assert got["a-4"] == (Action.KEEP, "creation time unknown, so it cannot be ordered by age")
    assert got["a-2"][0] is got["a-3"][0] is Action.DELETE


def test_an_unresolved_tag_blocks_every_deletion_in_the_repository() -> None:
    tags = {f"1.0.0-alpha.{n}": digest(n) for n in range(1, 6)}
    inv = inventory(tags, unresolved={"1.0.0-alpha.9": "HTTP 500"})
    result = plan_repository(inv, policy(keep=1), NOW)
    assert result.steps == []
    assert result.blocked and "1.0.0-alpha.9 could not be resolved" in result.blocked
    assert all(d.action is Action.KEEP for d in result.decisions)


def test_vanished_tags_do_not_block() -> None:
    tags = {f"1.0.0-alpha.{n}": digest(n) for n in range(1, 4)}
    result = plan_repository(inventory(tags, vanished={"1.0.0-alpha.9"}), policy(keep=1), NOW)
    assert len(result.steps) == 2


def test_reclaim_counts_shared_blobs_once_and_only_when_unreferenced() -> None:
    base, own1, own2 = (digest("ba5e"), 1000), (digest("1a1"), 10), (digest("1a2"), 20)
    doomed, kept = image(digest(1), base, own1), image(digest(2), base, own2)
    other_repo = RepositoryInventory("team/other", tags={"x": digest(3)}, manifests={digest(3): image(digest(3), base)})
    inv = RepositoryInventory(
        "team/app", tags={"a": digest(1), "b": digest(2)}, manifests={digest(1): doomed, digest(2): kept}
    )
    estimate = predict_reclaim([inv, other_repo], {"team/app": {digest(1)}})
    assert doomed.config is not None
    assert estimate.bytes == 500 + 100 + 10  # manifest + config + own layer; the base layer survives
    both = predict_reclaim([inv], {"team/app": {digest(1), digest(2)}})
    assert both.bytes == 2 * (500 + 100) + 1000 + 10 + 20


def test_planning_is_deterministic() -> None:
    tags = {f"1.0.0-alpha.{n}": digest(n % 7) for n in range(1, 30)}
    tags["latest"] = digest(3)
    first = plan_repository(inventory(tags), policy(keep=4), NOW)
    second = plan_repository(inventory(dict(reversed(list(tags.items())))), policy(keep=4), NOW)
    assert first.decisions == second.decisions and first.steps == second.steps


def test_parse_timestamp_handles_go_nanoseconds_and_zero_times() -> None:
    assert parse_timestamp("2024-05-01T10:11:12.123456789Z") == datetime(
        2024, 5, 1, 10, 11, 12, 123456, tzinfo=timezone.utc
    )
    assert parse_timestamp("0001-01-01T00:00:00Z") is None
    assert parse_timestamp("1970-01-01T00:00:00Z") is None
    assert parse_timestamp("yesterday") is None


# -- traps a new user's trial found ------------------------------------------------------------


def test_equal_creation_times_are_ordered_by_version_and_said_so() -> None:
    """Reproducible builds give images one `created` (SOURCE_DATE_EPOCH): the time tells nothing apart."""
    same = datetime(2020, 6, 1, tzinfo=timezone.utc)
    tags = {f"3.3.0-alpha.{n}": digest(n) for n in range(1, 13)}
    inv = inventory(tags, created={digest(n): same for n in range(1, 13)})
    plan = plan_repository(inv, policy(keep=2, match="alpha", order="created"), NOW)
    got = decisions(plan)
    kept = sorted(tag for tag, (action, _) in got.items() if action is Action.KEEP)
    assert kept == ["3.3.0-alpha.11", "3.3.0-alpha.12"]
    assert plan.notes == [
        "12 of 12 candidates in team/app share one creation time (2020-06-01T00:00:00+00:00), as reproducible "
        "builds make them: they are ordered by version, then by tag name"
    ]


def test_ties_between_tags_that_are_not_versions_go_by_natural_name_order() -> None:
    same = datetime(2021, 1, 1, tzinfo=timezone.utc)
    tags = {"build-2": digest(2), "build-10": digest(10), "build-9": digest(9), "older": digest(1)}
    created = {digest(2): same, digest(10): same, digest(9): same, digest(1): same - timedelta(days=1)}
    got = decisions(plan_repository(inventory(tags, created=created), policy(keep=1, match="", order="created"), NOW))
    assert got["build-10"][0] is Action.KEEP
    assert {tag for tag, (action, _) in got.items() if action is Action.DELETE} == {"build-2", "build-9", "older"}


def test_the_source_label_names_where_each_knob_came_from(tmp_path: Path) -> None:
    """Precedence, per knob: flag, override by name, file policy, built-in default; the label is true."""
    path = write(
        tmp_path,
        """
registry: {url: http://127.0.0.1:5000}
policy: {match: alpha, order: created}
overrides:
  "team/big": {keep: 1}
""",
    )
    configuration = load_configuration(path, flags={"policy.older_than": "3d"})
    big = configuration.policy_for("team/big")
    assert big.sources == {
        "older_than": "flag --older-than",
        "keep": "override team/big",
        "match": "file policy",
        "order": "file policy",
        "exclude": "default",
        "protect": "default",
        "attachments": "default",
        "orphans": "default",
    }
    flagged = load_configuration(path, flags={"policy.keep": 4, "policy.protect": ["^keep-"]}).policy_for("team/big")
    assert flagged.keep == 4 and flagged.sources["keep"] == "flag --keep"  # the operator's word for this run wins
    assert flagged.sources["protect"] == "default + flag --protect"
    assert flagged.describe()["source"]["keep"] == "flag --keep"
