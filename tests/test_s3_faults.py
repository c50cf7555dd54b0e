"""S3 failing under a direct prune: throttling, DeleteObjects' per-key errors, missing permissions.

A recording proxy sits between the tool and the S3 server (moto, with
credential checks; the proxy keeps the Host header that SigV4 signs). It
answers with 503 SlowDown, or answers a DeleteObjects itself the way S3 does
when some keys fail: the other keys are really deleted (with the test's own
client, on the same server), the failed ones are named in ``<Error>``
elements. Every run is compared with an unfaulted direct prune of an
identical bucket: the same keys in the end, nothing kept lost, and every
deletion in the undo log.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline_step.execution.audit import read_audit
from tests.support.cli import run_cli
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.proxy import Fault, RecordingProxy, Rule, Rules
from tests.support.s3 import S3Server

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

TAGS = "docker/registry/v2/repositories/team/app/_manifests/tags/"
DELETES = r"\?delete"  # DeleteObjects: POST /<bucket>?delete
SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


class FlakyDeletes:
    """Answers DeleteObjects as S3 does when some keys fail: ``fails(key, times_seen, index)`` names
    the error code of a key that fails (None: the key is deleted, for real); ``index`` is the key's
    place in the request."""

    def __init__(self, client: S3Client, fails: Callable[[str, int, int], str | None]) -> None:
        self.client = client
        self.fails = fails
        self.seen: dict[str, int] = {}
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: str, body: bytes) -> tuple[int, bytes]:
        bucket = path.split("?", 1)[0].strip("/")
        keys = [element.text or "" for element in ET.fromstring(body).iter() if element.tag.endswith("Key")]
        errors: list[tuple[str, str]] = []
        deleted: list[str] = []
        with self._lock:
            for index, key in enumerate(keys):
                self.seen[key] = self.seen.get(key, 0) + 1
                code = self.fails(key, self.seen[key], index)
                if code is None:
                    deleted.append(key)
                else:
                    errors.append((key, code))
                    self.failed.append(key)
        if deleted:
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in deleted]})
        result = ET.Element("DeleteResult", xmlns="http://s3.amazonaws.com/doc/2006-03-01/")
        for key, code in errors:
            error = ET.SubElement(result, "Error")
            ET.SubElement(error, "Key").text = key
            ET.SubElement(error, "Code").text = code
            ET.SubElement(error, "Message").text = "injected"
        return 200, b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(result)


@pytest.fixture
def buckets(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[SeededStorage, dict[str, bytes]]]:
    """Bucket "flaky" to fault, and the keys an unfaulted direct prune leaves in its twin."""
    seed = write_app(tmp_path / "seed", count=24, keep=10)
    for bucket in ("flaky", "reference"):
        s3_server.create_bucket(bucket)
        s3_server.upload_tree(seed.storage, bucket)
    config = s3_server.write_registry_config(tmp_path / "reference.yml", "reference")
    clean = run_cli("prune", "--registry-config", str(config), *seed.policy, "--audit-dir", str(tmp_path / "ref"))
    assert clean.code == 0, clean.output
    yield seed, s3_server.objects("reference")


def through(proxy: RecordingProxy, s3: S3Server, tmp_path: Path) -> Path:
    config = s3.write_registry_config(tmp_path / "flaky.yml", "flaky")
    config.write_text(config.read_text().replace(s3.url, proxy.url))
    return config


def audited(audit_dir: Path) -> set[str]:
    return {tag for log in audit_dir.glob("*.jsonl") for deletion in read_audit(log) for tag in deletion.tags}


def test_throttling_and_per_key_failures_are_retried_and_the_prune_completes(
    buckets: tuple[SeededStorage, dict[str, bytes]], s3_server: S3Server, tmp_path: Path
) -> None:
    """Two DeleteObjects answered 503 SlowDown (botocore's standard retries), and two batches whose
    first key S3 reports as SlowDown once (that key is sent again alone): the run completes, exit 0."""
    seed, expected = buckets
    flaky = FlakyDeletes(s3_server.client(), lambda key, seen, index: "SlowDown" if seen == 1 and index == 0 else None)
    rules = Rules(
        Rule(Fault("status", 503, body=SLOW_DOWN), method="POST", path=DELETES, limit=2),
        Rule(Fault("answer", answer=flaky), method="POST", path=DELETES, every=2, limit=2),
    )
    with RecordingProxy(s3_server.url, rules, preserve_host=True) as proxy:
        config = through(proxy, s3_server, tmp_path)
        report = tmp_path / "prune.json"
        result = run_cli("prune", "--registry-config", str(config), *seed.policy, "--audit-dir",
                         str(tmp_path / "audit"), "--json", str(report))  # fmt: skip
        faults = [record.fault for record in proxy.faulted()]
    assert result.code == 0, result.output
    assert faults.count("status") == 2 and faults.count("answer") == 2, faults
    assert len(flaky.failed) == 2
    left = s3_server.objects("flaky")
    assert not set(flaky.failed) & set(left)  # the answer left them in place: each was sent again
    assert left == expected
    assert {entry["tag"] for entry in json.loads(report.read_text())["deleted"] if entry["tag"]} == set(
        seed.expected_deleted
    )
    assert audited(tmp_path / "audit") == set(seed.expected_deleted)


def test_a_key_that_keeps_failing_fails_its_step_only_and_a_rerun_converges(
    buckets: tuple[SeededStorage, dict[str, bytes]], s3_server: S3Server, tmp_path: Path
) -> None:
    """One tag's current/link fails with SlowDown on every attempt: that deletion is reported failed
    (exit 5) and its tag still resolves; every other deletion is done; a rerun converges."""
    seed, expected = buckets
    victim = next(tag for tag in seed.expected_deleted if tag.endswith(".5"))
    stuck = f"{TAGS}{victim}/current/link"
    flaky = FlakyDeletes(s3_server.client(), lambda key, seen, index: "SlowDown" if key == stuck else None)
    rules = Rules(Rule(Fault("answer", answer=flaky), method="POST", path=DELETES))
    report = tmp_path / "prune.json"
    with RecordingProxy(s3_server.url, rules, preserve_host=True) as proxy:
        config = through(proxy, s3_server, tmp_path)
        result = run_cli("prune", "--registry-config", str(config), *seed.policy, "--audit-dir",
                         str(tmp_path / "audit"), "--json", str(report))  # fmt: skip
    assert result.code == 5, result.output
    document = json.loads(report.read_text())
    assert [entry["tag"] for entry in document["failed"]] == [victim], document["failed"]
    assert flaky.seen[stuck] == 4  # the first attempt and three retries
    assert "DeleteObjects failed for 1 of 1 keys" in result.output
    left = s3_server.objects("flaky")
    assert f"{TAGS}{victim}/current/link" in left  # the tag still resolves: its link stayed
    for tag in seed.expected_kept:
        assert f"{TAGS}{tag}/current/link" in left, tag
    revision = f"docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{seed.tags[victim][7:]}/link"
    assert set(left) - set(expected) == {stuck, revision}  # its index/ keys went first, as planned
    assert audited(tmp_path / "audit") == set(seed.expected_deleted)

    config = s3_server.write_registry_config(tmp_path / "direct.yml", "flaky")
    rerun = run_cli("prune", "--registry-config", str(config), *seed.policy, "--audit-dir", str(tmp_path / "audit"))
    assert rerun.code == 0, rerun.output
    assert s3_server.objects("flaky") == expected


def test_credentials_that_may_not_delete_stop_before_any_deletion(
    buckets: tuple[SeededStorage, dict[str, bytes]], s3_server: S3Server, tmp_path: Path
) -> None:
    """A key allowed to list, read and write but not to delete: plan works, prune exits 3 at the
    probe, naming the missing permission; a read-only key cannot even take the lease (exit 4)."""
    seed, _ = buckets
    before = s3_server.objects("flaky", "docker/")
    for name, actions, code in (
        ("no-delete", ["s3:ListBucket", "s3:GetObject", "s3:PutObject"], 3),
        ("read-only", ["s3:ListBucket", "s3:GetObject"], 4),
    ):
        access, secret = s3_server.create_user(name, actions)
        config = s3_server.write_registry_config(tmp_path / f"{name}.yml", "flaky")
        text = config.read_text().replace(s3_server.access_key, access).replace(s3_server.secret_key, secret)
        config.write_text(text)
        planned = run_cli("plan", "--registry-config", str(config), *seed.policy)
        assert planned.code == 0, planned.output
        refused = run_cli("prune", "--no-progress", "--registry-config", str(config), *seed.policy, "--audit-dir",
                          str(tmp_path / name), "--json", str(tmp_path / f"{name}.json"))  # fmt: skip
        assert refused.code == code, refused.output
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "access denied" in lines[0] and "s3:DeleteObject" in lines[0], lines
        assert secret not in refused.output
        assert s3_server.objects("flaky", "docker/") == before
        assert audited(tmp_path / name) == set()
    # The key that may write but not delete left its lease expired, not held: a run takes it over at once.
    config = s3_server.write_registry_config(tmp_path / "full.yml", "flaky")
    after = run_cli("prune", "--no-wait", "--registry-config", str(config), *seed.policy, "--audit-dir",
                    str(tmp_path / "full"))  # fmt: skip
    assert after.code == 0, after.output
