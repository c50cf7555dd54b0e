"""Hostile and malformed input: config-file schema errors, malformed registry answers, and 100,000 tags.

Every bad input gives one actionable line, no traceback, a documented exit
code, and deletes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline_step.planning.inventory import tree_problem
from pipeline_step.registry.http.choose import open_client
from pipeline_step.registry.model import Descriptor, Manifest
from tests.support.cli import ROOT, check_reports, cli_env, run_cli
from tests.support.fault_seed import SeededStorage, alpha, write_app
from tests.support.hostile import REPO, HostileRegistry, index_body, sha512
from tests.support.images import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image_documents
from tests.support.proxy import Fault, RecordingProxy, Rule, Rules
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.registry_state import RegistryState
from tests.support.storage_seed import StorageWriter

App = tuple[RegistryServer, SeededStorage]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("registry-prune: error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def app(registry_factory: RegistryFactory, tmp_path: Path) -> App:
    seed = write_app(tmp_path / "seeded", count=14, keep=10)
    return registry_factory("bad", storage=seed.storage), seed


def assert_untouched(server: RegistryServer, seed: SeededStorage) -> None:
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.tags


# -- configuration files -----------------------------------------------------------------


CONFIG_ERRORS = {
    "policy: {keep: -1}": "policy.keep: must be >= 0 (got -1)",
    "overrides: {'team/app': {keep: ten}}": "overrides.team/app.keep: must be an integer (got 'ten')",
    "concurrency: 0": "concurrency: must be >= 1 (got 0)",
    "policy: {match: 'alpha('}": "policy.match: invalid regular expression 'alpha('",
    "registry: {url: 'registry.example:5000'}": "has no http:// or https:// scheme",
    "policy: {older_than: soon}": "policy.older_than: 'soon' is not a duration",
}


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS.items(), ids=list(CONFIG_ERRORS))
def test_config_file_schema_errors_name_the_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "prune.yml"
    config.write_text(("" if "registry:" in text else "registry: {url: 'http://127.0.0.1:1'}\n") + text + "\n")
    result = run_cli("prune", "--config", str(config), "--repo", "team/app")
    assert result.code == 2, result.output
    line = one_error_line(result.stderr)
    assert message in line and f"(in {config})" in line


# -- malformed registry answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("replace", body=b'{"repositories": "team/app"}'), "the catalog's 'repositories' is not a list of names"),
        (Fault("garbage"), "the catalog is not valid JSON"),
        (Fault("replace", body=b'["team/app"]'), "the catalog is not a JSON object"),
    ],
    ids=["wrong-type", "non-json", "not-an-object"],
)
def test_a_malformed_catalog_fails_cleanly(app: App, fault: Fault, message: str) -> None:
    server, seed = app
    with RecordingProxy(server.url, schedule=Rules(Rule(fault, method="GET", path="/_catalog"))) as proxy:
        result = run_cli("prune", "--registry", proxy.url, "--repo", "team/*", "--match", "alpha", "--keep", "10")
    assert result.code == 4, result.output
    assert message in one_error_line(result.stderr)
    assert proxy.counts("DELETE") == {}
    assert_untouched(server, seed)


def test_malformed_manifests_in_the_registry_block_their_repository(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """Manifests the registry itself cannot parse (it answers 500): those tags cannot be resolved,
    so nothing in the repository is deleted."""
    seed = write_app(tmp_path / "seeded", count=14, keep=10)
    writer = StorageWriter(seed.storage)
    broken = {
        alpha(100): b'{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
        b'"config": {"digest": "sha256:nope", "size": 1}, "layers": "oops"}',
        alpha(101): b"not json at all",
    }
    for tag, body in broken.items():
        writer.tag(seed.repo, tag, writer.revision(seed.repo, body))
    server = registry_factory("malformed", storage=seed.storage)
    with RegistryState(server.url) as registry:
        before = registry.tags(seed.repo)  # the broken tags are listed, but cannot be resolved
    report = tmp_path / "r.json"
    result = run_cli("prune", "--registry", server.url, *seed.policy, "--json", str(report), "--no-progress")
    assert "Traceback" not in result.output
    document = json.loads(report.read_text())
    assert document["deleted"] == [] and document["failed"] == []
    (repository,) = document["repositories"]
    assert repository["blocked"] and alpha(100) in repository["blocked"]
    for tag in broken:
        assert f"cannot resolve team/app:{tag}" in result.stderr
    with RegistryState(server.url) as registry:
        assert registry.tags(seed.repo) == before
        for tag, digest in seed.tags.items():
            assert registry.resolve(seed.repo, tag) == digest
    # Safe, but an unattended job must not stay green while its repository is never pruned again.
    assert result.code == 5
    assert document["outcome"] == "partial" and document["exit_code"] == 5
    assert "warning: nothing deleted in team/app" in result.stderr


# -- 100,000 tags ----------------------------------------------------------------------------


def test_a_100000_entry_tag_list_is_read_in_full_over_http(app: App) -> None:
    server, seed = app
    tags = [f"3.3.0-alpha.{n}" for n in range(1, 100_001)]
    body = json.dumps({"name": seed.repo, "tags": tags}).encode()
    schedule = Rules(Rule(Fault("replace", body=body), method="GET", path="/tags/list"))
    with RecordingProxy(server.url, schedule=schedule) as proxy, open_client(proxy.url) as client:
        started = time.monotonic()
        listed = client.tags(seed.repo)
        elapsed = time.monotonic() - started
    assert listed == tags
    assert elapsed < 10


def test_a_100000_tag_repository_plans_end_to_end_within_time_and_memory(tmp_path: Path) -> None:
    """The CLI, client, inventory, planner, table and JSON report at 100,000 tags; only the
    transport answers from memory (tests/support/huge_repo.py), since resolving 100,000 real
    tags over HTTP takes minutes."""
    report = tmp_path / "plan.json"
    command = [sys.executable, "-m", "tests.support.huge_repo", "100000", "--"]
    command += ["plan", "--registry", "http://registry.test:5000", "--repo", "team/app", "--match", "alpha"]
    command += ["--keep", "10", "--concurrency", "1", "--no-progress", "--json", str(report)]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "plan: 99990 tags to delete (99990 manifests), 11 kept" in completed.stdout
    document = json.loads(report.read_text())
    assert len(document["deleted"]) == 99_990 and len(document["kept"]) == 11
    kept = {entry["tag"] for entry in document["kept"]}
    assert kept == {"latest", *(f"3.3.0-alpha.{n}" for n in range(99_991, 100_001))}
    stats = dict(line.split(": ", 1) for line in completed.stderr.splitlines() if line.startswith(("peak", "requests")))
    assert int(stats["requests"]) == 100_005  # /v2/, the line probe, the tag list, one GET per tag, the referrers probe
    assert int(stats["peak-rss-mib"]) < 800  # about 350 MiB: ~3.5 KiB per tag, all of it needed for the report
    assert elapsed < 180  # about 20 s on two cores; a quadratic step would take hours


# -- manifests and indexes from a hostile registry -------------------------------------------


# case -> what builds the hostile answer and returns the words its refusal must say
HOSTILE: dict[str, Callable[[HostileRegistry], str]] = {}


def hostile(name: str) -> Callable[[Callable[[HostileRegistry], str]], Callable[[HostileRegistry], str]]:
    def register(build: Callable[[HostileRegistry], str]) -> Callable[[HostileRegistry], str]:
        HOSTILE[name] = build
        return build

    return register


@hostile("100 nested indexes")
def deep_indexes(registry: HostileRegistry) -> str:
    child, media_type = registry.image(None), OCI_MANIFEST
    for _ in range(100):
        child, media_type = registry.add(None, index_body([child], media_type), OCI_INDEX), OCI_INDEX
    registry.manifests["hostile"] = registry.manifests[child]
    return "indexes nest deeper than 8 levels"


@hostile("100,000 children")
def wide_index(registry: HostileRegistry) -> str:
    children = [f"sha256:{n:064x}" for n in range(100_000)]
    registry.add("hostile", index_body(children), OCI_INDEX)
    return "sent an answer too large to read"


@hostile("20,000 children within 4 MiB")
def many_children(registry: HostileRegistry) -> str:
    child = registry.image(None)
    registry.add("hostile", index_body([child] * 20_000), OCI_INDEX)
    return "has 20000 children, more than 10000"


@hostile("a cycle")
def cycle(registry: HostileRegistry) -> str:
    # Verified digests make a real cycle impossible: the index names a digest whose answer is itself.
    body = index_body(["sha256:" + "ab" * 32])
    registry.add("hostile", body, OCI_INDEX)
    registry.manifests["sha256:" + "ab" * 32] = registry.manifests["hostile"]
    return "announced digest"


@hostile("a 50 MB manifest")
def huge_manifest(registry: HostileRegistry) -> str:
    registry.add("hostile", b'{"schemaVersion": 2, "pad": "' + b"x" * (50 << 20) + b'"}', OCI_MANIFEST)
    return "sent an answer too large to read"


@hostile("a sha512 digest")
def sha512_digest(registry: HostileRegistry) -> str:
    body = image_documents("hostile", label="sha512").manifest
    registry.add("hostile", body, DOCKER_MANIFEST, digest=sha512(body))
    return "uses the digest algorithm sha512"


@hostile("an unknown media type")
def unknown_media_type(registry: HostileRegistry) -> str:
    registry.add("hostile", b'{"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}', "x/y")
    return "has the media type 'application/vnd.example.thing+json', which this tool does not know"


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_manifests_block_their_repository_in_one_line_and_delete_nothing(case: str, tmp_path: Path) -> None:
    build = HOSTILE[case]
    with HostileRegistry() as registry:
        for n in range(1, 6):
            registry.image(f"1.0.0-alpha.{n}")
        expected = build(registry)
        rss = tmp_path / "peak-rss-kib"
        process = subprocess.run(
            [sys.executable, "-m", "tests.support.peak", str(rss), "--", "prune", "--registry", registry.url,
             "--repo", REPO, "--match", "alpha", "--keep", "1", "--timeout", "10", "--no-progress",
             "--json", str(tmp_path / "r.json")],
            capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120,
        )  # fmt: skip
        peak_mib = int(rss.read_text()) / 1024
        check_reports(("--json", str(tmp_path / "r.json")), "")
        assert process.returncode == 5, process.stdout + process.stderr
        refusals = [line for line in process.stderr.splitlines() if f"nothing deleted in {REPO}" in line]
        assert len(refusals) == 1 and expected in refusals[0], process.stderr
        assert registry.deletes == [], "nothing may be deleted in a refused repository"
        assert peak_mib < 200, f"memory must stay bounded: {peak_mib:.0f} MiB"


def test_a_cycle_of_indexes_is_refused_by_the_planner_too() -> None:
    """Impossible through verified digests, but the planner's own guard must hold on any inventory."""
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    manifests = {
        a: Manifest(a, OCI_INDEX, 100, children=(Descriptor(b, 100),)),
        b: Manifest(b, OCI_INDEX, 100, children=(Descriptor(a, 100),)),
    }
    assert "a cycle" in (tree_problem(a, manifests) or "")
