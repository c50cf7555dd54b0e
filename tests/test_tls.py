"""A registry serving a self-signed certificate (``http.tls``): --ca-bundle, --insecure, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.certs import KeyPair, self_signed
from tests.support.cli import run_cli
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.registry_state import RegistryState

TLSApp = tuple[RegistryServer, SeededStorage, KeyPair]


@pytest.fixture
def tls_app(registry_factory: RegistryFactory, tmp_path: Path) -> TLSApp:
    seed = write_app(tmp_path / "seeded", count=14, keep=10)
    pair = self_signed(tmp_path / "certs", "registry")
    tls = {"certificate": str(pair.cert_path), "key": str(pair.key_path)}
    return registry_factory("tls", storage=seed.storage, tls=tls), seed, pair


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("registry-prune: error: ") and "Traceback" not in stderr
    return lines[0]


def assert_untouched(server: RegistryServer, seed: SeededStorage) -> None:
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.tags


@pytest.mark.parametrize("transport", ["lean", "httpx"])
def test_ca_bundle_verifies_the_self_signed_registry(tls_app: TLSApp, transport: str) -> None:
    server, seed, pair = tls_app
    assert server.url.startswith("https://")
    if transport == "httpx":
        plan = run_cli("plan", "--registry", server.url, *seed.policy, "--ca-bundle", str(pair.cert_path))
        assert plan.code == 0, plan.output
        assert f"{len(seed.expected_deleted)} tags to delete" in plan.stdout
        return
    result = run_cli(
        "prune", "--registry", server.url, *seed.policy, "--ca-bundle", str(pair.cert_path), "--transport", transport
    )
    assert result.code == 0, result.output
    assert "warning" not in result.stderr
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.expected_kept


def test_ca_bundle_from_the_config_file(tls_app: TLSApp, tmp_path: Path) -> None:
    server, seed, pair = tls_app
    config = tmp_path / "prune.yml"
    config.write_text(f"registry: {{url: '{server.url}', ca_bundle: '{pair.cert_path}'}}\n")
    result = run_cli("plan", "--config", str(config), *seed.policy)
    assert result.code == 0, result.output
    missing = tmp_path / "no-such-ca.pem"
    config.write_text(f"registry: {{url: '{server.url}', ca_bundle: '{missing}'}}\n")
    bad = run_cli("plan", "--config", str(config), *seed.policy)
    assert bad.code == 2
    assert f"registry.ca_bundle: CA bundle '{missing}' is not a readable file" in one_error_line(bad.stderr)


@pytest.mark.parametrize("command", ["plan", "prune"])
def test_without_the_bundle_it_fails_naming_the_fix(tls_app: TLSApp, command: str) -> None:
    server, seed, _ = tls_app
    result = run_cli(command, "--registry", server.url, *seed.policy)
    assert result.code == 4, result.output
    line = one_error_line(result.stderr)
    assert f"cannot verify the TLS certificate of {server.url}" in line
    assert "--ca-bundle FILE" in line
    assert_untouched(server, seed)


def test_a_bundle_that_did_not_sign_the_certificate_is_named(tls_app: TLSApp, tmp_path: Path) -> None:
    server, seed, _ = tls_app
    stranger = self_signed(tmp_path / "other", "stranger")
    result = run_cli("prune", "--registry", server.url, *seed.policy, "--ca-bundle", str(stranger.cert_path))
    assert result.code == 4, result.output
    line = one_error_line(result.stderr)
    assert f"cannot verify the TLS certificate of {server.url}" in line
    assert str(stranger.cert_path) in line  # the operator learns which bundle failed, not just "pass one"
    assert_untouched(server, seed)


def test_insecure_works_and_warns(tls_app: TLSApp) -> None:
    server, seed, _ = tls_app
    result = run_cli("prune", "--registry", server.url, *seed.policy, "--insecure")
    assert result.code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == ["registry-prune: warning: --insecure: the registry's TLS certificate is not verified"]
    with RegistryState(server.url) as registry:
        assert registry.snapshot(seed.repo) == seed.expected_kept


def test_the_wrong_scheme_names_the_right_one(tls_app: TLSApp, registry: RegistryServer) -> None:
    tls_server, seed, _ = tls_app
    tls_hostport = tls_server.url.removeprefix("https://")
    as_http = run_cli("plan", "--registry", f"http://{tls_hostport}", *seed.policy)
    assert as_http.code == 4, as_http.output
    assert f"https://{tls_hostport}" in one_error_line(as_http.stderr)

    plain_hostport = registry.url.removeprefix("http://")
    for transport in ("lean", "httpx"):
        as_https = run_cli("plan", "--registry", f"https://{plain_hostport}", *seed.policy, "--transport", transport)
        assert as_https.code == 4, as_https.output
        line = one_error_line(as_https.stderr)
        assert "does not speak TLS" in line and f"http://{plain_hostport}" in line
        assert "--ca-bundle" not in line  # a CA bundle would not help
