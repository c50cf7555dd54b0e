"""Bad input: one actionable line, no traceback, a documented exit code, nothing deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.apps import SeededApp
from tests.support.cli import run_cli
from tests.support.images import list_tags
from tests.support.registry import RegistryServer, free_port_url


def assert_one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("registry-prune: error: ")
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--match", "alpha(", "--keep", "3"], 2, "--match: invalid regular expression 'alpha('"),
        (["--keep", "-1"], 2, "--keep: must be >= 0 (got -1)"),
        (["--keep", "ten"], 2, "argument --keep: invalid int value: 'ten'"),
        (["--order", "newest"], 2, "argument --order: invalid choice: 'newest'"),
        (["--older-than", "two weeks"], 2, "--older-than: 'two weeks' is not a duration"),
        (["--protect", "*latest"], 2, "--protect: invalid regular expression '*latest'"),
        (["--repo", "team/nope"], 2, "repository 'team/nope' does not exist"),
        (["--repo", "nobody/*"], 2, "no repository matches 'nobody/*' (the catalog has 1: team/app)"),
        (["--repo", "Team/App"], 2, "'Team/App' is not a valid repository name"),
        (["--concurrency", "0"], 2, "--concurrency: must be >= 1 (got 0)"),
    ],
)
def test_bad_flags(registry: RegistryServer, seeded: SeededApp, args: list[str], code: int, expected: str) -> None:
    base = ["prune", "--registry", registry.url]
    if "--repo" not in args:
        base += ["--repo", "team/app"]
    result = run_cli(*base, *args)
    assert result.code == code, result.output
    assert expected in assert_one_line_error(result.stderr)
    assert len(list_tags(registry.url, "team/app")) == 44


def test_unknown_config_key_and_missing_file(registry: RegistryServer, seeded: SeededApp, tmp_path: Path) -> None:
    config = tmp_path / "prune.yml"
    config.write_text(f"registry: {{url: {registry.url}}}\nrepositories: [team/app]\npolicy: {{keeep: 3}}\n")
    result = run_cli("prune", "--config", str(config))
    assert result.code == 2
    line = assert_one_line_error(result.stderr)
    assert "policy.keeep: unknown key (did you mean 'keep'?" in line and str(config) in line
    missing = run_cli("prune", "--config", str(tmp_path / "nope.yml"))
    assert missing.code == 2
    assert "config file" in assert_one_line_error(missing.stderr)
    assert len(list_tags(registry.url, "team/app")) == 44


def test_url_without_scheme_names_the_fix() -> None:
    result = run_cli("plan", "--registry", "registry.example:5000", "--repo", "team/app")
    assert result.code == 2
    line = assert_one_line_error(result.stderr)
    assert "has no http:// or https:// scheme" in line and "https://registry.example:5000" in line


def test_unreachable_registry() -> None:
    result = run_cli("plan", "--registry", free_port_url(), "--repo", "team/app", "--timeout", "2")
    assert result.code == 4
    line = assert_one_line_error(result.stderr)
    assert "cannot connect to the registry" in line and "--registry" in line


def test_no_repository_selected(registry: RegistryServer) -> None:
    result = run_cli("plan", "--registry", registry.url)
    assert result.code == 2
    assert "no repositories selected" in assert_one_line_error(result.stderr)


def test_empty_catalog(registry: RegistryServer) -> None:
    result = run_cli("plan", "--registry", registry.url, "--repo", "*")
    assert result.code == 2
    assert "the registry catalog is empty" in assert_one_line_error(result.stderr)


def test_no_registry_given() -> None:
    result = run_cli("plan", "--repo", "team/app")
    assert result.code == 2
    assert "no registry given" in assert_one_line_error(result.stderr)


def test_unknown_command_and_help() -> None:
    result = run_cli("purge")
    assert result.code == 2
    assert "invalid choice: 'purge'" in assert_one_line_error(result.stderr)
    helped = run_cli("prune", "--help")
    assert helped.code == 0 and "--dry-run" in helped.stdout and "--older-than" in helped.stdout
    version = run_cli("--version")
    assert version.code == 0 and version.stdout.startswith("registry-prune ")


def test_a_run_that_fails_before_planning_still_writes_its_report(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run_cli(
        "prune", "--registry", free_port_url(), "--repo", "team/app", "--timeout", "2", "--json", str(report)
    )
    assert result.code == 4
    document = json.loads(report.read_text())
    assert document["outcome"] == "failed" and document["exit_code"] == 4
    assert "cannot connect to the registry" in document["errors"][0]["message"]
    assert document["deleted"] == [] and document["executed"] is False
