"""Fixtures: real registries on 127.0.0.1 and seeded repositories. Helpers live in tests/support/.

A test that starts a registry is marked ``registry`` automatically (through the
fixtures it uses), so ``pytest -m "not registry"`` runs the pure tests on a
machine without Debian's docker-registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support.apps import SeededApp, seed_app
from tests.support.cli import CliResult, run_cli
from tests.support.registry import LINES, RegistryFactory, RegistryServer, registry_binary
from tests.support.s3 import S3Server, moto_binary

REGISTRY_FIXTURES = frozenset({"registry_factory", "registry_line", "s3_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REGISTRY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit logs and lock files of every test go to its own temporary directory."""
    monkeypatch.setenv("REGISTRY_PRUNE_AUDIT_DIR", str(tmp_path / "audit"))
    monkeypatch.setenv("REGISTRY_PRUNE_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture(params=LINES, ids=[f"registry-{line}" for line in LINES])
def registry_line(request: pytest.FixtureRequest) -> str:
    """The registry line a test runs against: each real-registry test runs once per line."""
    line: str = request.param
    return line


@pytest.fixture
def registry_factory(tmp_path: Path, registry_line: str) -> Iterator[RegistryFactory]:
    """Starts registries of the test's line (each with its own config and storage); fails, saying how
    to install it, without the binary."""
    try:
        registry_binary(registry_line)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    servers: list[RegistryServer] = []

    def make(name: str = "reg", *, storage: Path | None = None, **options: object) -> RegistryServer:
        options.setdefault("line", registry_line)
        server = RegistryServer(workdir=tmp_path / name, storage=storage or tmp_path / name / "storage", **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryServer:
    return registry_factory()


@pytest.fixture
def seeded(registry: RegistryServer) -> SeededApp:
    return seed_app(registry.url)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A local S3 server (moto) that checks credentials; fails, saying how to install, without one."""
    try:
        moto_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    server = S3Server(tmp_path / "s3").start()
    yield server
    server.stop()
