"""The README's demo leaves nothing behind: no undo log in ~/.local/state, no lock file in the temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.registry  # the demo starts docker-registry itself

ROOT = Path(__file__).resolve().parent.parent


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
