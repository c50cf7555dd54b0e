"""Fault injection between registry-prune and a real docker-registry.

A recording proxy on 127.0.0.1 (tests/support/proxy.py) injects 5xx and 429
answers with Retry-After, connection resets, answers slower than ``--timeout``,
truncated and non-JSON bodies, and manifests that do not hash to their
Docker-Content-Digest. Every test runs twice, once per transport (lean and
httpx). For every schedule the test checks, against the
registry itself (never through the proxy):

* no kept or protected manifest was ever sent a DELETE (the proxy's record);
* the exit code says whether the run did everything;
* the report's deleted / failed / not-attempted lists are exactly what
  happened on the registry;
* retries are bounded in count and time;
* a rerun without faults ends in exactly the planned state.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_step.errors import RegistryServerError
from pipeline_step.registry.http.choose import open_client
from tests.support.cli import CliResult, run_cli
from tests.support.fault_seed import SeededStorage, alpha, write_app
from tests.support.images import list_tags
from tests.support.proxy import Fault, RecordingProxy, Rule, Rules, Schedule, first_of
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.registry_state import RegistryState

TIMEOUT = 1.5  # --timeout for every faulty run; slow faults take longer than this
SLOW = 2.5
ATTEMPTS = 4  # RetryPolicy.attempts
# The lean transport resends once when a reused keep-alive connection is reset
# before any answer (indistinguishable from a stale connection), so a reset can
# cost two HTTP requests per attempt.
MAX_REQUESTS_PER_ATTEMPTS = 2 * ATTEMPTS
ZERO_DIGEST = "sha256:" + "0" * 64  # the executor's "are deletes enabled" probe

App = tuple[RegistryServer, SeededStorage]


@pytest.fixture(params=["lean", "httpx"], autouse=True)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every fault runs through both transports: the lean default and httpx, used behind proxies."""
    kind: str = request.param
    monkeypatch.setenv("REGISTRY_PRUNE_TRANSPORT", kind)
    return kind


@dataclass
class FaultyRun:
    result: CliResult
    report: dict[str, Any] | None
    proxy: RecordingProxy
    elapsed: float

    def tags(self, section: str) -> set[str]:
        assert self.report is not None
        return {entry["tag"] for entry in self.report[section] if entry["tag"]}

    def requests_to(self, method: str, digest_or_tag: str) -> int:
        return sum(1 for r in self.proxy.requests if r.method == method and r.path.endswith(f"/{digest_or_tag}"))


@pytest.fixture
def app(registry_factory: RegistryFactory, tmp_path: Path) -> App:
    seed = write_app(tmp_path / "seeded", count=30, keep=10)
    return registry_factory("faults", storage=seed.storage), seed


def prune_through(
    server: RegistryServer, seed: SeededStorage, schedule: Schedule, report: Path, *, timeout: float = TIMEOUT
) -> FaultyRun:
    with RecordingProxy(server.url, schedule=schedule) as proxy:
        started = time.monotonic()
        result = run_cli(
            "prune",
            "--registry",
            proxy.url,
            *seed.policy,
            "--timeout",
            str(timeout),
            "--no-progress",
            "--json",
            str(report),
            timeout=300,
        )
        elapsed = time.monotonic() - started
        proxy.wait_idle()  # a slow fault may still be forwarding
    document = json.loads(report.read_text()) if report.exists() else None
    return FaultyRun(result, document, proxy, elapsed)


def image_digests(seed: SeededStorage) -> list[str]:
    """Planned deletions that are plain images (not the index), in a stable order."""
    return sorted(digest for tag, digest in seed.expected_deleted.items() if tag != alpha(2))


def path_of(digest: str) -> str:
    return f"/manifests/{digest}$"


def audit_fetch(seed: SeededStorage, digest: str, fault: Fault) -> Rule:
    """Fault the fetch of ``digest``'s manifest for the undo log, just before its DELETE.

    That is a GET by its tag (which also re-checks the tag) or by digest; planning's
    own GET of each tag comes before any DELETE and goes through.
    """
    references = [digest] + [re.escape(tag) for tag, d in seed.tags.items() if d == digest]
    return Rule(fault, method="GET", path=f"/manifests/({'|'.join(references)})$", once_deleting=True)


# -- the checks every schedule must pass ---------------------------------------


def assert_kept_never_sent_a_delete(run: FaultyRun, seed: SeededStorage) -> None:
    deleted = {path.rsplit("/", 1)[1] for (_, path) in run.proxy.counts("DELETE")}
    kept_tags = {tag for tag, digest in seed.tags.items() if digest in seed.kept_digests}
    assert not deleted & (seed.kept_digests | kept_tags)
    probes = {reference for reference in deleted if reference.startswith("registry-prune-probe-")}
    # By digest; on 3.x also each planned tag first (DELETE by tag), and the probe of that.
    allowed = {*seed.expected_deleted.values(), *seed.expected_deleted, seed.own_child.digest, ZERO_DIGEST}
    assert deleted - probes <= allowed


def assert_report_matches_registry(run: FaultyRun, server: RegistryServer, seed: SeededStorage) -> None:
    """Exactly the tags the report lists as deleted are gone; everything it lists otherwise is there."""
    assert run.report is not None, run.result.output
    with RegistryState(server.url) as registry:
        assert set(registry.tags(seed.repo)) == set(seed.tags) - run.tags("deleted")
        # On 3.x a step's tags go first: when its manifest's DELETE then fails, the tags are deleted and
        # the manifest is listed again, untagged, as failed.
        still_there = {entry["digest"] for entry in run.report["failed"] if entry["tag"] is None}
        for entry in run.report["deleted"]:
            if entry["digest"] not in still_there:
                assert registry.resolve(seed.repo, entry["digest"]) is None, entry
        for section in ("failed", "skipped", "not_attempted"):
            for entry in run.report[section]:
                assert registry.resolve(seed.repo, entry["digest"]) == entry["digest"], (section, entry)
    planned = set().union(*(run.tags(s) for s in ("deleted", "failed", "skipped", "not_attempted")))
    assert planned == set(seed.expected_deleted)
    assert run.report["exit_code"] == run.result.code


def assert_retries_bounded(run: FaultyRun, limit: float) -> None:
    """No request was retried more than the policy allows, and the run ended in time."""
    streaks: dict[tuple[str, str], int] = defaultdict(int)
    longest = 0
    for request in run.proxy.requests:
        key = (request.method, request.path)
        streaks[key] = streaks[key] + 1 if request.fault else 0
        longest = max(longest, streaks[key])
    assert longest <= MAX_REQUESTS_PER_ATTEMPTS
    assert run.elapsed < limit


def assert_planned_end_state(server: RegistryServer, seed: SeededStorage) -> None:
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.expected_kept  # so every kept tag's manifest exists
        untagged = seed.kept_digests - set(seed.expected_kept.values())
        assert registry.present(seed.repo, untagged) == untagged
        assert registry.present(seed.repo, {*seed.expected_deleted.values(), seed.own_child.digest}) == set()


def rerun_as(run: FaultyRun, server: RegistryServer, *args: str) -> CliResult:
    """A fault-free rerun at the first run's address: the undo log it reads names the registry so."""
    port = int(run.proxy.url.rsplit(":", 1)[1])
    with RecordingProxy(server.url, port=port) as proxy:
        return run_cli("prune", "--registry", proxy.url, *args, "--no-progress")


def assert_rerun_converges(server: RegistryServer, seed: SeededStorage, run: FaultyRun) -> None:
    rerun = rerun_as(run, server, *seed.policy)
    assert rerun.code == 0, rerun.output
    assert_planned_end_state(server, seed)


def assert_one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("registry-prune: error: ") and "Traceback" not in stderr
    return lines[0]


# -- the plan the schedules are judged against ----------------------------------


def test_the_plan_is_the_seeded_expectation(app: App, tmp_path: Path) -> None:
    server, seed = app
    result = run_cli("plan", "--registry", server.url, *seed.policy, "--json", str(tmp_path / "plan.json"))
    assert result.code == 0, result.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert {e["tag"] for e in plan["deleted"] if e["tag"]} == set(seed.expected_deleted)
    assert {e["tag"] for e in plan["kept"]} == set(seed.expected_kept)
    assert [e["digest"] for e in plan["deleted"] if e["tag"] is None] == [seed.own_child.digest]
    assert {e["tag"]: e["reason"] for e in plan["kept"]}[alpha(3)] == "shares digest with latest"


# -- one schedule per fault kind --------------------------------------------------


def test_transient_5xx_and_429_are_retried_and_the_run_completes(app: App, tmp_path: Path) -> None:
    server, seed = app
    # One Rules, so its cap covers the DELETE rule too: as two schedules, a DELETE could draw two faults
    # from each and exhaust its four attempts, whenever the request count happened to line up.
    schedule = Rules(
        Rule(Fault("status", 503, retry_after="1"), method="DELETE", path="/manifests/sha256:[1-9a-f]", limit=2),
        Rule(Fault("status", 500), every=5),
        Rule(Fault("status", 502), every=7),
        Rule(Fault("status", 503, retry_after="0"), every=9),
        Rule(Fault("status", 429, retry_after="0.1"), every=11),
        cap_per_request=2,  # a third attempt always gets through
    )
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 0, run.result.output
    assert {f.status for f in run.proxy.faulted()} == {500, 502, 503, 429}
    assert_kept_never_sent_a_delete(run, seed)
    assert_report_matches_registry(run, server, seed)
    assert run.tags("deleted") == set(seed.expected_deleted)
    assert_retries_bounded(run, limit=60)
    assert_planned_end_state(server, seed)
    # The first two DELETEs by digest were told "Retry-After: 1", and waited for it.
    told = [r for r in run.proxy.faulted() if r.method == "DELETE" and r.status == 503 and "/sha256:" in r.path]
    for fault in told[:2]:
        retry = next(r for r in run.proxy.requests if r.path == fault.path and r.at > fault.at)
        assert retry.at - fault.at >= 0.95


def test_persistent_5xx_on_some_deletes_fails_exactly_those(app: App, tmp_path: Path) -> None:
    server, seed = app
    doomed = image_digests(seed)
    refused = {doomed[3], doomed[9]}
    schedule = Rules(Rule(Fault("status", 502), method="DELETE", path=f"/manifests/({'|'.join(refused)})$"))
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 5, run.result.output
    assert run.report is not None and run.report["outcome"] == "partial"
    assert {e["digest"] for e in run.report["failed"]} == refused
    assert all("HTTP 502" in e["reason"] and "4 attempts" in e["reason"] for e in run.report["failed"])
    for digest in refused:
        assert run.requests_to("DELETE", digest) == ATTEMPTS
    assert_kept_never_sent_a_delete(run, seed)
    assert_report_matches_registry(run, server, seed)
    assert_retries_bounded(run, limit=60)
    assert_rerun_converges(server, seed, run)


def test_retry_after_is_capped_and_attempts_are_counted(app: App) -> None:
    """A registry asking for an hour's pause gets the policy's maximum, four times at most."""
    server, _ = app
    slept: list[float] = []
    schedule = Rules(Rule(Fault("status", 429, retry_after="3600"), path="^/v2/$"))
    with (
        RecordingProxy(server.url, schedule=schedule) as proxy,
        open_client(proxy.url, sleep=slept.append) as client,
        pytest.raises(RegistryServerError) as raised,
    ):
        client.ping()
    assert slept == [8.0, 8.0, 8.0]
    assert len(proxy.requests) == ATTEMPTS
    assert raised.value.status == 429 and "after 4 attempts" in str(raised.value)


def test_a_429_storm_stops_the_run_after_five_failed_deletions(app: App, tmp_path: Path) -> None:
    server, seed = app
    # Every real DELETE: by digest, and on 3.x by tag too (the tags are 3.x.y-alpha.N; the probes are not hit).
    storm = Fault("status", 429, retry_after="0.1")
    schedule = Rules(Rule(storm, method="DELETE", path=r"/manifests/(sha256:[1-9a-f]|\d)"))
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 4, run.result.output
    assert "stopped after 5 failed deletions in a row" in run.result.stderr
    assert run.report is not None and run.report["outcome"] == "failed"
    assert run.report["deleted"] == []
    assert 5 <= len(run.report["failed"]) <= 5 + 4  # in-flight deletions at concurrency 4 finish
    assert_kept_never_sent_a_delete(run, seed)
    assert_report_matches_registry(run, server, seed)
    assert max(run.proxy.counts("DELETE").values()) <= ATTEMPTS
    assert_retries_bounded(run, limit=30)
    assert_rerun_converges(server, seed, run)


def test_connection_resets_and_lost_delete_answers(app: App, tmp_path: Path) -> None:
    """A reset after the registry applied a DELETE must be reported as a deletion, not a failure."""
    server, seed = app
    doomed = image_digests(seed)
    lost = {doomed[2], doomed[12]}
    schedule = first_of(
        Rules(Rule(Fault("reset", forward=True), method="DELETE", path=f"/manifests/({'|'.join(lost)})$")),
        Rules(Rule(Fault("reset"), every=3), cap_per_request=1),
    )
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 0, run.result.output
    assert_report_matches_registry(run, server, seed)
    assert run.report is not None
    reasons = {e["digest"]: e["reason"] for e in run.report["deleted"]}
    for digest in lost:
        assert "the manifest is gone" in reasons[digest] or "already gone" in reasons[digest]
    assert_kept_never_sent_a_delete(run, seed)
    assert_retries_bounded(run, limit=60)
    assert_planned_end_state(server, seed)


def test_answers_slower_than_the_timeout(app: App, tmp_path: Path) -> None:
    server, seed = app
    doomed = image_digests(seed)
    schedule = Rules(
        # The registry deletes, but every answer comes too late: four timeouts, then a re-check.
        Rule(Fault("slow", delay=1.6, forward=True), method="DELETE", path=path_of(doomed[5])),
        # A read that is slow once, then fine.
        Rule(Fault("slow", delay=1.6), method="GET", path=f"/manifests/{alpha(20)}$", limit=1),
    )
    run = prune_through(server, seed, schedule, tmp_path / "r.json", timeout=1.0)
    assert run.result.code == 0, run.result.output
    assert run.requests_to("DELETE", doomed[5]) <= ATTEMPTS
    assert_report_matches_registry(run, server, seed)
    assert_kept_never_sent_a_delete(run, seed)
    # Four 1 s timeouts for the slow DELETE, plus backoff, plus the run itself.
    assert_retries_bounded(run, limit=40)
    assert_planned_end_state(server, seed)


def test_truncated_bodies_are_retried(app: App, tmp_path: Path) -> None:
    server, seed = app
    schedule = Rules(Rule(Fault("truncate"), method="GET", every=3), cap_per_request=1)
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 0, run.result.output
    assert len(run.proxy.faulted()) > 10
    assert_report_matches_registry(run, server, seed)
    assert_retries_bounded(run, limit=60)
    assert_planned_end_state(server, seed)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("truncate"), "broke mid-response"),
        (Fault("garbage"), "the tag list of team/app is not valid JSON"),
        (Fault("replace", body=b'{"name": "team/app", "tags": "3.3.0-alpha.1"}'), "is not a list of names"),
    ],
    ids=["truncated", "non-json", "malformed"],
)
def test_a_broken_tag_list_fails_cleanly_and_deletes_nothing(
    app: App, tmp_path: Path, fault: Fault, message: str
) -> None:
    server, seed = app
    run = prune_through(server, seed, Rules(Rule(fault, method="GET", path="/tags/list")), tmp_path / "r.json")
    assert run.result.code == 4, run.result.output
    assert message in assert_one_line_error(run.result.stderr)
    assert run.proxy.counts("DELETE") == {}
    assert run.report is None or run.report["deleted"] == []
    assert list_tags(server.url, seed.repo) == sorted(seed.tags)
    assert run.requests_to("GET", "list") <= MAX_REQUESTS_PER_ATTEMPTS


def test_a_manifest_that_does_not_match_its_digest_blocks_the_repository(app: App, tmp_path: Path) -> None:
    """Such a tag cannot be resolved, so it might share a digest with a deletion: nothing is deleted."""
    server, seed = app
    spoiled = {alpha(7): "corrupt", alpha(8): "garbage"}
    schedule = Rules(*(Rule(Fault(kind), method="GET", path=f"/manifests/{tag}$") for tag, kind in spoiled.items()))
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.proxy.counts("DELETE") == {}
    assert list_tags(server.url, seed.repo) == sorted(seed.tags)
    assert run.report is not None, run.result.output
    assert run.report["deleted"] == [] and run.report["failed"] == []
    (repository,) = run.report["repositories"]
    assert repository["blocked"] is not None and alpha(7) in repository["blocked"]
    reasons = {e["tag"]: e["reason"] for e in run.report["kept"]}
    for tag in spoiled:
        assert reasons[tag].startswith("could not be resolved") and "does not hash to" in reasons[tag]
        assert f"cannot resolve team/app:{tag}" in run.result.stderr
    # Nothing happened, so the state is the seeded one; a clean run then converges as usual.
    assert_rerun_converges(server, seed, run)


def test_a_digest_mismatch_while_auditing_skips_that_deletion(app: App, tmp_path: Path) -> None:
    """The manifest fetched for the undo log must be verified; if it is not, its DELETE is not sent."""
    server, seed = app
    doomed = image_digests(seed)
    spoiled = {doomed[4]: "corrupt", doomed[14]: "garbage"}
    schedule = Rules(*(audit_fetch(seed, d, Fault(kind)) for d, kind in spoiled.items()))
    run = prune_through(server, seed, schedule, tmp_path / "r.json")
    assert run.result.code == 5, run.result.output
    assert run.report is not None
    assert {e["digest"] for e in run.report["failed"]} == set(spoiled)
    assert all("does not hash to" in e["reason"] for e in run.report["failed"])
    for digest in spoiled:
        assert run.requests_to("DELETE", digest) == 0
    assert_report_matches_registry(run, server, seed)
    assert_rerun_converges(server, seed, run)


# -- acceptance: every kind of fault during one prune of a 2,000-tag repository ----


def mixed_schedule(seed: SeededStorage) -> tuple[Schedule, dict[str, str]]:
    """Persistent faults on a few deletions (with the outcome each must be reported as),
    transient faults of every kind everywhere else."""
    # Deletions run in digest order: the slow one goes early, so its four timeouts overlap the rest.
    doomed = image_digests(seed)
    expected = {
        doomed[0]: "failed",  # 500 on every DELETE attempt
        doomed[1]: "deleted",  # applied, then every answer too slow
        doomed[2]: "deleted",  # applied, then the connection reset every time
        doomed[10]: "failed",  # corrupt manifest while writing the undo log
        doomed[20]: "failed",  # non-JSON manifest while writing the undo log
    }
    persistent = Rules(
        Rule(Fault("status", 500), method="DELETE", path=path_of(doomed[0])),
        Rule(Fault("slow", delay=SLOW, forward=True), method="DELETE", path=path_of(doomed[1])),
        Rule(Fault("reset", forward=True), method="DELETE", path=path_of(doomed[2])),
        audit_fetch(seed, doomed[10], Fault("corrupt")),
        audit_fetch(seed, doomed[20], Fault("garbage")),
    )
    # About 3% of requests: a hundred or so faults, each costing a backoff sleep.
    transient = Rules(
        Rule(Fault("status", 500), every=151),
        Rule(Fault("status", 502), every=157),
        Rule(Fault("status", 503, retry_after="0"), every=163),
        Rule(Fault("status", 429, retry_after="0.2"), every=167),
        Rule(Fault("reset"), every=173),
        Rule(Fault("truncate"), method="GET", every=179),
        Rule(Fault("slow", delay=SLOW), method="HEAD", every=701, limit=2),
        cap_per_request=2,
    )
    return first_of(persistent, transient), expected


def test_acceptance_every_fault_kind_on_2000_tags_then_a_clean_rerun(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    # 2,000 tags to resolve and re-check under faults; 50 deletions, because the
    # registry scans every tag of the repository on each DELETE.
    seed = write_app(tmp_path / "seeded", count=2000, keep=1950)
    server = registry_factory("big", storage=seed.storage)
    schedule, expected = mixed_schedule(seed)
    run = prune_through(server, seed, schedule, tmp_path / "faulty.json")
    assert run.result.code == 5, run.result.output
    kinds = {f.fault for f in run.proxy.faulted()}
    assert kinds >= {"status", "reset", "slow", "truncate", "corrupt", "garbage"}
    assert {f.status for f in run.proxy.faulted() if f.fault == "status"} == {500, 502, 503, 429}
    assert run.report is not None
    # The plan made under faults is the plan: exactly the seeded expectation.
    assert {e["tag"] for e in run.report["kept"]} == set(seed.expected_kept)
    outcome = {e["digest"]: "deleted" for e in run.report["deleted"]}
    outcome.update({e["digest"]: "failed" for e in run.report["failed"]})
    assert {d: outcome.get(d) for d in expected} == expected
    assert {e["digest"] for e in run.report["failed"]} == {d for d, o in expected.items() if o == "failed"}
    assert run.report["not_attempted"] == [] and run.report["skipped"] == []
    assert_kept_never_sent_a_delete(run, seed)
    assert_report_matches_registry(run, server, seed)
    assert_retries_bounded(run, limit=240)

    report = tmp_path / "rerun.json"
    rerun = rerun_as(run, server, *seed.policy, "--json", str(report))
    assert rerun.code == 0, rerun.output
    second = json.loads(report.read_text())
    assert {e["digest"] for e in second["deleted"]} == {d for d, o in expected.items() if o == "failed"}
    assert_planned_end_state(server, seed)
