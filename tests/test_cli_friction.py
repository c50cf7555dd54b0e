"""What a newcomer tripped over (issue 15): verbosity flags after the command, and a hung registry
that left the tool silent for a minute."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.cli import run_cli
from tests.support.registry import free_port


@contextlib.contextmanager
def hung_registry() -> Iterator[str]:
    """Accepts every connection and never answers: a registry stuck on a full disk or a dead NFS mount."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def retry_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "retrying in" in line]


def test_the_first_retry_on_a_hung_registry_is_shown_at_the_default_level() -> None:
    with hung_registry() as url:
        result = run_cli("plan", "--registry", url, "--repo", "team/app", "--timeout", "0.3", "--no-progress")
    assert result.code == 4, result.output
    shown = retry_lines(result.stderr)
    # Once, as a warning, naming the request and the timeout; the later retries stay at INFO.
    assert len(shown) == 1, result.stderr
    assert shown[0].startswith("registry-prune: WARNING: GET /v2/ failed (")
    assert "no answer within 0.3s" in shown[0] and "(attempt 2 of 4)" in shown[0]


def test_quick_retries_stay_quiet_at_the_default_level() -> None:
    # A refused connection retries within a second or two: no warning, only the final error.
    result = run_cli("plan", "--registry", f"http://127.0.0.1:{free_port()}", "--repo", "team/app", "--no-progress")
    assert result.code == 4, result.output
    assert retry_lines(result.stderr) == []
    assert "cannot connect to the registry" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_and_quiet_work_before_and_after_the_command(where: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    command = ("plan", "--registry", url, "--repo", "team/app", "--no-progress")

    def run(flag: str) -> str:
        args = (flag, *command) if where == "before" else (*command, flag)
        result = run_cli(*args)
        assert result.code == 4, result.output
        return result.stderr

    verbose = run("-v")
    assert len(retry_lines(verbose)) == 3 and "registry-prune: INFO: GET /v2/ failed" in verbose
    with hung_registry() as hung:
        quiet_args = ("plan", "--registry", hung, "--repo", "team/app", "--timeout", "0.3", "--no-progress")
        quiet = run_cli(*(("-q", *quiet_args) if where == "before" else (*quiet_args, "-q")))
    assert quiet.code == 4 and retry_lines(quiet.stderr) == [], quiet.stderr
    assert quiet.stderr.strip().startswith("registry-prune: error: "), quiet.stderr
