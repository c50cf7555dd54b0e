"""Secrets are masked where text leaves the tool, by value; encoded payloads are never touched."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline_step.execution.audit import AuditLog, read_audit
from pipeline_step.planning.planner import DeleteStep, Phase
from pipeline_step.registry.auth import Credentials
from pipeline_step.reports.prune import PruneReport
from pipeline_step.support.redact import MASK, clear_secrets, redact, register_secret
from tests.support.images import image_documents, sha256


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def test_a_secret_that_occurs_inside_an_undo_record_does_not_corrupt_it(tmp_path: Path) -> None:
    documents = image_documents("3.3.0-alpha.1")
    digest = sha256(documents.manifest)
    encoded = base64.b64encode(documents.manifest).decode()
    register_secret(encoded[40:48])  # a secret of 8 characters that happens to occur in the encoded manifest
    audit = AuditLog(tmp_path, "http://127.0.0.1:5000")
    step = DeleteStep("team/app", digest, ("3.3.0-alpha.1",), documents.media_type, Phase.IMAGE, "test")
    audit.record_intent(step, documents.manifest)
    audit.close()
    (back,) = read_audit(audit.path)
    assert back.manifest == documents.manifest
    assert MASK not in audit.path.read_text()


def test_a_secret_is_masked_in_a_report_even_where_json_escapes_it(tmp_path: Path) -> None:
    """Masking the serialized text misses a secret with a quote or a backslash: JSON escapes them."""
    secret = 'pa"ss\\w0rd-CANARY'
    register_secret(secret)
    now = datetime.now(timezone.utc)
    report = PruneReport(outcome="ok", exit_code=0, message=f"pushed with {secret}", started=now, notes=[secret])
    target = tmp_path / "r.json"
    report.write(target)
    document = json.loads(target.read_text())
    assert secret not in json.dumps(document) and secret not in document["message"] and secret not in document["notes"]
    assert document["notes"] == [MASK]


def test_making_credentials_registers_nothing() -> None:
    """The library keeps no hidden secret state: whoever reads a password registers it (the CLI does)."""
    credentials = Credentials("ci", "side-effect-CANARY")
    assert credentials.basic_header().startswith("Basic ")
    assert redact("side-effect-CANARY") == "side-effect-CANARY"
