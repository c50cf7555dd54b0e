"""Authentication against real registries: htpasswd basic auth and token auth."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.support.apps import SeededApp, seed_app
from tests.support.cli import run_cli
from tests.support.images import list_tags
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.tokenserver import TokenServer

PASSWORD = "s3cret-CANARY-pass"  # a canary: it must never appear in any output
TokenSetup = tuple[RegistryServer, SeededApp, TokenServer]
POLICY = ("--repo", "team/app", "--match", "alpha", "--keep", "10")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def htpasswd_registry(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[RegistryServer, SeededApp]:
    server = registry_factory("basic")
    seeded = seed_app(server.url)
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"ci:{hashed}\n")
    server.restart(auth={"htpasswd": {"realm": "registry-prune-tests", "path": str(htpasswd)}})
    return server, seeded


def test_basic_auth_prune_with_password_from_env(htpasswd_registry: tuple[RegistryServer, SeededApp]) -> None:
    server, _ = htpasswd_registry
    result = run_cli(
        "prune", "--registry", server.url, "--username", "ci", *POLICY, env={"REGISTRY_PASSWORD": PASSWORD}
    )
    assert result.code == 0, result.output
    assert len(list_tags(server.url, "team/app", headers=basic("ci", PASSWORD))) == 15
    assert PASSWORD not in result.output


def test_basic_auth_password_from_stdin_and_named_variable(htpasswd_registry: tuple[RegistryServer, SeededApp]) -> None:
    server, _ = htpasswd_registry
    via_stdin = run_cli(
        "plan", "--registry", server.url, "--username", "ci", "--password-stdin", *POLICY, stdin=PASSWORD + "\n"
    )
    assert via_stdin.code == 0, via_stdin.output
    via_named = run_cli(
        "plan",
        "--registry",
        server.url,
        "--username",
        "ci",
        "--password-env",
        "MY_REG_PW",
        *POLICY,
        env={"MY_REG_PW": PASSWORD},
    )
    assert via_named.code == 0, via_named.output


def test_basic_auth_wrong_password_is_one_actionable_line(htpasswd_registry: tuple[RegistryServer, SeededApp]) -> None:
    server, _ = htpasswd_registry
    wrong = "wrong-CANARY-password"
    result = run_cli("prune", "--registry", server.url, "--username", "ci", *POLICY, env={"REGISTRY_PASSWORD": wrong})
    assert result.code == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "rejected the password of user 'ci'" in lines[0]
    assert "REGISTRY_PASSWORD" in lines[0]
    assert wrong not in result.output and "Traceback" not in result.output
    assert len(list_tags(server.url, "team/app", headers=basic("ci", PASSWORD))) == 44


def test_basic_auth_missing_login_names_the_fix(htpasswd_registry: tuple[RegistryServer, SeededApp]) -> None:
    server, _ = htpasswd_registry
    result = run_cli("plan", "--registry", server.url, *POLICY)
    assert result.code == 4
    assert "requires a login" in result.stderr and "--username" in result.stderr


def test_password_is_never_a_flag(registry: RegistryServer) -> None:
    result = run_cli("plan", "--registry", registry.url, "--password", "hunter2-CANARY", *POLICY)
    assert result.code == 2
    assert "refusing --password" in result.stderr
    assert "hunter2-CANARY" not in result.output


@pytest.fixture
def token_setup(registry_factory: RegistryFactory, tmp_path: Path) -> Iterator[TokenSetup]:
    server = registry_factory("token")
    seeded = seed_app(server.url)
    tokens = TokenServer(
        tmp_path / "tokens",
        users={"ci": PASSWORD, "reader": PASSWORD},
        grants={"ci": {"pull", "push", "delete"}, "reader": {"pull"}},
    ).start()
    server.restart(auth=tokens.registry_auth())
    yield server, seeded, tokens
    tokens.stop()


def test_token_auth_prune_caches_one_token_per_scope(token_setup: TokenSetup, tmp_path: Path) -> None:
    server, _, tokens = token_setup
    result = run_cli(
        "prune",
        "--registry",
        server.url,
        "--username",
        "ci",
        *POLICY,
        "--json",
        str(tmp_path / "r.json"),
        env={"REGISTRY_PASSWORD": PASSWORD},
    )
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["deleted"] == 29
    scopes = [tuple(r.scopes) for r in tokens.requests]
    assert all(r.user == "ci" for r in tokens.requests)
    assert all(r.service == "registry-prune-tests" for r in tokens.requests)
    # One fetch per scope, not one per request: /v2/ (no scope), pull, delete.
    assert sorted(scopes) == sorted([(), ("repository:team/app:pull",), ("repository:team/app:delete",)])
    assert report["requests"] > 60  # dozens of registry requests were served by three tokens
    token = tokens.sign("ci", [{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    left = list_tags(server.url, "team/app", headers={"Authorization": f"Bearer {token}"})
    assert len(left) == 15
    assert PASSWORD not in result.output


def test_token_refreshed_when_the_registry_refuses_an_expired_one(token_setup: TokenSetup) -> None:
    server, _, tokens = token_setup
    tokens.expire_first_per_scope = True
    result = run_cli("plan", "--registry", server.url, "--username", "ci", *POLICY, env={"REGISTRY_PASSWORD": PASSWORD})
    assert result.code == 0, result.output
    assert "29 tags to delete" in result.stdout
    # Each scope's refused token was replaced by a fresh one, once.
    pull = ("repository:team/app:pull",)
    assert [tuple(r.scopes) for r in tokens.requests] == [(), (), pull, pull]


def test_token_without_delete_permission_fails_cleanly(token_setup: TokenSetup) -> None:
    server, _, tokens = token_setup
    result = run_cli(
        "prune", "--registry", server.url, "--username", "reader", *POLICY, env={"REGISTRY_PASSWORD": PASSWORD}
    )
    assert result.code == 4, result.output
    assert "repository:team/app:delete" in result.stderr
    token = tokens.sign("ci", [{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    assert len(list_tags(server.url, "team/app", headers={"Authorization": f"Bearer {token}"})) == 44


def test_token_service_rejects_wrong_password(token_setup: TokenSetup) -> None:
    server, _, _ = token_setup
    result = run_cli(
        "plan", "--registry", server.url, "--username", "ci", *POLICY, env={"REGISTRY_PASSWORD": "nope-CANARY"}
    )
    assert result.code == 4
    assert "refused user 'ci'" in result.stderr
    assert "nope-CANARY" not in result.output
