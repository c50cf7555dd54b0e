"""Flags for Slack, Jenkins, disk probes and GC, shared by ``classify``, ``gc`` and ``recover``.

Each ``add_*_options`` adds an argument group; each ``*_from_args`` turns the
parsed flags (and the environment) into a ready object, or None when the
integration is not configured. Secrets are registered for redaction the moment
they are read. Tokens are never flag values: they come from environment
variables named by ``--*-token-env``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Mapping

from pipeline_step.cli.secret_flags import SecretValue, add_refused_flag
from pipeline_step.errors import UsageError
from pipeline_step.integrations.disk import DiskProbe, parse_probe
from pipeline_step.integrations.gc import GcCommands
from pipeline_step.integrations.jenkins import BuildRef, JenkinsClient, parse_build_ref
from pipeline_step.integrations.slack import SlackReporter
from pipeline_step.support.redact import register_secret
from pipeline_step.support.units import FreeSpaceThreshold

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE = "10%"
SLACK_WEBHOOK_ENV = "SLACK_WEBHOOK_URL"
SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"  # noqa: S105 - a variable name, not a token
JENKINS_TOKEN_ENV = "JENKINS_API_TOKEN"  # noqa: S105 - a variable name, not a token
_ENV_HINT = "put it in an environment variable (withCredentials in Jenkins) and name it with {flag}"


def _min_free(text: str) -> FreeSpaceThreshold:
    try:
        return FreeSpaceThreshold.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_slack_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Slack report")
    group.add_argument(
        "--slack-webhook",
        metavar="URL",
        action=SecretValue,
        help=f"incoming webhook URL (default: ${SLACK_WEBHOOK_ENV}; prefer the variable, "
        "a flag value shows in process listings)",
    )
    group.add_argument(
        "--slack-channel",
        metavar="CHANNEL",
        help="post with a bot token to this channel (name or ID) instead of a webhook",
    )
    group.add_argument(
        "--slack-token-env",
        metavar="VAR",
        default=SLACK_TOKEN_ENV,
        help=f"environment variable holding the bot token (default: {SLACK_TOKEN_ENV})",
    )
    add_refused_flag(group, "--slack-token", "token", _ENV_HINT.format(flag="--slack-token-env"))
    group.add_argument("--no-slack", action="store_true", help="do not report to Slack even if it is configured")


def add_jenkins_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Jenkins")
    group.add_argument(
        "--jenkins-build",
        metavar="JOB#N",
        help="the build to read, e.g. folder/app#42 or folder/app#lastFailedBuild",
    )
    group.add_argument("--jenkins-url", metavar="URL", help="Jenkins root URL (default: $JENKINS_URL)")
    group.add_argument("--jenkins-user", metavar="USER", help="Jenkins user (default: $JENKINS_USER)")
    group.add_argument(
        "--jenkins-token-env",
        metavar="VAR",
        default=JENKINS_TOKEN_ENV,
        help=f"environment variable holding the user's API token (default: {JENKINS_TOKEN_ENV})",
    )
    add_refused_flag(group, "--jenkins-token", "token", _ENV_HINT.format(flag="--jenkins-token-env"))
    group.add_argument(
        "--jenkins-timeout", type=float, metavar="SECONDS", default=30.0, help="per-request timeout (default: 30)"
    )


def add_disk_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry disk")
    group.add_argument(
        "--disk",
        metavar="PROBE",
        help="measure the registry's filesystem: path:DIR, command:'ssh reg df -PB1 /var/lib/registry' "
        "or prometheus:http://reg:9100/metrics#mountpoint=/var/lib/registry",
    )
    group.add_argument(
        "--min-free",
        metavar="SIZE|PCT",
        type=_min_free,
        default=FreeSpaceThreshold.parse(DEFAULT_MIN_FREE),
        help="the disk counts as low below this much free space, e.g. 10%% or 5GiB "
        f"(default: {DEFAULT_MIN_FREE.replace('%', '%%')})",
    )


def slack_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> SlackReporter | None:
    """The reporter the flags and environment ask for, or None when Slack is not configured."""
    env = os.environ if environ is None else environ
    if getattr(args, "no_slack", False):
        return None
    flag_webhook: str | None = getattr(args, "slack_webhook", None)
    channel: str | None = getattr(args, "slack_channel", None)
    token_env: str = getattr(args, "slack_token_env", None) or SLACK_TOKEN_ENV
    token = env.get(token_env, "").strip() or None
    env_webhook = env.get(SLACK_WEBHOOK_ENV, "").strip() or None
    register_secret(token)
    register_secret(env_webhook)
    if flag_webhook and channel:
        raise UsageError(
            "--slack-webhook and --slack-channel both given",
            hint="a webhook posts to its own channel; use one or the other",
        )
    if channel:
        if not token:
            raise UsageError(f"--slack-channel needs a bot token in ${token_env}", hint=f"export {token_env}=xoxb-...")
        return SlackReporter(token=token, channel=channel)
    webhook = flag_webhook or env_webhook
    if webhook:
        return SlackReporter(webhook_url=webhook)
    if token:
        log.warning("$%s is set but --slack-channel is not; no Slack report", token_env)
    return None


def build_ref_from_args(args: argparse.Namespace) -> BuildRef | None:
    text: str | None = getattr(args, "jenkins_build", None)
    return parse_build_ref(text) if text else None


def jenkins_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> JenkinsClient | None:
    """A client when a Jenkins URL is known (--jenkins-url or $JENKINS_URL), else None."""
    env = os.environ if environ is None else environ
    url: str | None = getattr(args, "jenkins_url", None) or env.get("JENKINS_URL") or None
    if not url:
        return None
    user: str | None = getattr(args, "jenkins_user", None) or env.get("JENKINS_USER") or None
    token_env: str = getattr(args, "jenkins_token_env", None) or JENKINS_TOKEN_ENV
    token = env.get(token_env, "").strip() or None
    register_secret(token)
    if user and not token:
        raise UsageError(
            f"Jenkins user {user!r} was given but ${token_env} is empty",
            hint=f"export {token_env} with the user's API token (or name another variable with --jenkins-token-env)",
        )
    if token and not user:
        # Like a stray REGISTRY_PASSWORD: a token without its user is not a login.
        log.warning("$%s is set but no Jenkins user was given; using Jenkins anonymously", token_env)
        token = None
    return JenkinsClient(url, user, token, timeout=getattr(args, "jenkins_timeout", None) or 30.0)


def disk_from_args(args: argparse.Namespace) -> DiskProbe | None:
    spec: str | None = getattr(args, "disk", None)
    return parse_probe(spec) if spec else None


def min_free_from_args(args: argparse.Namespace) -> FreeSpaceThreshold:
    value = getattr(args, "min_free", None)
    return value if isinstance(value, FreeSpaceThreshold) else FreeSpaceThreshold.parse(DEFAULT_MIN_FREE)


def add_gc_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group(
        "garbage collection",
        "GC runs only while the registry is read-only (--readonly-cmd, then --restart-cmd) or stopped "
        "(--stop-cmd, then --start-cmd), unless --allow-live-gc. Guard commands repeat, one per replica.",
    )
    group.add_argument(
        "--gc-cmd",
        metavar="CMD",
        required=required,
        help="runs `registry garbage-collect CONFIG` where the registry's storage is",
    )
    group.add_argument(
        "--readonly-cmd",
        metavar="CMD",
        action="append",
        help="puts the registry into storage.maintenance.readonly before GC (needs --restart-cmd)",
    )
    group.add_argument(
        "--restart-cmd",
        metavar="CMD",
        action="append",
        help="restarts the registry after GC: leaves read-only mode and drops its stale blob cache",
    )
    group.add_argument("--stop-cmd", metavar="CMD", action="append", help="stops the registry before GC")
    group.add_argument("--start-cmd", metavar="CMD", action="append", help="starts the registry again after GC")
    group.add_argument(
        "--allow-live-gc",
        action="store_true",
        help="garbage-collect a registry that accepts pushes (unsafe: a concurrent push can end up broken)",
    )
    group.add_argument(
        "--delete-untagged",
        action="store_true",
        help="pass --delete-untagged to GC (on 2.8 it breaks untagged children of manifest lists)",
    )
    # Replicas sharing one storage: each is waited for after a restart, and recover verifies through each.
    group.add_argument(
        "--replica-url",
        action="append",
        metavar="URL",
        help="another replica of the registry on the same storage (repeatable; give each one's own URL, not "
        "the load balancer's): after a restart each must answer before the run goes on, and recover reads the "
        "pushed image back through each (a replica left out of --restart-cmd serves a stale blob cache)",
    )
    group.add_argument(
        "--health-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the registry after a restart (default: 120)",
    )


GC_FLAGS = ("gc_cmd", "readonly_cmd", "restart_cmd", "stop_cmd", "start_cmd")


def gc_from_args(args: argparse.Namespace) -> GcCommands | None:
    """The GC commands, or None without --gc-cmd (then no guard flag may be given)."""
    for flag in GC_FLAGS:
        value = getattr(args, flag)
        for command in value if isinstance(value, list) else [value]:
            if command is not None and not command.strip():
                raise UsageError(f"--{flag.replace('_', '-')}: is empty", hint="give the shell command to run")
    if not args.gc_cmd:
        given = [f"--{flag.replace('_', '-')}" for flag in GC_FLAGS[1:] if getattr(args, flag)]
        if args.readonly_cmd or args.stop_cmd or args.start_cmd:
            raise UsageError(f"{given[0]} needs --gc-cmd", hint="it guards garbage collection, which needs --gc-cmd")
        return None
    return GcCommands(
        args.gc_cmd,
        restart=tuple(args.restart_cmd or ()),
        readonly=tuple(args.readonly_cmd or ()),
        stop=tuple(args.stop_cmd or ()),
        start=tuple(args.start_cmd or ()),
        allow_live=args.allow_live_gc,
        delete_untagged=args.delete_untagged,
    )


def gc_commands(args: argparse.Namespace) -> list[str]:
    """Every GC-related command the flags give, for secret scanning."""
    found: list[str] = []
    for flag in GC_FLAGS:
        value = getattr(args, flag, None)
        found.extend(value if isinstance(value, list) else [value] if value else [])
    return found
