"""Races between planning and deleting, the registry lock, and the audit log."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline_step.backends.api.deleter import ApiDeleter
from pipeline_step.backends.api.source import ApiInventorySource
from pipeline_step.errors import InterruptedRunError, LockBusyError
from pipeline_step.execution.audit import read_audit
from pipeline_step.execution.executor import Executor, Status
from pipeline_step.planning.build import Plan, build_plan
from pipeline_step.policy.config import load_configuration
from pipeline_step.registry.client import RegistryClient
from pipeline_step.registry.http.choose import open_client
from pipeline_step.support.locking import RegistryLock
from tests.support.apps import SeededApp
from tests.support.cli import ROOT, run_cli
from tests.support.images import Pusher, list_tags, resolve
from tests.support.registry import RegistryServer

POLICY = ("--repo", "team/app", "--match", "alpha", "--keep", "10")


def plan_for(client: RegistryClient) -> Plan:
    configuration = load_configuration(
        None, flags={"repositories": ["team/app"], "policy.match": "alpha", "policy.keep": 10}
    )
    source = ApiInventorySource(client, concurrency=4)
    return build_plan(source, configuration, registry=client.url)


def test_tag_repushed_after_planning_is_skipped(registry: RegistryServer, seeded: SeededApp) -> None:
    with open_client(registry.url) as client:
        plan = plan_for(client)
        with Pusher(registry.url) as pusher:
            repushed = pusher.image("team/app", "3.3.0-alpha.7", label="rebuilt")
        result = Executor(ApiDeleter(client), concurrency=4).run(plan.pairs())
    skipped = result.by_status(Status.SKIPPED)
    assert [o.step.tags for o in skipped] == [("3.3.0-alpha.7",)]
    assert "re-pushed after planning" in skipped[0].detail
    assert len(result.by_status(Status.DELETED)) == 28
    assert resolve(registry.url, "team/app", "3.3.0-alpha.7") == repushed.digest
    assert resolve(registry.url, "team/app", seeded.alphas[7].digest) == seeded.alphas[7].digest


def test_kept_tag_moved_onto_a_planned_digest_withdraws_that_deletion(
    registry: RegistryServer, seeded: SeededApp
) -> None:
    with open_client(registry.url) as client:
        plan = plan_for(client)
        with Pusher(registry.url) as pusher:
            pusher.tag("team/app", "3.3.0-alpha.3", "latest")  # someone promotes an old build
            pusher.tag("team/app", "3.3.0-alpha.4", "hotfix")  # and tags another one anew
        result = Executor(ApiDeleter(client), concurrency=4).run(plan.pairs())
    skipped = {o.step.tags[0]: o.detail for o in result.by_status(Status.SKIPPED)}
    assert skipped == {
        "3.3.0-alpha.3": "tag latest now points at this digest (changed after planning)",
        "3.3.0-alpha.4": "tag hotfix now points at this digest (changed after planning)",
    }
    assert resolve(registry.url, "team/app", "latest") == seeded.alphas[3].digest
    assert resolve(registry.url, "team/app", "hotfix") == seeded.alphas[4].digest
    assert "3.3.0-alpha.3" in list_tags(registry.url, "team/app")


def test_audit_log_holds_exact_manifest_bytes_before_deletion(
    registry: RegistryServer, seeded: SeededApp, tmp_path: Path
) -> None:
    audit_dir = tmp_path / "undo"
    result = run_cli(
        "prune",
        "--registry",
        registry.url,
        *POLICY,
        "--audit-dir",
        str(audit_dir),
        env={"BUILD_URL": "https://jenkins.example/job/app/42/"},
    )
    assert result.code == 0, result.output
    files = list(audit_dir.glob("*.jsonl"))
    assert len(files) == 1
    assert f"registry-prune restore --from {files[0]}" in result.stdout
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    intents = [r for r in records if r["event"] == "intent"]
    outcomes = [r for r in records if r["event"] == "outcome"]
    assert len(intents) == len(outcomes) == 29
    for record in intents:
        body = base64.b64decode(record["manifest_b64"])
        assert "sha256:" + hashlib.sha256(body).hexdigest() == record["digest"]
        assert record["actor"] == "https://jenkins.example/job/app/42/"
        assert record["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert record["repository"] == "team/app" and len(record["tags"]) == 1
    assert {r["status"] for r in outcomes} == {"deleted"}
    # An intent is written before its DELETE: each intent precedes its outcome.
    order = [(r["event"], r["digest"]) for r in records]
    for record in outcomes:
        assert order.index(("intent", record["digest"])) < order.index(("outcome", record["digest"]))
    deletions = list(read_audit(files[0]))
    assert {d.tags[0] for d in deletions} == {f"3.3.0-alpha.{n}" for n in range(1, 31) if n != 5}


def test_no_wait_fails_fast_naming_the_holder(registry: RegistryServer, seeded: SeededApp, tmp_path: Path) -> None:
    locks = tmp_path / "shared-locks"
    with RegistryLock(locks, registry.url, command="prune"):
        result = run_cli("prune", "--registry", registry.url, *POLICY, "--lock-dir", str(locks), "--no-wait")
    assert result.code == 6, result.output
    assert f"registry-prune pid {os.getpid()}" in result.stderr
    assert len(list_tags(registry.url, "team/app")) == 44


def test_second_prune_waits_for_the_first(registry: RegistryServer, seeded: SeededApp, tmp_path: Path) -> None:
    locks = tmp_path / "shared-locks"
    lock = RegistryLock(locks, registry.url, command="prune")
    lock.acquire()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_PASSWORD")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_step", "prune", "--registry", registry.url, *POLICY, "--lock-dir", str(locks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert process.stderr is not None
    first_line = process.stderr.readline()  # blocks until the waiting run says so
    assert "waiting for the lock" in first_line and f"pid {os.getpid()}" in first_line
    assert len(list_tags(registry.url, "team/app")) == 44  # nothing happened while it waited
    lock.release()
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "deleted 29 tags" in stdout
    assert len(list_tags(registry.url, "team/app")) == 15


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from pipeline_step.support.locking import RegistryLock;"
        f"lock = RegistryLock(Path({str(tmp_path)!r}), 'http://127.0.0.1:1'); lock.acquire();"
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(LockBusyError):
        RegistryLock(tmp_path, "http://127.0.0.1:1", wait=False).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    again = RegistryLock(tmp_path, "http://127.0.0.1:1", wait=False)
    again.acquire()
    again.release()


def test_lock_wait_is_interruptible(tmp_path: Path) -> None:
    stop = threading.Event()
    holder = RegistryLock(tmp_path, "http://r:1")
    holder.acquire()
    waiter = RegistryLock(tmp_path, "http://r:1", stop=stop, on_wait=lambda who: stop.set())
    with pytest.raises(InterruptedRunError, match="interrupted while waiting"):
        waiter.acquire()
    holder.release()
