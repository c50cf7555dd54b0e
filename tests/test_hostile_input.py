"""Hostile and malformed input: config-file schema errors, malformed registry answers, and 100,000 tags.

Every bad input gives one actionable line, no traceback, a documented exit
code, and deletes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_step.registry.http.choose import open_client
from tests.support.cli import ROOT, run_cli
from tests.support.fault_seed import SeededStorage, alpha, write_app
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
    assert int(stats["requests"]) == 100_003  # /v2/, the tag list, one GET per tag
    assert int(stats["peak-rss-mib"]) < 800  # about 350 MiB: ~3.5 KiB per tag, all of it needed for the report
    assert elapsed < 180  # about 20 s on two cores; a quadratic step would take hours
