"""The real CLI in a subprocess, and the argument lists tests keep repeating.

Every ``--json`` report a run writes is validated against the committed JSON
Schema (docs/report-schema.json) before the test sees it, so the whole suite
checks the schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = ROOT / "docs" / "report-schema.json"
CALLER_SECRETS = {"REGISTRY_USERNAME", "REGISTRY_PASSWORD", "BUILD_URL", "JOB_NAME", "BUILD_NUMBER"}


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_type = jsonschema.validators.validator_for(schema)
    return validator_type(schema)  # type: ignore[no-any-return]


def validate_report(document: Any, where: str = "report") -> None:
    """Fail unless ``document`` is a report the schema describes."""
    errors = sorted(_validator().iter_errors(document), key=lambda error: list(error.path))
    if errors:
        first = errors[0]
        path = "/".join(str(part) for part in first.path) or "(top)"
        raise AssertionError(f"{where} does not match docs/report-schema.json at {path}: {first.message}")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _json_target(args: tuple[str, ...]) -> str | None:
    for index, word in enumerate(args):
        if word == "--json" and index + 1 < len(args):
            return args[index + 1]
    return None


def check_reports(args: tuple[str, ...], stdout: str) -> None:
    """Validate the report a run wrote to ``--json FILE`` (or to stdout with ``--json -``)."""
    target = _json_target(args)
    if target is None:
        return
    if target == "-":
        if stdout.strip():
            validate_report(json.loads(stdout), "the --json - report")
        return
    path = Path(target)
    if path.is_file():
        validate_report(json.loads(path.read_text(encoding="utf-8")), str(path))


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without the caller's credentials and CI context."""
    full = {k: v for k, v in os.environ.items() if k not in CALLER_SECRETS and not k.startswith(("SLACK_", "JENKINS_"))}
    full.update(env or {})
    return full


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120) -> CliResult:
    """Run the real CLI (``python -m pipeline_step``) in a subprocess."""
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline_step", *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        input=stdin,
        timeout=timeout,
        cwd=ROOT,
    )
    check_reports(args, completed.stdout)
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def policy_args(url: str, repo: str = "team/app", *, match: str = "alpha", keep: int = 10) -> tuple[str, ...]:
    """``--registry URL --repo REPO --match MATCH --keep N``: the policy most tests run."""
    return ("--registry", url, "--repo", repo, "--match", match, "--keep", str(keep))
