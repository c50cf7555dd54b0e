"""The Slack report: Block Kit content and limits, delivery through the real slack-sdk, retries, secrets."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from pipeline_step.cli import integration_options
from pipeline_step.cli.parser import Parser
from pipeline_step.errors import UsageError
from pipeline_step.integrations.slack import (
    BLOCK_LIMIT,
    FALLBACK_LIMIT,
    HEADER_LIMIT,
    SECTION_LIMIT,
    BuildContext,
    RecoverySummary,
    SlackReporter,
    build_message,
)
from pipeline_step.reports.prune import Entry, Summary
from pipeline_step.reports.recover import RecoveryReport, slack_summary
from pipeline_step.support.redact import MASK, redact
from tests.support.cli import ROOT
from tests.support.fake_slack import BOT_TOKEN, WEBHOOK_PATH, FakeSlack
from tests.support.registry import free_port

CANARIES = ("CANARYSECRETWEBHOOK", BOT_TOKEN)
BUILD = BuildContext("https://ci.example/job/team/job/app/41/", "team/app", "41")
BASE = RecoverySummary(
    outcome="Push recovered after pruning 12 tags",
    success=True,
    trigger="registry-500 in team/app #41",
    registry="https://registry.example:5000",
    repositories=("team/app", "team/api"),
    deleted_tags=tuple(f"team/app:3.3.0-alpha.{n}" for n in range(1, 13)),
    bytes_freed=3 * 1024**3,
    bytes_predicted=2 * 1024**3 + 512 * 1024**2,
    push_attempted=True,
    push_succeeded=True,
    push_attempts=2,
    gc_ran=True,
    build=BUILD,
)


def summary(**changes: Any) -> RecoverySummary:
    return replace(BASE, **changes)


def webhook(url: str, *, max_retries: int = 2) -> SlackReporter:
    return SlackReporter(webhook_url=url, timeout=5, retry_interval=0.01, max_retries=max_retries)


def bot(api_url: str, channel: str = "C0CANARY01", *, max_retries: int = 2) -> SlackReporter:
    return SlackReporter(
        token=BOT_TOKEN, channel=channel, api_url=api_url, timeout=5, retry_interval=0.01, max_retries=max_retries
    )


def _texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _assert_no_canary(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text


# --- the message ------------------------------------------------------------------------------------------------


def test_message_blocks() -> None:
    message = build_message(summary())
    header, facts, tags = message.blocks
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":white_check_mark: Push recovered after pruning 12 tags",
            "emoji": True,
        },
    }
    fields = [field["text"] for field in facts["fields"]]
    assert fields == [
        "*Build*\n<https://ci.example/job/team/job/app/41/|team/app #41>",
        "*Trigger*\nregistry-500 in team/app #41",
        "*Registry*\nhttps://registry.example:5000",
        "*Repositories*\nteam/app, team/api",
        "*Push*\nsucceeded (2 attempts)",
        "*Dry run*\nno",
        "*Space freed*\n3.0 GiB measured, 2.5 GiB predicted",
        "*Garbage collection*\nran; the undo window is closed (restore: only images whose blobs are shared)",
    ]
    lines = tags["text"]["text"].splitlines()
    assert lines[0] == "*Deleted 12 tags*"
    assert lines[1:11] == [f"• `team/app:3.3.0-alpha.{n}`" for n in range(1, 11)]
    assert lines[11] == "…and 2 more"
    assert message.text == (
        "OK: Push recovered after pruning 12 tags — team/app #41; https://registry.example:5000; 12 tags deleted; "
        "push succeeded (2 attempts); freed 3.0 GiB measured, 2.5 GiB predicted"
    )


def test_failed_dry_run_message() -> None:
    message = build_message(
        summary(
            outcome="Push still fails",
            success=False,
            dry_run=True,
            deleted_tags=("team/app:1.0.0-rc.1",),
            push_succeeded=False,
            push_attempts=3,
            bytes_freed=None,
            gc_ran=False,
            error="received unexpected HTTP status: 500 Internal Server Error",
        )
    )
    header = message.blocks[0]["text"]["text"]
    assert header == ":x: Push still fails (dry run)"
    text = _texts(message.blocks)
    assert "still failing after 3 attempts" in text
    assert "yes, nothing was changed" in text
    assert "*Would delete 1 tag*" in text
    assert "2.5 GiB predicted" in text and "measured" not in text
    assert "Garbage collection" not in text
    assert message.blocks[-1]["text"]["text"].startswith("*Error*\n```received unexpected HTTP status: 500")
    assert message.text.startswith("FAILED: Push still fails (dry run)")
    assert "error: received unexpected HTTP status: 500" in message.text


def test_minimal_summary() -> None:
    message = build_message(RecoverySummary(outcome="Nothing to prune", success=True))
    assert [block["type"] for block in message.blocks] == ["header", "section", "section"]
    text = _texts(message.blocks)
    assert "not retried" in text and "*Deleted 0 tags*" in text and "*Build*" not in text


def test_build_without_url() -> None:
    message = build_message(summary(build=BuildContext(None, "team/app", "41")))
    assert message.blocks[1]["fields"][0]["text"] == "*Build*\nteam/app #41"


def test_limits_are_respected() -> None:
    huge = "x" * 10_000
    message = build_message(
        summary(
            outcome="O" * 400,
            trigger=huge,
            registry=huge,
            repositories=tuple(f"team/repo-{n}" for n in range(2000)),
            deleted_tags=tuple("team/app:" + "t" * 500 + str(n) for n in range(5000)),
            error=huge,
        )
    )
    assert len(message.blocks) <= BLOCK_LIMIT
    assert len(message.blocks[0]["text"]["text"]) <= HEADER_LIMIT
    for block in message.blocks[1:]:
        if "text" in block:
            assert len(block["text"]["text"]) <= SECTION_LIMIT
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10
    assert len(message.text) <= FALLBACK_LIMIT
    error = message.blocks[-1]["text"]["text"]
    assert error.startswith("*Error*\n```") and error.endswith("```")
    assert "…and 4990 more" in _texts(message.blocks)


def test_mrkdwn_is_escaped() -> None:
    message = build_message(summary(trigger="<!channel> & friends", deleted_tags=("a:`b`<c>",), error="x ``` y"))
    text = _texts(message.blocks)
    assert "&lt;!channel&gt; &amp; friends" in text
    assert "`a:'b'&lt;c&gt;`" in text
    assert "x ''' y" in text


def test_registered_secrets_never_reach_the_message() -> None:
    SlackReporter(webhook_url="http://127.0.0.1:9" + WEBHOOK_PATH)
    message = build_message(summary(error=f"push to http://127.0.0.1:9{WEBHOOK_PATH} failed"))
    _assert_no_canary(message.text, _texts(message.blocks))
    assert MASK in message.text


def test_build_context_from_env() -> None:
    env = {"BUILD_URL": "https://ci/job/a/7/", "JOB_NAME": "a", "BUILD_NUMBER": "7"}
    assert BuildContext.from_env(env) == BuildContext("https://ci/job/a/7/", "a", "7")
    assert BuildContext.from_env({}) == BuildContext()
    assert BuildContext.from_env({}).label is None


# --- delivery through slack-sdk ------------------------------------------------------------------------------------


def test_webhook_delivery() -> None:
    with FakeSlack() as slack:
        result = webhook(slack.webhook_url).send(summary())
    assert result.delivered and result.warning is None and result.destination == "incoming webhook"
    (request,) = slack.requests
    assert (request.method, request.path) == ("POST", WEBHOOK_PATH)
    assert request.headers["content-type"] == "application/json;charset=utf-8"
    body = request.json()
    expected = build_message(summary())
    assert body == {"text": expected.text, "blocks": expected.blocks}


def test_bot_token_delivery() -> None:
    with FakeSlack() as slack:
        reporter = bot(slack.api_url, "registry-alerts")
        result = reporter.send(summary())
    assert result.delivered and result.destination == "#registry-alerts"
    (request,) = slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    body = request.json()
    assert body["channel"] == "registry-alerts"
    assert body["text"] == build_message(summary()).text
    assert body["blocks"][0]["type"] == "header"


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_rate_limit_is_retried(mode: str) -> None:
    with FakeSlack(rate_limited=1, retry_after="0") as slack:
        reporter = webhook(slack.webhook_url) if mode == "webhook" else bot(slack.api_url)
        result = reporter.send(summary())
    assert result.delivered, result.warning
    assert len(slack.requests) == 2
    assert slack.requests[0].body == slack.requests[1].body


def test_retries_are_bounded() -> None:
    with FakeSlack(rate_limited=100, retry_after="0") as slack:
        result = webhook(slack.webhook_url, max_retries=1).send(summary())
    assert not result.delivered
    assert len(slack.requests) == 2
    assert result.warning is not None and "HTTP 429" in result.warning


def test_a_long_retry_after_is_not_waited_for() -> None:
    with FakeSlack(rate_limited=1, retry_after="600") as slack:
        reporter = bot(slack.api_url)
        result = reporter.send(summary())
    assert not result.delivered and len(slack.requests) == 1
    assert result.warning is not None and "ratelimited" in result.warning


@pytest.mark.parametrize(
    ("error", "hint"), [("channel_not_found", "--slack-channel"), ("not_in_channel", "/invite"), ("odd_error", "")]
)
def test_api_errors_are_warnings_with_hints(error: str, hint: str, caplog: pytest.LogCaptureFixture) -> None:
    with FakeSlack(api_error=error) as slack:
        reporter = bot(slack.api_url)
        with caplog.at_level(logging.DEBUG):
            result = reporter.send(summary())
    assert not result.delivered
    assert result.warning is not None and error in result.warning and hint in result.warning
    assert f"Slack report to C0CANARY01 failed: {result.warning}" in caplog.text
    _assert_no_canary(caplog.text, result.warning)


def test_wrong_token_is_a_warning() -> None:
    with FakeSlack(token="xoxb-another-token") as slack:
        reporter = bot(slack.api_url)
        result = reporter.send(summary())
    assert not result.delivered and result.warning is not None and "invalid_auth" in result.warning
    _assert_no_canary(result.warning)


def test_webhook_rejected_is_a_warning() -> None:
    with FakeSlack(webhook_status=404, webhook_body="no_service") as slack:
        result = webhook(slack.webhook_url).send(summary())
    assert not result.delivered
    assert result.warning == "the webhook answered HTTP 404: no_service"


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_unreachable_slack_is_a_warning_without_secrets(
    mode: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.DEBUG):
        if mode == "webhook":
            reporter = webhook(base + WEBHOOK_PATH, max_retries=1)
        else:
            reporter = bot(base + "/api/", max_retries=1)
        result = reporter.send(summary())
    assert not result.delivered
    assert result.warning == "cannot reach Slack: Connection refused"
    captured = capsys.readouterr()
    _assert_no_canary(caplog.text, captured.out, captured.err, result.warning)
    if mode == "webhook":
        assert redact(base + WEBHOOK_PATH) == MASK


def test_sdk_logs_never_reach_stderr_unredacted() -> None:
    """slack-sdk logs its failures; without our logger they would reach stderr through logging's last resort."""
    script = textwrap.dedent(
        f"""
        from pipeline_step.cli.runtime import configure_logging
        from pipeline_step.integrations.slack import RecoverySummary, SlackReporter
        url = "http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"
        result = SlackReporter(webhook_url=url, retry_interval=0.01, max_retries=1).send(RecoverySummary("x", True))
        configure_logging(2)
        result = SlackReporter(webhook_url=url, retry_interval=0.01, max_retries=1).send(RecoverySummary("x", True))
        print(result.warning)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    assert completed.stdout.strip() == "cannot reach Slack: Connection refused"
    _assert_no_canary(completed.stdout, completed.stderr)
    assert "Failed to send a request to Slack API server" not in completed.stderr  # slack-sdk's own line


# --- construction and flags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either a webhook URL or a bot token"),
        ({"webhook_url": "https://hooks.slack.com/x", "token": BOT_TOKEN}, "either a webhook URL or a bot token"),
        ({"webhook_url": "ftp://hooks.example/CANARYSECRETWEBHOOK"}, "not an http(s) URL"),
        ({"token": BOT_TOKEN}, "needs a channel"),
    ],
)
def test_reporter_construction_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        SlackReporter(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    _assert_no_canary(str(caught.value))


def _slack_args(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="test")
    integration_options.add_slack_options(parser)
    return parser.parse_args(list(argv))


def test_slack_from_args() -> None:
    from_flag = integration_options.slack_from_args(_slack_args("--slack-webhook", "https://hooks.example/a"), {})
    assert from_flag is not None and from_flag.destination == "incoming webhook"
    env = {"SLACK_WEBHOOK_URL": "https://hooks.example/b", "SLACK_BOT_TOKEN": BOT_TOKEN}
    from_env = integration_options.slack_from_args(_slack_args(), env)
    assert from_env is not None and from_env.destination == "incoming webhook"
    bot = integration_options.slack_from_args(_slack_args("--slack-channel", "ops"), env)
    assert bot is not None and bot.destination == "#ops"
    other = integration_options.slack_from_args(
        _slack_args("--slack-channel", "ops", "--slack-token-env", "OTHER"),
        {"OTHER": "xoxb-other-token"},
    )
    assert other is not None
    assert integration_options.slack_from_args(_slack_args("--no-slack"), env) is None
    assert integration_options.slack_from_args(_slack_args(), {}) is None
    assert redact(BOT_TOKEN) == MASK


def test_a_token_without_a_channel_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert integration_options.slack_from_args(_slack_args(), {"SLACK_BOT_TOKEN": BOT_TOKEN}) is None
    assert "--slack-channel is not" in caplog.text


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--slack-channel", "ops"), {}, "needs a bot token in $SLACK_BOT_TOKEN"),
        (("--slack-webhook", "https://hooks.example/CANARYSECRETWEBHOOK", "--slack-channel", "ops"), {}, "both given"),
    ],
)
def test_slack_flag_errors(argv: tuple[str, ...], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        integration_options.slack_from_args(_slack_args(*argv), env)
    assert message in str(caught.value)
    _assert_no_canary(str(caught.value))


def test_slack_token_flag_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        _slack_args("--slack-token", BOT_TOKEN)
    assert "refusing --slack-token" in str(caught.value) and "--slack-token-env" in str(caught.value)


def test_webhook_flag_value_is_registered_at_once() -> None:
    _slack_args("--slack-webhook", "https://hooks.example/services/T1/B1/CANARY-FLAG-WEBHOOK")
    assert redact("https://hooks.example/services/T1/B1/CANARY-FLAG-WEBHOOK") == MASK


def test_attachments_are_counted_apart_from_the_deleted_tags() -> None:
    attached = {"signatures": 15, "attestations": 16, "SBOMs": 15, "referrers indexes": 15}
    message = build_message(summary(deleted_attachments=attached))
    tags = message.blocks[2]["text"]["text"].splitlines()
    assert tags[0] == "*Deleted 12 tags and their 61 signatures, attestations, SBOMs and referrers indexes*"
    assert "12 tags and their 61 signatures, attestations, SBOMs and referrers indexes deleted" in message.text
    # From a recover report: attachments' tags (sha256-<hex>.sig) are not listed among the deleted tags.
    report = RecoveryReport(
        outcome="recovered",
        exit_code=0,
        message="push recovered",
        started=datetime.now(timezone.utc),
        deleted=[
            Entry("team/app", "3.3.0-alpha.1", "sha256:" + "1" * 64, "old"),
            Entry("team/app", "sha256-" + "1" * 64 + ".sig", "sha256:" + "2" * 64, "sig", "signature"),
        ],
        summary=Summary(deleted=1, attachments_deleted=1, attachment_kinds={"signature": 1}),
    )
    slack = slack_summary(report, BuildContext())
    assert slack.deleted_tags == ["team/app:3.3.0-alpha.1"] and slack.deleted_attachments == {"signatures": 1}
