"""Report a recovery to Slack: an incoming webhook or a bot token and a channel.

A Slack failure never fails the recovery: :meth:`SlackReporter.send` logs a
warning and returns it in a :class:`SlackResult`. The webhook URL and the token
are secrets: they are registered for redaction when the reporter is built, and
failures are described in our own words, since slack-sdk's messages and logs
can quote the URL. slack-sdk logs through a logger of ours that stays silent:
its records would otherwise reach stderr through logging's last-resort handler,
unredacted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from pipeline_step.errors import UsageError
from pipeline_step.support.redact import MASK, redact, register_secret
from pipeline_step.support.units import describe_freed, format_bytes, plural

log = logging.getLogger(__name__)
UNDO_CLOSED_FIELD = "*Garbage collection*\nran; the undo window is closed (restore: only images whose blobs are shared)"
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.CRITICAL + 1)

DEFAULT_API_URL = "https://slack.com/api/"
HEADER_LIMIT = 150  # Block Kit: header text
SECTION_LIMIT = 3000  # section text
FIELD_LIMIT = 2000  # each section field
BLOCK_LIMIT = 50  # blocks per message
FALLBACK_LIMIT = 4000  # Slack truncates longer `text`
TAGS_SHOWN = 10

# Slack's error codes that have an obvious next step.
_API_HINTS = {
    "invalid_auth": "check the bot token in $SLACK_BOT_TOKEN",
    "not_authed": "check the bot token in $SLACK_BOT_TOKEN",
    "token_revoked": "the bot token was revoked; install the app again and update $SLACK_BOT_TOKEN",
    "channel_not_found": "check --slack-channel (a channel ID such as C0123456789 always works)",
    "not_in_channel": "invite the bot to the channel (/invite @bot)",
    "missing_scope": "give the Slack app the chat:write scope",
    "ratelimited": "Slack rate-limited the bot; the report was dropped",
}


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Where the report comes from, as Jenkins tells every build through its environment."""

    url: str | None = None  # BUILD_URL
    job_name: str | None = None  # JOB_NAME
    number: str | None = None  # BUILD_NUMBER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuildContext:
        env = os.environ if environ is None else environ
        return cls(env.get("BUILD_URL") or None, env.get("JOB_NAME") or None, env.get("BUILD_NUMBER") or None)

    @property
    def label(self) -> str | None:
        if self.job_name and self.number:
            return f"{self.job_name} #{self.number}"
        return self.job_name or (f"build #{self.number}" if self.number else None)


@dataclass(frozen=True)
class RecoverySummary:
    """What a recovery did, in the terms a Slack reader needs."""

    outcome: str  # one line, e.g. "Push recovered after pruning 12 tags"
    success: bool
    trigger: str | None = None  # why it ran, e.g. "registry-500 in team/app #41"
    registry: str | None = None
    repositories: Sequence[str] = ()
    deleted_tags: Sequence[str] = ()  # "repo:tag", in deletion order
    deleted_attachments: Mapping[str, int] = field(default_factory=dict)  # "signatures" -> count, deleted with them
    bytes_freed: int | None = None  # measured by a disk probe
    bytes_predicted: int | None = None  # the planner's estimate
    push_attempted: bool = False
    push_succeeded: bool | None = None
    push_attempts: int = 0
    dry_run: bool = False
    gc_ran: bool = False  # so the undo window is closed
    build: BuildContext = field(default_factory=BuildContext)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the notification and fallback text
    blocks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SlackResult:
    delivered: bool
    destination: str  # "incoming webhook" or "#channel"
    warning: str | None = None  # why not, redacted; None when delivered


def _escape(text: str) -> str:
    """mrkdwn control characters; Slack wants exactly these three escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(text: str) -> str:
    """Inline code; a backtick inside would end it early."""
    return "`" + text.replace("`", "'") + "`"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _push_line(summary: RecoverySummary) -> str:
    if not summary.push_attempted:
        return "not retried"
    attempts = f"{summary.push_attempts} attempt{'s' if summary.push_attempts != 1 else ''}"
    if summary.push_succeeded:
        return f"succeeded ({attempts})"
    return f"still failing after {attempts}"


def _bytes_line(summary: RecoverySummary) -> str | None:
    parts = []
    if summary.bytes_freed is not None:
        freed = summary.bytes_freed
        # A drop in free space is no saving: say so, and why (the disk is shared).
        parts.append(f"{format_bytes(freed)} measured" if freed >= 0 else f"none: {describe_freed(freed)}")
    if summary.bytes_predicted is not None:
        parts.append(f"{format_bytes(summary.bytes_predicted)} predicted")
    return ", ".join(parts) or None


def attachments_text(attachments: Mapping[str, int]) -> str:
    """``and their 58 signatures and attestations``: kinds as given (plural names), counted apart."""
    total = sum(attachments.values())
    if not total:
        return ""
    names = list(attachments)
    kinds = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f" and their {total} {kinds}"


def _tags_text(tags: Sequence[str], *, dry_run: bool, attachments: Mapping[str, int] | None = None) -> str:
    verb = "Would delete" if dry_run else "Deleted"
    head = f"*{verb} {len(tags)} tag{'s' if len(tags) != 1 else ''}{attachments_text(attachments or {})}*"
    if not tags:
        return head
    shown = ["• " + _code(_cut(_escape(tag), 200)) for tag in tags[:TAGS_SHOWN]]
    more = len(tags) - TAGS_SHOWN
    if more > 0:
        shown.append(f"…and {more} more")
    return head + "\n" + "\n".join(shown)


def build_message(summary: RecoverySummary) -> SlackMessage:
    """Block Kit blocks plus a plain fallback text, within Slack's size limits."""
    mark = ":white_check_mark:" if summary.success else ":x:"
    dry = " (dry run)" if summary.dry_run else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_cut(f"{mark} {summary.outcome}{dry}", HEADER_LIMIT))},
    ]
    build = summary.build
    fields: list[str] = []
    if build.label or build.url:
        label = _escape(build.label or build.url or "")
        fields.append(f"*Build*\n<{build.url}|{label}>" if build.url else f"*Build*\n{label}")
    if summary.trigger:
        fields.append(f"*Trigger*\n{_escape(summary.trigger)}")
    if summary.registry:
        fields.append(f"*Registry*\n{_escape(summary.registry)}")
    if summary.repositories:
        fields.append(f"*Repositories*\n{_escape(', '.join(summary.repositories))}")
    push = _push_line(summary)
    fields.append(f"*Push*\n{push}")
    fields.append(f"*Dry run*\n{'yes, nothing was changed' if summary.dry_run else 'no'}")
    freed = _bytes_line(summary)
    if freed:
        fields.append(f"*Space freed*\n{freed}")
    if summary.gc_ran:
        fields.append(UNDO_CLOSED_FIELD)
    blocks.append({"type": "section", "fields": [_mrkdwn(text, FIELD_LIMIT) for text in fields[:10]]})
    if summary.deleted_tags or not summary.dry_run:
        blocks.append(
            _section(_tags_text(summary.deleted_tags, dry_run=summary.dry_run, attachments=summary.deleted_attachments))
        )
    if summary.error:
        error = _cut(_escape(summary.error).replace("```", "'''"), SECTION_LIMIT - 20)
        blocks.append(_section(f"*Error*\n```{error}```"))
    blocks = blocks[:BLOCK_LIMIT]

    text = f"{'OK' if summary.success else 'FAILED'}: {summary.outcome}{dry}"
    deleted = f"{plural(len(summary.deleted_tags), 'tag')}{attachments_text(summary.deleted_attachments)} deleted"
    details = [build.label, summary.registry, deleted, f"push {push}"]
    if freed:
        details.append(f"freed {freed}")
    if summary.error:
        details.append(f"error: {summary.error}")
    text += " — " + "; ".join(detail for detail in details if detail)
    return SlackMessage(_cut(redact(text), FALLBACK_LIMIT), _redact_blocks(blocks))


def _redact_blocks(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_blocks(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact_blocks(item) for key, item in value.items()}
    return value


class _BoundedRateLimitRetry(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler, except that it gives up when Retry-After asks for more than ``max_wait`` seconds."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            wait = int(values[0])  # what the parent's prepare_for_next_attempt will parse
        except (ValueError, IndexError):
            log.warning("Slack sent an unreadable Retry-After %r; not retrying", values)
            return False
        if wait > self.max_wait:
            log.warning("Slack asks to wait %gs before retrying (limit %gs); not retrying", wait, self.max_wait)
            return False
        log.info("Slack rate limit; retrying in about %gs", wait)
        return True


class SlackReporter:
    """Posts a :class:`RecoverySummary` through a webhook or ``chat.postMessage``."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        api_url: str = DEFAULT_API_URL,
        timeout: int = 10,
        max_retries: int = 2,
        retry_interval: float = 1.0,
        max_rate_limit_wait: float = 30.0,
    ) -> None:
        register_secret(webhook_url)
        register_secret(token)
        if webhook_url:
            register_secret(urlsplit(webhook_url).path)  # the secret part, should a message quote only the path
        if bool(webhook_url) == bool(token):
            raise UsageError("give the Slack reporter either a webhook URL or a bot token, not both or neither")
        if webhook_url and urlsplit(webhook_url).scheme not in ("http", "https"):
            raise UsageError("the Slack webhook URL is not an http(s) URL", hint="copy it from the Slack app's page")
        if token and not channel:
            raise UsageError("a Slack bot token needs a channel", hint="pass --slack-channel CHANNEL")
        self._secrets = [s for s in (webhook_url, token) if s]
        handlers: list[RetryHandler] = [
            ConnectionErrorRetryHandler(
                max_retry_count=max_retries, interval_calculator=FixedValueRetryIntervalCalculator(retry_interval)
            ),
            _BoundedRateLimitRetry(max_retries, max_rate_limit_wait),
        ]
        self.channel = channel
        self._webhook: WebhookClient | None = None
        self._client: WebClient | None = None
        if webhook_url:
            self._webhook = WebhookClient(webhook_url, timeout=timeout, logger=_sdk_log, retry_handlers=handlers)
        else:
            self._client = WebClient(
                token=token, base_url=api_url, timeout=timeout, logger=_sdk_log, retry_handlers=handlers
            )

    @property
    def destination(self) -> str:
        if self._webhook is not None:
            return "incoming webhook"
        channel = self.channel or ""
        return channel if channel.startswith(("#", "C", "G", "D")) else f"#{channel}"

    def send(self, summary: RecoverySummary) -> SlackResult:
        return self.post(build_message(summary))

    def post(self, message: SlackMessage) -> SlackResult:
        """Deliver ``message``; failures become a logged warning, never an exception."""
        try:
            warning = self._deliver(message)
        except Exception as exc:  # noqa: BLE001 - a report must never break the recovery it reports on
            warning = self._describe(exc)
        if warning is None:
            log.info("Slack report sent to %s", self.destination)
            return SlackResult(True, self.destination)
        warning = self._scrub(warning)
        log.warning("Slack report to %s failed: %s", self.destination, warning)
        return SlackResult(False, self.destination, warning)

    def _deliver(self, message: SlackMessage) -> str | None:
        if self._webhook is not None:
            response = self._webhook.send(text=message.text, blocks=message.blocks)
            if response.status_code == 200:
                return None
            body = (response.body or "").strip()[:200]
            hint = " (rate limited)" if response.status_code == 429 else ""
            return f"the webhook answered HTTP {response.status_code}{hint}: {body or 'no body'}"
        assert self._client is not None and self.channel is not None
        self._client.chat_postMessage(channel=self.channel, text=message.text, blocks=message.blocks)
        return None

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, SlackApiError):
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            status = getattr(exc.response, "status_code", "?")
            hint = _API_HINTS.get(error)
            return f"chat.postMessage answered {error or f'HTTP {status}'}" + (f" ({hint})" if hint else "")
        if isinstance(exc, HTTPError):
            return f"Slack answered HTTP {exc.code}"
        if isinstance(exc, URLError):
            reason = exc.reason
            if isinstance(reason, OSError) and reason.strerror:
                return f"cannot reach Slack: {reason.strerror}"
            return f"cannot reach Slack: {reason}"
        if isinstance(exc, TimeoutError):
            return "Slack did not answer in time"
        return f"{type(exc).__name__}: {exc}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact(text)
