"""Every exit path writes its report: one envelope, one schema, one exit-code table.

The failure matrix runs each command that takes ``--json`` against an
unreachable registry, a wrong password, a lock held with ``--no-wait``, SIGTERM
mid-run and (for the commands that delete) a full audit disk. Each run must
leave a report of its own command's type with the right ``outcome`` and
``exit_code``; run_cli validates every report against docs/report-schema.json.
recover, with Slack configured, posts exactly one message saying what failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from pipeline_step.cli.main import exit_code_epilog
from pipeline_step.errors import EXIT_CODES
from pipeline_step.execution.audit import AuditLog
from pipeline_step.planning.planner import DeleteStep, Phase
from pipeline_step.reports.schema import render
from pipeline_step.support.locking import RegistryLock
from tests.support.cli import ROOT, SCHEMA, check_reports, cli_env, run_cli
from tests.support.fake_slack import FakeSlack
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.images import image_documents, list_tags, sha256
from tests.support.proxy import Fault, RecordingProxy
from tests.support.registry import RegistryFactory, RegistryServer, free_port_url
from tests.support.scenario import SmallDisk

COMMANDS = ("plan", "prune", "usage", "recover", "restore", "gc", "classify")
LOCKING = ("prune", "recover", "restore", "gc")
PASSWORD = "right-CANARY-pw"


# -- one source of truth ---------------------------------------------------------------


def test_the_committed_report_schema_is_the_generated_one() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render(), (
        "docs/report-schema.json is stale: regenerate it with "
        "`python -m pipeline_step.reports.schema > docs/report-schema.json`"
    )


def test_the_exit_code_tables_all_equal_the_one_in_errors_py() -> None:
    expected = {int(code): meaning for code, meaning in EXIT_CODES.items()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", readme, re.M))
    assert {int(k): v for k, v in table.items()} == expected
    groovy = (ROOT / "vars" / "registryPruneSupport.groovy").read_text(encoding="utf-8")
    body = groovy[groovy.index("Map exitMeanings()") :]
    body = body[: body.index("\n}\n")]
    meanings = {int(k): v.replace("\\'", "'") for k, v in re.findall(r"^\s+(\d+): '((?:[^'\\]|\\.)*)',$", body, re.M)}
    assert {k: v for k, v in meanings.items() if k not in (126, 127)} == expected  # 126/127: the shell's own
    epilog = dict(re.findall(r"^  (\d+)\s+(.+)$", exit_code_epilog(), re.M))
    assert {int(k): v for k, v in epilog.items()} == expected


# -- the failure matrix -----------------------------------------------------------------


@dataclass
class Setup:
    """What one scenario gives every command: where the registry is, and the environment."""

    url: str
    audit_file: Path
    env: dict[str, str]
    extra: tuple[str, ...] = ()


def audit_file_for(tmp_path: Path, url: str) -> Path:
    """A real audit log of one deleted image, as a prune writes it."""
    documents = image_documents("3.3.0-alpha.1")
    digest = sha256(documents.manifest)
    audit = AuditLog(tmp_path / "undo", url)
    step = DeleteStep("team/app", digest, ("3.3.0-alpha.1",), documents.media_type, Phase.IMAGE, "test")
    audit.record_intent(step, documents.manifest)
    audit.record_outcome(step, "deleted", "deleted")
    audit.close()
    return audit.path


def arguments(command: str, setup: Setup, report: Path, slack: FakeSlack | None) -> list[str]:
    policy = ["--registry", setup.url, "--repo", "team/app", "--match", "alpha", "--keep", "10"]
    registry_flags = ["--registry", setup.url, "--health-timeout", "1"]
    per_command = {
        "plan": ["plan", *policy],
        "prune": ["prune", *policy],
        "usage": ["usage", "--registry", setup.url],
        "recover": ["recover", "--force", *policy, *(["--slack-webhook", slack.webhook_url] if slack else [])],
        "restore": ["restore", "--from", str(setup.audit_file), "--registry", setup.url],
        "gc": ["gc", "--gc-cmd", "true", "--readonly-cmd", "true", "--restart-cmd", "true", *registry_flags],
        "classify": ["classify", "--jenkins-url", setup.url, "--jenkins-build", "app#1"],
    }
    return [*per_command[command], *setup.extra, "--json", str(report)]


def assert_report(report: Path, command: str, outcome: str, code: int) -> dict[str, object]:
    document: dict[str, object] = json.loads(report.read_text(encoding="utf-8"))
    expected_type = "plan" if command == "plan" else command
    assert document["command"] == expected_type
    assert (document["outcome"], document["exit_code"]) == (outcome, code), document["message"]
    assert document["message"]
    if outcome != "interrupted":
        assert document["errors"], document
    return document


def assert_one_slack_failure(slack: FakeSlack, *words: str) -> None:
    posts = slack.posts
    assert len(posts) == 1, posts
    text = posts[0]["text"]
    assert text.startswith("FAILED: "), text
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_registry_is_reported(command: str, tmp_path: Path) -> None:
    url = free_port_url()
    setup = Setup(url, audit_file_for(tmp_path, url), {}, ("--timeout", "2") if command != "classify" else ())
    report = tmp_path / "r.json"
    with FakeSlack() as slack:
        result = run_cli(*arguments(command, setup, report, slack if command == "recover" else None))
        assert result.code == 4, result.output
        assert_report(report, command, "failed", 4)
        if command == "recover":
            assert_one_slack_failure(slack, "cannot connect to the registry")


@pytest.fixture
def basic_registry(registry_factory: RegistryFactory, tmp_path: Path) -> RegistryServer:
    server = registry_factory("basic", storage=tmp_path / "basic-storage")
    write_app(tmp_path / "basic-storage", count=12, keep=10)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"ci:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    return server.restart(auth={"htpasswd": {"realm": "registry-prune-tests", "path": str(htpasswd)}})


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "classify"])
def test_a_wrong_password_is_reported(command: str, basic_registry: RegistryServer, tmp_path: Path) -> None:
    setup = Setup(basic_registry.url, audit_file_for(tmp_path, basic_registry.url), {}, ("--username", "ci"))
    report = tmp_path / "r.json"
    with FakeSlack() as slack:
        result = run_cli(
            *arguments(command, setup, report, slack if command == "recover" else None),
            env={"REGISTRY_PASSWORD": "wrong-CANARY-pw"},
        )
        assert result.code == 4, result.output
        document = assert_report(report, command, "failed", 4)
        assert "wrong-CANARY-pw" not in json.dumps(document)
        if command == "recover":
            assert_one_slack_failure(slack, "rejected the password")


@pytest.fixture
def small_registry(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[RegistryServer, SeededStorage]:
    seed = write_app(tmp_path / "small-storage", count=30, keep=10)
    return registry_factory("small", storage=tmp_path / "small-storage"), seed


@pytest.mark.parametrize("command", LOCKING)
def test_a_held_lock_with_no_wait_is_reported(
    command: str, small_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path
) -> None:
    registry, _ = small_registry
    setup = Setup(registry.url, audit_file_for(tmp_path, registry.url), {}, ("--no-wait",))
    report = tmp_path / "r.json"
    with FakeSlack() as slack, RegistryLock(Path(os.environ["REGISTRY_PRUNE_LOCK_DIR"]), registry.url):
        result = run_cli(*arguments(command, setup, report, slack if command == "recover" else None))
        assert result.code == 6, result.output
        assert_report(report, command, "locked", 6)
        if command == "recover":
            assert_one_slack_failure(slack, "holds the lock")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "classify"])
def test_sigterm_mid_run_is_reported(
    command: str, small_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path
) -> None:
    """SIGTERM arrives while the command talks to the registry (gc: while its GC command runs)."""
    registry, _ = small_registry
    process: subprocess.Popen[str] | None = None
    sent = threading.Event()

    def terminate_on_first_manifest(method: str, path: str, number: int) -> Fault | None:
        if "/manifests/" in path and "sha256:0000" not in path and process is not None and not sent.is_set():
            sent.set()
            os.kill(process.pid, signal.SIGTERM)
            return Fault("slow", delay=0.5, forward=True)  # the answer arrives after the signal
        return None

    report = tmp_path / "r.json"
    with RecordingProxy(registry.url, schedule=terminate_on_first_manifest) as proxy, FakeSlack() as slack:
        setup = Setup(proxy.url, audit_file_for(tmp_path, proxy.url), {})
        words = arguments(command, setup, report, slack if command == "recover" else None)
        if command == "gc":
            words[words.index("--gc-cmd") + 1] = "kill -TERM $PPID; sleep 0.3"  # $PPID: registry-prune itself
        if command == "recover":
            words.extend(["--gc-cmd", "true", "--readonly-cmd", "true", "--restart-cmd", "true"])
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline_step", *words],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=cli_env(),
        )
        stdout, stderr = process.communicate(timeout=120)
        check_reports(tuple(words), stdout)
        assert process.returncode == 130, stderr
        assert_report(report, command, "interrupted", 130)
        if command == "recover":
            assert len(slack.posts) == 1 and slack.posts[0]["text"].startswith("FAILED: ")


@pytest.fixture
def full_audit_disk(tmp_path: Path) -> Iterator[Path]:
    """The agent's own disk, nearly full: room for a few undo records, not for all of them."""
    with SmallDisk(tmp_path / "agent-disk", size_mib=1) as disk:
        free = disk.free_bytes()
        (disk.path / "filler").write_bytes(b"\0" * (free - 3 * 4096))
        yield disk.path / "audit"


@pytest.mark.parametrize("command", ["prune", "recover"])
def test_a_full_audit_disk_stops_the_run_and_keeps_the_report(
    command: str, small_registry: tuple[RegistryServer, SeededStorage], full_audit_disk: Path, tmp_path: Path
) -> None:
    registry, seed = small_registry
    before = set(list_tags(registry.url, seed.repo))
    setup = Setup(registry.url, audit_file_for(tmp_path, registry.url), {}, ("--audit-dir", str(full_audit_disk)))
    report = tmp_path / "r.json"
    with FakeSlack() as slack:
        result = run_cli(*arguments(command, setup, report, slack if command == "recover" else None))
        assert result.code == 7, result.output
        document = assert_report(report, command, "failed", 7)
        if command == "recover":
            assert_one_slack_failure(slack, "cannot write the undo log")
    assert "cannot write the undo log" in result.stderr
    deleted = {entry["tag"] for entry in document["deleted"]}  # type: ignore[union-attr]
    after = set(list_tags(registry.url, seed.repo))
    # The report is true: what it calls deleted is gone, and nothing else is.
    assert deleted == before - after
    assert 0 < len(deleted) < 19, "the disk should hold a few undo records, not all 19"
    # Every deletion that happened has its intent in the undo log.
    logs = list(full_audit_disk.glob("*.jsonl"))
    assert len(logs) == 1
    intents = [json.loads(line) for line in logs[0].read_text().splitlines() if line.endswith("}")]
    assert deleted <= {tag for record in intents if record["event"] == "intent" for tag in record["tags"]}


def test_no_report_field_is_a_constant_or_a_copy_of_another() -> None:
    """Removed: PushReport.command (always "(see the job configuration)") and undo_window_closed (== gc_ran)."""
    from pipeline_step.reports.recover import PushReport, RecoveryReport  # noqa: PLC0415

    assert "command" not in PushReport.model_fields
    assert "undo_window_closed" not in RecoveryReport.model_fields
    assert "gc_ran" in RecoveryReport.model_fields
