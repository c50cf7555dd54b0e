"""Shared fixtures: real registries on 127.0.0.1, seeded repositories, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support.images import Pushed, Pusher
from tests.support.registry import RegistryServer, free_port, registry_binary

ROOT = Path(__file__).resolve().parent.parent
CALLER_SECRETS = {"REGISTRY_USERNAME", "REGISTRY_PASSWORD", "BUILD_URL", "JOB_NAME", "BUILD_NUMBER"}


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit logs and lock files of every test go to its own temporary directory."""
    monkeypatch.setenv("REGISTRY_PRUNE_AUDIT_DIR", str(tmp_path / "audit"))
    monkeypatch.setenv("REGISTRY_PRUNE_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture(scope="session", autouse=True)
def _registry_binary_present() -> None:
    try:
        registry_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


RegistryFactory = Callable[..., RegistryServer]


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    servers: list[RegistryServer] = []

    def make(name: str = "reg", *, storage: Path | None = None, **options: object) -> RegistryServer:
        server = RegistryServer(workdir=tmp_path / name, storage=storage or tmp_path / name / "storage", **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryServer:
    return registry_factory()


@dataclass
class SeededApp:
    """The acceptance repository: team/app with 40 alphas, two releases, latest, and a list."""

    repo: str
    alphas: dict[int, Pushed]
    releases: dict[str, Pushed]
    multi: Pushed
    children: list[Pushed]


def seed_app(url: str, repo: str = "team/app", count: int = 40) -> SeededApp:
    with Pusher(url) as pusher:
        alphas = {
            n: pusher.image(repo, f"3.3.0-alpha.{n}", created=f"2024-01-{1 + n % 28:02d}T00:00:00Z")
            for n in range(1, count + 1)
        }
        releases = {v: pusher.image(repo, v) for v in ("3.1.0", "3.2.0")}
        pusher.tag(repo, "3.3.0-alpha.5", "latest")
        children = [pusher.image(repo, None, label=f"multi-{arch}", architecture=arch) for arch in ("amd64", "arm64")]
        multi = pusher.index(repo, "multi", children)
    return SeededApp(repo, alphas, releases, multi, children)


@pytest.fixture
def seeded(registry: RegistryServer) -> SeededApp:
    return seed_app(registry.url)


def free_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120) -> CliResult:
    """Run the real CLI (``python -m pipeline_step``) in a subprocess."""
    full_env = {
        k: v for k, v in os.environ.items() if k not in CALLER_SECRETS and not k.startswith(("SLACK_", "JENKINS_"))
    }
    full_env.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline_step", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=timeout,
        cwd=ROOT,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli
