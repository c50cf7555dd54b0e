"""The newcomer's first commands: setup says what it does, one line per step; the README's demo
leaves nothing behind (no undo log in ~/.local/state, no lock file in the temp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.registry  # the demo starts docker-registry itself
def test_the_demo_recovers_and_leaves_no_undo_log_or_lock_file_behind(tmp_path: Path) -> None:
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_PRUNE_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(temp))
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outcome recovered" in done.stdout
    assert [p for p in home.rglob("*") if p.is_file()] == []
    assert sorted(p.name for p in temp.iterdir()) == []


def test_setup_prints_one_line_per_step_and_where_the_tool_is(tmp_path: Path) -> None:
    # apt-get and service stand-ins: the test must not install packages or stop the machine's services.
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    for name in ("apt-get", "service"):
        (fake / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["./scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert done.stdout == "" and lines and all(line.startswith("setup: ") for line in lines), done.stderr
    assert lines[-1] == "setup: done; the tool is .venv/bin/registry-prune"
    assert (ROOT / ".venv" / "bin" / "registry-prune").exists()
