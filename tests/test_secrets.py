"""Canary secrets never appear in any output, on the success paths or the error paths.

Canaries: the registry password (from $REGISTRY_PASSWORD and from
--password-stdin), the Basic credentials built from it, the bearer tokens a
token service issued, the Slack webhook URL (flag and $SLACK_WEBHOOK_URL) and
bot token, and the Jenkins API token. Every run is searched in full: stdout,
stderr (at -vv), the JSON report, every audit log file, every Slack payload
received, and the messages of the exceptions the library raises.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from pipeline_step.backends.registry_config import load_registry_storage
from pipeline_step.errors import PruneError, RegistryServerError
from pipeline_step.integrations.jenkins import JenkinsClient, JenkinsError
from pipeline_step.integrations.slack import RecoverySummary, SlackReporter
from pipeline_step.registry.auth import Credentials
from pipeline_step.registry.http.choose import open_client
from pipeline_step.support.redact import register_secret
from tests.support import fake_jenkins, fake_slack
from tests.support.cli import CliResult, run_cli
from tests.support.fake_jenkins import FakeJenkins
from tests.support.fake_slack import FakeSlack
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.proxy import Fault, RecordingProxy, Rule, Rules
from tests.support.registry import RegistryFactory, RegistryServer, free_port
from tests.support.registry_state import RegistryState
from tests.support.s3 import S3Server
from tests.support.tokenserver import TokenServer

PASSWORD = "pw-CANARY-5e3c1a"  # a canary, not a credential
WRONG_PASSWORD = "wrong-CANARY-8d2f"
USER = "ci"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
JENKINS_BASIC = base64.b64encode(f"{fake_jenkins.USER}:{fake_jenkins.TOKEN}".encode()).decode()
CANARIES = [
    PASSWORD,
    WRONG_PASSWORD,
    BASIC,
    fake_slack.WEBHOOK_PATH.rsplit("/", 1)[1],  # the secret part of any webhook URL
    fake_slack.BOT_TOKEN,
    fake_jenkins.TOKEN,
    JENKINS_BASIC,
]


def edge_credentials(user: str, password: str) -> Credentials:
    """Credentials as the CLI makes them: the password registered for redaction where it enters."""
    register_secret(password)
    return Credentials(user, password)


@dataclass
class Outputs:
    """Everything a run left behind that a person or a log collector could read."""

    texts: dict[str, str]

    def add(self, name: str, text: str) -> None:
        self.texts[name] = text

    def assert_clean(self, *extra: str) -> None:
        assert self.texts, "nothing was collected"
        for canary in [*CANARIES, *extra]:
            for name, text in self.texts.items():
                assert canary not in text, f"canary {canary[:12]}... found in {name}"


def collect(result: CliResult, *, report: Path | None = None, audit_dir: Path | None = None) -> Outputs:
    outputs = Outputs({"stdout": result.stdout, "stderr": result.stderr})
    if report is not None and report.exists():
        outputs.add("report", report.read_text())
    for path in sorted(audit_dir.rglob("*")) if audit_dir is not None else []:
        if path.is_file():
            outputs.add(f"audit {path.name}", path.read_text())
    return outputs


def exception_texts(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args)]
    if isinstance(exc, PruneError):
        parts += [exc.message, exc.hint or ""]
    if isinstance(exc, RegistryServerError):
        parts += [exc.detail or "", exc.code or ""]
    return "\n".join(parts)


@pytest.fixture
def basic_registry(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[RegistryServer, SeededStorage]:
    seed = write_app(tmp_path / "seeded", count=14, keep=10)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    auth = {"htpasswd": {"realm": "registry-prune-tests", "path": str(htpasswd)}}
    return registry_factory("basic", storage=seed.storage, auth=auth), seed


def login() -> dict[str, str]:
    return {"Authorization": f"Basic {BASIC}"}


# -- the registry password ------------------------------------------------------------


def test_password_from_env_and_stdin_never_shows(
    basic_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path
) -> None:
    server, seed = basic_registry
    audit = tmp_path / "audit-env"
    report = tmp_path / "prune.json"
    pruned = run_cli(
        "-vv",
        "prune",
        "--registry",
        server.url,
        "--username",
        USER,
        *seed.policy,
        "--audit-dir",
        str(audit),
        "--json",
        str(report),
        env={"REGISTRY_PASSWORD": PASSWORD},
    )
    assert pruned.code == 0, pruned.output
    assert list(audit.glob("*.jsonl")), "the prune wrote no audit log"
    collect(pruned, report=report, audit_dir=audit).assert_clean()

    planned = run_cli(
        "-vv", "plan", "--registry", server.url, "--username", USER, "--password-stdin", *seed.policy, "--json", "-",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert planned.code == 0, planned.output
    collect(planned).assert_clean()

    restored = run_cli(
        "-vv", "restore", "--from", str(next(audit.glob("*.jsonl"))), "--username", USER, "--json", "-",
        env={"REGISTRY_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert restored.code == 0, restored.output
    collect(restored).assert_clean()
    with RegistryState(server.url, headers=login()) as registry:
        assert registry.snapshot(seed.repo) == seed.tags


def test_wrong_password_error_paths(basic_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path) -> None:
    server, seed = basic_registry
    result = run_cli(
        "-vv", "prune", "--registry", server.url, "--username", USER, *seed.policy, "--json", str(tmp_path / "r.json"),
        env={"REGISTRY_PASSWORD": WRONG_PASSWORD},
    )  # fmt: skip
    assert result.code == 4 and "rejected the password of user 'ci'" in result.stderr
    collect(result, report=tmp_path / "r.json", audit_dir=tmp_path / "audit").assert_clean()
    with (
        open_client(
            server.url, credentials=edge_credentials(USER, WRONG_PASSWORD), on_secret=register_secret
        ) as client,
        pytest.raises(PruneError) as raised,
    ):
        client.tags(seed.repo)
    Outputs({"exception": exception_texts(raised.value)}).assert_clean()


def test_a_registry_500_that_echoes_the_request_leaks_nothing(
    basic_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path
) -> None:
    """A proxy's error page may quote the request, Authorization header included."""
    server, seed = basic_registry
    schedule = Rules(Rule(Fault("status", 500, echo=True), method="GET", path="/tags/list"))
    with RecordingProxy(server.url, schedule=schedule) as proxy:
        result = run_cli(
            "-vv", "prune", "--registry", proxy.url, "--username", USER, *seed.policy,
            "--json", str(tmp_path / "r.json"), env={"REGISTRY_PASSWORD": PASSWORD},
        )  # fmt: skip
        assert result.code == 4, result.output
        assert "HTTP 500 UNKNOWN: upstream failed (" in result.stderr and "Authorization: " in result.stderr
        collect(result, report=tmp_path / "r.json", audit_dir=tmp_path / "audit").assert_clean()
        with (
            open_client(
                proxy.url, credentials=edge_credentials(USER, PASSWORD), sleep=lambda _: None, on_secret=register_secret
            ) as client,
            pytest.raises(RegistryServerError) as raised,
        ):
            client.ping()  # learns that the registry wants Basic credentials
            client.tags(seed.repo)
    assert "upstream failed" in str(raised.value) and "Authorization: " in str(raised.value)
    Outputs({"exception": exception_texts(raised.value)}).assert_clean()


# -- bearer tokens ---------------------------------------------------------------------------


@dataclass
class RecordingTokenServer(TokenServer):
    """Remembers every token it signs: each one is a canary."""

    issued: list[str] = field(default_factory=list)

    def sign(self, subject: str, access: list[dict[str, Any]], *, lifetime: int | None = None) -> str:
        token = super().sign(subject, access, lifetime=lifetime)
        self.issued.append(token)
        return token


@pytest.fixture
def token_registry(
    registry_factory: RegistryFactory, tmp_path: Path
) -> Iterator[tuple[RegistryServer, SeededStorage, RecordingTokenServer]]:
    seed = write_app(tmp_path / "seeded", count=14, keep=10)
    grants = {USER: {"pull", "push", "delete"}}
    tokens = RecordingTokenServer(tmp_path / "tokens", users={USER: PASSWORD}, grants=grants)
    tokens.start()
    server = registry_factory("token", storage=seed.storage, auth=tokens.registry_auth())
    yield server, seed, tokens
    tokens.stop()


def test_issued_tokens_never_show(
    token_registry: tuple[RegistryServer, SeededStorage, RecordingTokenServer], tmp_path: Path
) -> None:
    server, seed, tokens = token_registry
    report = tmp_path / "prune.json"
    result = run_cli(
        "-vv", "prune", "--registry", server.url, "--username", USER, *seed.policy,
        "--audit-dir", str(tmp_path / "audit"), "--json", str(report), env={"REGISTRY_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.code == 0, result.output
    issued = list(tokens.issued)
    assert len(issued) >= 3  # /v2/, pull and delete scopes
    collect(result, report=report, audit_dir=tmp_path / "audit").assert_clean(*issued)

    refused = run_cli(
        "plan", "--registry", server.url, "--username", USER, *seed.policy, env={"REGISTRY_PASSWORD": WRONG_PASSWORD}
    )
    assert refused.code == 4 and "refused user 'ci'" in refused.stderr
    collect(refused).assert_clean(*issued)


# -- Slack and Jenkins ---------------------------------------------------------------------------


def gc_command(server: RegistryServer) -> str:
    server.write_config()
    return f"{server.binary} garbage-collect {server.config_path}"


def test_recover_with_slack_and_jenkins_leaks_nothing_anywhere(
    basic_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path
) -> None:
    server, seed = basic_registry
    report = tmp_path / "recover.json"
    with FakeSlack() as slack, FakeJenkins() as jenkins:
        jenkins.add_build("team/app", 41, "+ docker push reg/team/app:1\nreceived unexpected HTTP status: 500\n")
        result = run_cli(
            "-vv", "recover", "--registry", server.url, "--username", USER, *seed.policy,
            "--jenkins-build", "team/app#41", "--jenkins-url", jenkins.url, "--jenkins-user", fake_jenkins.USER,
            "--jenkins-describe", "--gc-cmd", gc_command(server), "--allow-live-gc",
            "--slack-webhook", slack.webhook_url,
            "--audit-dir", str(tmp_path / "audit"), "--json", str(report), "--no-progress",
            env={
                "REGISTRY_PASSWORD": PASSWORD,
                "JENKINS_API_TOKEN": fake_jenkins.TOKEN,
                "JOB_NAME": "team/app",
                "BUILD_NUMBER": "41",
                "BUILD_URL": f"{jenkins.url}/job/team/job/app/41/",
            },
        )  # fmt: skip
        payloads = [r.body.decode() for r in slack.requests]
        descriptions = [r.body.decode() for r in jenkins.requests if r.method == "POST"]
    assert result.code == 0, result.output
    assert len(payloads) == 1 and "slack: sent" in result.stdout
    assert descriptions, "the build description was not set"
    outputs = collect(result, report=report, audit_dir=tmp_path / "audit")
    outputs.add("slack payload", payloads[0])
    outputs.add("jenkins description", "\n".join(descriptions))
    outputs.assert_clean(slack.webhook_url)
    with RegistryState(server.url, headers=login()) as registry:
        assert registry.snapshot(seed.repo) == seed.expected_kept


@pytest.mark.parametrize("failure", ["unreachable", "rejected"])
def test_slack_failures_leak_nothing(
    basic_registry: tuple[RegistryServer, SeededStorage], tmp_path: Path, failure: str
) -> None:
    server, seed = basic_registry
    with FakeSlack(webhook_status=404, webhook_body="no_service") as slack:
        dead = f"http://127.0.0.1:{free_port()}{fake_slack.WEBHOOK_PATH}"
        webhook = dead if failure == "unreachable" else slack.webhook_url
        result = run_cli(
            "-vv", "recover", "--dry-run", "--force", "--registry", server.url, "--username", USER, *seed.policy,
            "--json", str(tmp_path / "r.json"), "--no-progress",
            env={"REGISTRY_PASSWORD": PASSWORD, "SLACK_WEBHOOK_URL": webhook},
        )  # fmt: skip
    assert result.code == 0, result.output
    assert "slack: NOT sent" in result.stdout
    collect(result, report=tmp_path / "r.json").assert_clean(webhook)


def test_library_error_messages_for_slack_and_jenkins_hold_no_secret() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = SlackReporter(webhook_url=dead + fake_slack.WEBHOOK_PATH, max_retries=0).send(RecoverySummary("x", True))
    assert result.warning is not None
    bot = SlackReporter(token=fake_slack.BOT_TOKEN, channel="C0CANARY01", api_url=dead + "/api/", max_retries=0)
    bot_result = bot.send(RecoverySummary("x", True))
    assert bot_result.warning is not None
    with FakeJenkins() as jenkins:
        jenkins.add_build("team/app", 41, "console\n")
        client = JenkinsClient(jenkins.url, fake_jenkins.USER, fake_jenkins.TOKEN + "-wrong", timeout=5)
        with pytest.raises(JenkinsError) as raised:
            client.console_text("team/app", 41)
    Outputs(
        {"slack webhook": result.warning, "slack bot": bot_result.warning, "jenkins": exception_texts(raised.value)}
    ).assert_clean(dead + fake_slack.WEBHOOK_PATH, fake_jenkins.TOKEN + "-wrong")


# -- S3 keys ------------------------------------------------------------------------------


def test_s3_keys_never_show_on_success_or_error_paths(s3_server: S3Server, tmp_path: Path) -> None:
    """The registry config's secret key (and the access key), from the file and from the AWS chain, at -vv,
    in prune, plan, usage and on a refused key: never in stdout, stderr, the report or the audit log."""
    seed = write_app(tmp_path / "seed", count=14, keep=10)
    s3_server.create_bucket("secrets")
    s3_server.upload_tree(seed.storage, "secrets")
    config = s3_server.write_registry_config(tmp_path / "config.yml", "secrets")
    keys = (s3_server.secret_key, s3_server.access_key)
    audit, report = tmp_path / "audit-s3", tmp_path / "s3.json"
    pruned = run_cli("-vv", "prune", "--registry-config", str(config), *seed.policy, "--audit-dir", str(audit),
                     "--json", str(report))  # fmt: skip
    assert pruned.code == 0, pruned.output
    collect(pruned, report=report, audit_dir=audit).assert_clean(*keys)
    bare = tmp_path / "bare.yml"
    bare.write_text(config.read_text().replace(f"accesskey: {keys[1]}", "").replace(f"secretkey: {keys[0]}", ""))
    chain = {"AWS_ACCESS_KEY_ID": keys[1], "AWS_SECRET_ACCESS_KEY": keys[0]}
    for command in ("plan", "usage"):
        ran = run_cli("-vv", command, "--registry-config", str(bare), *seed.policy, "--json", str(report), env=chain)
        assert ran.code == 0, ran.output
        collect(ran, report=report).assert_clean(*keys)
    wrong = "wrong-CANARY-s3-secret-7a1f"
    broken = tmp_path / "wrong.yml"
    broken.write_text(config.read_text().replace(keys[0], wrong))
    refused = run_cli("-vv", "prune", "--registry-config", str(broken), *seed.policy, "--json", str(report))
    assert refused.code == 4, refused.output
    collect(refused, report=report).assert_clean(*keys, wrong)
    location = load_registry_storage(broken).s3
    assert location is not None and wrong not in repr(location)
