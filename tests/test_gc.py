"""`registry-prune gc`: the safe order, the summary, measured bytes, and failures."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from pipeline_step.integrations.gc import GcCommands, parse_gc_summary, run_gc
from tests.support.apps import seed_app
from tests.support.cli import policy_args, run_cli
from tests.support.registry import RegistryFactory
from tests.support.scenario import SmallDisk


def test_gc_summary_is_parsed() -> None:
    output = (
        "team/app\nteam/app: marking manifest sha256:ab\n\n"
        "12 blobs marked, 30 blobs and 2 manifests eligible for deletion\n"
    )
    summary = parse_gc_summary(output)
    assert summary is not None
    assert (summary.blobs_marked, summary.blobs_eligible, summary.manifests_eligible) == (12, 30, 2)
    assert parse_gc_summary("nothing here") is None


def test_order_is_readonly_gc_restart_and_restart_runs_after_a_failed_gc(tmp_path: Path) -> None:
    journal = tmp_path / "journal"

    def step(name: str, code: int = 0) -> str:
        return f"echo {name} >> {shlex.quote(str(journal))}; exit {code}"

    result = run_gc(GcCommands(step("gc", 3), restart=(step("restart"),), readonly=(step("readonly"),)))
    assert journal.read_text().split() == ["readonly", "gc", "restart"]
    assert not result.ok and "exited 3" in str(result.error)
    journal.unlink()
    failed_readonly = run_gc(GcCommands(step("gc"), restart=(step("restart"),), readonly=(step("readonly", 1),)))
    # Never collect while the registry may still take pushes; still bring it back with the restart.
    assert journal.read_text().split() == ["readonly", "restart"]
    assert not failed_readonly.ok


def test_delete_untagged_only_when_asked_and_warned_about_indexes(tmp_path: Path) -> None:
    seen = tmp_path / "args"
    command = f"{shlex.quote(sys.executable)} -c 'import sys; print(sys.argv[1:])' >> {shlex.quote(str(seen))} gc cfg"
    run_gc(GcCommands(command, allow_live=True))
    result = run_gc(GcCommands(command, allow_live=True, delete_untagged=True), has_indexes=True)
    lines = seen.read_text().splitlines()
    assert "--delete-untagged" not in lines[0]
    assert any("untagged children" in w for w in result.warnings)


def test_gc_command_on_a_real_registry_measures_freed_bytes(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    # The registry's own small filesystem: free space measured on a shared disk moves with everyone else's writes.
    with SmallDisk(tmp_path / "disk", size_mib=16) as disk:
        registry = registry_factory("measured", storage=disk.path)
        seeded = seed_app(registry.url)
        prune = run_cli("prune", *policy_args(registry.url, seeded.repo), "--json", str(tmp_path / "prune.json"))
        assert prune.code == 0, prune.output
        registry.write_config()
        gc_cmd = shlex.join([registry.binary, "garbage-collect", str(registry.config_path)])
        result = run_cli(
            "gc", "--gc-cmd", gc_cmd, "--allow-live-gc", "--disk", f"path:{registry.storage}",
            "--predicted-from", str(tmp_path / "prune.json"), "--json", str(tmp_path / "gc.json"),
        )  # fmt: skip
        registry.stop()
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "gc.json").read_text())
    predicted = json.loads((tmp_path / "prune.json").read_text())["predicted_reclaim_bytes"]
    assert report["predicted_reclaim_bytes"] == predicted
    assert report["gc"]["blobs_deleted"] == 58  # 29 manifests and their 29 configs
    assert report["gc"]["freed_bytes"] > 0
    assert "predicted" in result.stdout and "undo window" in result.stdout
    assert "--allow-live-gc: garbage collection runs while the registry accepts pushes" in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((), "refusing to garbage-collect a registry that accepts pushes"),
        (("--readonly-cmd", "true"), "--readonly-cmd needs --restart-cmd"),
        (("--stop-cmd", "true"), "--stop-cmd and --start-cmd go together"),
        (("--start-cmd", "true"), "--stop-cmd and --start-cmd go together"),
        (("--readonly-cmd", "true", "--restart-cmd", "true", "--allow-live-gc"), "--allow-live-gc contradicts"),
        (("--readonly-cmd", "true", "--restart-cmd", "true", "--stop-cmd", "true", "--start-cmd", "true"), "not both"),
    ],
)
def test_gc_never_runs_unguarded_by_default(flags: tuple[str, ...], message: str, tmp_path: Path) -> None:
    ran = tmp_path / "gc-ran"
    result = run_cli("gc", "--gc-cmd", f"touch {ran}", *flags, "--json", str(tmp_path / "gc.json"))
    assert result.code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not ran.exists()
    assert json.loads((tmp_path / "gc.json").read_text())["outcome"] == "failed"


def test_gc_failure_exits_12_with_the_command_tail(tmp_path: Path) -> None:
    result = run_cli(
        "gc", "--gc-cmd", "echo 'configuration error: open /etc/x: no such file' >&2; exit 1", "--allow-live-gc"
    )
    assert result.code == 12
    assert "the gc command exited 1: configuration error" in result.stdout


def test_a_drop_in_free_space_is_said_to_be_the_shared_disk_and_lines_are_prefixed_once(tmp_path: Path) -> None:
    """Another writer fills the measured disk while GC runs: no "freed -2.0 MiB", and every
    command line is echoed once as ``gc: $ ...`` (never ``gc: gc: $ ...``); the sweep's line per
    deleted blob (as Debian's docker-registry logs it) stays out of the console."""
    sweep = 'time="2026-01-01T00:00:00Z" level=info msg="Deleting blob: /docker/registry/v2/blobs/sha256/ab/ab"'
    with SmallDisk(tmp_path / "disk", size_mib=8) as disk:
        writer = f"echo {shlex.quote(sweep)}; echo 'summary line'; head -c 2097152 /dev/zero > {disk.path}/other"
        result = run_cli(
            "gc", "--gc-cmd", writer, "--allow-live-gc", "--disk", f"path:{disk.path}",
            "--json", str(tmp_path / "gc.json"),
        )  # fmt: skip
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "gc.json").read_text())
    assert report["gc"]["freed_bytes"] == -2 * 1024 * 1024
    assert "free space fell by 2.0 MiB meanwhile: the disk is shared" in report["message"]
    assert "freed -" not in result.output and "-2.0 MiB" not in result.output
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("gc: $ ")] == [f"gc: $ {writer}"]
    assert not [line for line in lines if line.startswith("gc: gc:")], result.stdout
    assert "gc: summary line" in lines and f"gc: {sweep}" not in lines
