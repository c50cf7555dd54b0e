"""``registry-prune restore``: the undo window between a prune and garbage collection."""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import pytest

from pipeline_step.execution.audit import AuditLog, read_audit
from pipeline_step.planning.planner import DeleteStep, Phase
from pipeline_step.registry.digest import compute_digest
from pipeline_step.support.locking import RegistryLock
from tests.support.cli import CliResult, run_cli
from tests.support.fault_seed import SeededStorage, alpha, write_app
from tests.support.images import Pusher
from tests.support.proxy import RecordingProxy
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.registry_state import RegistryState

App = tuple[RegistryServer, SeededStorage]


@pytest.fixture
def app(registry_factory: RegistryFactory, tmp_path: Path) -> App:
    seed = write_app(tmp_path / "seeded", count=14, keep=10)  # deletes alpha.1, alpha.4, the alpha.2 list and its child
    return registry_factory("restore", storage=seed.storage), seed


def prune(server: RegistryServer, seed: SeededStorage) -> Path:
    result = run_cli("prune", "--registry", server.url, *seed.policy, "--no-progress")
    assert result.code == 0, result.output
    match = re.search(r"registry-prune restore --from (\S+)`", result.stdout)
    assert match, result.stdout
    return Path(match.group(1))


_runs = itertools.count()


def restore(*args: str) -> tuple[CliResult, dict[str, object]]:
    report = Path(args[args.index("--from") + 1]).with_name(f"restore-{next(_runs)}.json")
    result = run_cli("restore", *args, "--json", str(report))
    document = json.loads(report.read_text()) if report.exists() else {}
    return result, document


def tags_in(document: dict[str, object], section: str) -> set[str | None]:
    entries = document[section]
    assert isinstance(entries, list)
    return {entry["tag"] for entry in entries}


def test_restore_brings_back_every_pruned_tag_byte_for_byte(app: App) -> None:
    server, seed = app
    deleted = seed.expected_deleted
    with RegistryState(server.url) as registry:
        before = {tag: registry.manifest(seed.repo, tag) for tag in deleted}
        child_before = registry.manifest(seed.repo, seed.own_child.digest)
        audit = prune(server, seed)
        assert set(registry.tags(seed.repo)) == set(seed.expected_kept)

        dry, _ = restore("--from", str(audit), "--dry-run")
        assert dry.code == 0, dry.output
        assert f"would restore {seed.repo}:{alpha(1)}" in dry.stdout and "nothing was changed" in dry.stdout
        assert set(registry.tags(seed.repo)) == set(seed.expected_kept)

        result, report = restore("--from", str(audit))
        assert result.code == 0, result.output
        assert report["outcome"] == "ok" and report["exit_code"] == 0
        assert tags_in(report, "restored") == {*deleted, None}  # None: the list's untagged child
        assert registry.snapshot(seed.repo) == seed.tags
        for tag, digest in deleted.items():
            # Byte for byte: the same manifest, the same media type, the same digest.
            assert registry.manifest(seed.repo, tag) == before[tag]
            assert registry.resolve(seed.repo, tag) == digest
        assert registry.manifest(seed.repo, seed.own_child.digest) == child_before
        audited = {d.digest: d.manifest for d in read_audit(audit)}
        for tag, digest in deleted.items():
            restored = registry.manifest(seed.repo, tag)
            assert restored is not None and restored[0] == audited[digest]

    again, report = restore("--from", str(audit))
    assert again.code == 0, again.output
    assert report["restored"] == [] and tags_in(report, "present") == {*deleted, None}


def test_after_garbage_collection_restore_names_what_is_lost_and_puts_nothing_back(app: App) -> None:
    server, seed = app
    audit = prune(server, seed)
    configs = {
        d.digest: json.loads(d.manifest).get("config", {}).get("digest") for d in read_audit(audit) if d.tags != ()
    }
    with RegistryState(server.url) as registry:
        assert {registry.blob_status(seed.repo, c) for c in configs.values() if c} == {200}  # pulled: now cached
        server.garbage_collect()
        # The registry keeps running: its blob cache still answers HEAD for the blobs GC removed.
        assert {registry.blob_status(seed.repo, c) for c in configs.values() if c} == {200}
    with RecordingProxy(server.url) as proxy:
        result, report = restore("--from", str(audit), "--registry", proxy.url)
    assert result.code == 5, result.output
    assert [r for r in proxy.requests if r.method == "PUT"] == []
    assert report["outcome"] == "partial" and report["restored"] == []
    assert tags_in(report, "unrestorable") == {*seed.expected_deleted, None}
    entries = report["unrestorable"]
    assert isinstance(entries, list)
    for entry in entries:
        assert entry["missing"], entry
        if entry["tag"] == alpha(2):  # the list: its own child is gone
            assert entry["missing"] == [seed.own_child.digest]
        elif entry["tag"] is not None:  # an image: its config blob was unique to it
            assert entry["missing"] == [configs[entry["digest"]]]
    for tag in seed.expected_deleted:
        assert f"cannot restore {seed.repo}:{tag}" in result.stdout
    assert "garbage collection ran after the prune" in result.stdout
    assert "closes the undo window" in result.stdout
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.expected_kept
        assert registry.present(seed.repo, {*seed.expected_deleted.values(), seed.own_child.digest}) == set()


def test_restore_selected_tags_leaves_a_repushed_tag_alone_unless_forced(app: App) -> None:
    server, seed = app
    audit = prune(server, seed)
    with Pusher(server.url) as pusher:
        repushed = pusher.image(seed.repo, alpha(4), label="rebuilt after the prune")
    result, report = restore("--from", str(audit), "--tag", alpha(4), "--tag", alpha(2))
    assert result.code == 5, result.output
    assert tags_in(report, "conflicts") == {alpha(4)}
    assert "now points at" in result.stdout and "--force" in result.stdout
    assert tags_in(report, "restored") == {alpha(2), None}  # the list brings its deleted child
    with RegistryState(server.url) as registry:
        assert registry.resolve(seed.repo, alpha(4)) == repushed.digest
        assert registry.resolve(seed.repo, alpha(2)) == seed.tags[alpha(2)]
        assert registry.resolve(seed.repo, alpha(1)) is None  # not selected
        # The pruned manifest itself is back by digest, so nothing is lost if the operator forces later.
        assert registry.resolve(seed.repo, seed.tags[alpha(4)]) == seed.tags[alpha(4)]

    forced, report = restore("--from", str(audit), "--tag", alpha(4), "--force")
    assert forced.code == 0, forced.output
    entries = report["restored"]
    assert isinstance(entries, list)
    assert [(e["tag"], e["status"]) for e in entries] == [(alpha(4), "overwritten")]
    with RegistryState(server.url) as registry:
        assert registry.resolve(seed.repo, alpha(4)) == seed.tags[alpha(4)]


def test_restore_undoes_a_direct_storage_prune_through_the_api(app: App) -> None:
    server, seed = app
    pruned = run_cli("prune", "--storage-root", str(seed.storage), *seed.policy, "--no-progress")
    assert pruned.code == 0, pruned.output
    match = re.search(r"registry-prune restore --from (\S+)`", pruned.stdout)
    assert match, pruned.stdout
    result, report = restore("--from", match.group(1), "--registry", server.url)
    assert result.code == 0, result.output
    assert "the audit log was written for file://" in result.stdout
    assert tags_in(report, "restored") == {*seed.expected_deleted, None}
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.tags


def test_restore_waits_for_the_registry_lock_or_fails_fast(app: App, tmp_path: Path) -> None:
    server, seed = app
    audit = prune(server, seed)
    locks = tmp_path / "shared-locks"
    with RegistryLock(locks, server.url, command="prune"):
        busy = run_cli("restore", "--from", str(audit), "--lock-dir", str(locks), "--no-wait")
    assert busy.code == 6, busy.output
    assert "holds the lock" in busy.stderr
    with RegistryState(server.url) as registry:
        assert set(registry.tags(seed.repo)) == set(seed.expected_kept)


def write_audit(directory: Path, registry: str, body: bytes, digest: str) -> Path:
    log = AuditLog(directory, registry, actor="test")
    step = DeleteStep(
        "team/app", digest, ("1.0.0-alpha.1",), "application/vnd.oci.image.manifest.v1+json", Phase.IMAGE, ""
    )
    log.record_intent(step, body)
    log.record_outcome(step, "deleted", "deleted")
    log.close()
    return log.path


BAD_INPUT = {
    "missing-file": "cannot read audit log",
    "not-an-audit": "not an audit record",
    "unknown-tag": "tag '9.9.9' is not in the audit log (it records these tags: 1.0.0-alpha.1)",
    "altered-bytes": "holds bytes of another digest",
    "storage-root": "--storage-root is not supported",
    "direct-mode-audit": "it was written by a direct-storage prune (pass --registry URL",
}


@pytest.mark.parametrize(("case", "message"), BAD_INPUT.items(), ids=list(BAD_INPUT))
def test_bad_restore_input_is_one_line_and_changes_nothing(tmp_path: Path, case: str, message: str) -> None:
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}'
    good = write_audit(tmp_path / "audit", "http://127.0.0.1:1", body, compute_digest(body))
    args = ["--from", str(good)]
    if case == "missing-file":
        args = ["--from", str(tmp_path / "nope.jsonl")]
    elif case == "not-an-audit":
        (tmp_path / "x.jsonl").write_text("hello\n")
        args = ["--from", str(tmp_path / "x.jsonl")]
    elif case == "unknown-tag":
        args += ["--tag", "9.9.9"]
    elif case == "altered-bytes":
        record = json.loads(good.read_text().splitlines()[0])
        record["manifest_b64"] = base64.b64encode(body.replace(b"[]", b"[ ]")).decode()
        (tmp_path / "altered.jsonl").write_text(json.dumps(record) + "\n")
        args = ["--from", str(tmp_path / "altered.jsonl")]
    elif case == "storage-root":
        args += ["--storage-root", str(tmp_path)]
    elif case == "direct-mode-audit":
        args = ["--from", str(write_audit(tmp_path / "direct", "file:///var/lib/registry", body, compute_digest(body)))]
    result = run_cli("restore", *args)
    assert result.code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("registry-prune: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_latest_picks_the_newest_undo_log_by_name_and_refuses_an_empty_folder(tmp_path: Path) -> None:
    """Names start with the UTC time, and an archived copy keeps its name but not its mtime."""
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}'
    written = write_audit(tmp_path / "written", "http://127.0.0.1:1", body, compute_digest(body))
    logs = tmp_path / "archived"
    logs.mkdir()
    newest, older = logs / "20260102T000000Z-bbbb.jsonl", logs / "20260101T000000Z-aaaa.jsonl"
    newest.write_bytes(written.read_bytes())
    older.write_bytes(written.read_bytes())  # written last: the newest mtime, the older name
    (logs / "notes.txt").write_text("not a log")
    result = run_cli("restore", "--latest", str(logs), "--dry-run")
    assert f"restoring from {newest}, the newest undo log in {logs}" in result.stdout, result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((empty, "no undo log (*.jsonl) in it"), (tmp_path / "nope", "no such directory")):
        refused = run_cli("restore", "--latest", str(folder))
        assert refused.code == 2, refused.output
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and message in refused.stderr
    both = run_cli("restore", "--latest", str(logs), "--from", str(newest))
    assert both.code == 2 and "not allowed with argument" in both.stderr
