"""The registry on S3: the API path tested for real, and the direct S3 backend proven against it.

Every test starts its own S3 server (moto, with credential checks) and, where
it needs one, Debian's docker-registry on that bucket. Buckets are seeded with
the core's acceptance repository (tests/support/fault_seed.py write_app: 40
alphas, ``latest`` sharing a digest, a manifest list with untagged children).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.images import list_tags, resolve
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.registry_state import RegistryState
from tests.support.s3 import S3Server

V2 = "docker/registry/v2/"


def seeded_bucket(
    s3: S3Server, tmp_path: Path, bucket: str, *, count: int = 40, root: str = "", first: int = 1
) -> SeededStorage:
    seed = write_app(tmp_path / f"seed-{bucket}", count=count, keep=10, first=first)
    s3.create_bucket(bucket)
    s3.upload_tree(seed.storage, bucket, root)
    return seed


def on_s3(factory: RegistryFactory, s3: S3Server, name: str, bucket: str, **options: object) -> RegistryServer:
    return factory(name, s3=s3.registry_parameters(bucket), **options)


def snapshot(url: str, repo: str) -> dict[str, str | None]:
    return {tag: resolve(url, repo, tag) for tag in list_tags(url, repo)}


# Alphas numbered from 10: no tag name is then a prefix of another, so 3.1.1 on S3 lists every tag
# (distribution #4891 hides 3.3.0-alpha.10 while 3.3.0-alpha.1 exists) and the API sees what the bucket holds.
UNPREFIXED = 10


def test_api_and_direct_prunes_of_identical_buckets_leave_the_same_keys(
    s3_server: S3Server, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """The acceptance scenario: the same surviving set as on the filesystem, through the API and directly,
    and the two buckets end with identical key sets (and bytes); no blob is touched by either."""
    seed = seeded_bucket(s3_server, tmp_path, "via-api", first=UNPREFIXED)
    seeded_bucket(s3_server, tmp_path, "direct", first=UNPREFIXED)
    before = s3_server.objects("direct")

    api = on_s3(registry_factory, s3_server, "api", "via-api")
    via_api = run_cli("prune", "--registry", api.url, *seed.policy, "--json", str(tmp_path / "api.json"))
    assert via_api.code == 0, via_api.output
    config = s3_server.write_registry_config(tmp_path / "direct" / "config.yml", "direct")
    direct = run_cli("prune", "--registry-config", str(config), *seed.policy, "--json", str(tmp_path / "d.json"))
    assert direct.code == 0, direct.output
    assert "restart the registry" in direct.stdout

    api_report = json.loads((tmp_path / "api.json").read_text())
    direct_report = json.loads((tmp_path / "d.json").read_text())
    assert direct_report["deleted"] == api_report["deleted"]
    assert direct_report["summary"] == api_report["summary"]
    assert direct_report["backend"] == "s3"
    assert direct_report["registry"] == "s3://direct"
    assert direct_report["requests"] > 0  # to S3, counted

    after_api, after_direct = s3_server.objects("via-api"), s3_server.objects("direct")
    assert set(after_api) == set(after_direct)
    assert after_api == after_direct
    blobs = {key: body for key, body in before.items() if key.startswith(V2 + "blobs/")}
    assert {key: body for key, body in after_direct.items() if key.startswith(V2 + "blobs/")} == blobs

    # Served from either bucket, exactly the planned survivors remain (the filesystem's end state).
    served = on_s3(registry_factory, s3_server, "result", "direct")
    assert snapshot(served.url, seed.repo) == seed.expected_kept
    assert snapshot(api.url, seed.repo) == seed.expected_kept
    for digest in (seed.shared_child.digest, seed.multi_only_child.digest):
        assert resolve(served.url, seed.repo, digest) == digest
    assert resolve(served.url, seed.repo, seed.own_child.digest) is None


def test_plan_usage_and_restore_on_s3_through_the_api_and_directly(
    s3_server: S3Server, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """plan and usage agree through the API and directly; restore undoes a direct prune byte for byte:
    the manifests served, and every key of the bucket with its bytes."""
    seed = seeded_bucket(s3_server, tmp_path, "bucket", first=UNPREFIXED)
    registry = on_s3(registry_factory, s3_server, "reg", "bucket")
    config = s3_server.write_registry_config(tmp_path / "config.yml", "bucket")
    plans = {}
    for mode, target in (("api", ("--registry", registry.url)), ("s3", ("--registry-config", str(config)))):
        result = run_cli("plan", *target, *seed.policy, "--json", str(tmp_path / f"plan-{mode}.json"))
        assert result.code == 0, result.output
        plans[mode] = json.loads((tmp_path / f"plan-{mode}.json").read_text())
        usage = run_cli("usage", *target, *seed.policy, "--json", str(tmp_path / f"usage-{mode}.json"))
        assert usage.code == 0, usage.output
    assert plans["api"]["deleted"] == plans["s3"]["deleted"]
    assert plans["api"]["kept"] == plans["s3"]["kept"]
    usage_api = json.loads((tmp_path / "usage-api.json").read_text())
    usage_s3 = json.loads((tmp_path / "usage-s3.json").read_text())
    assert usage_s3["exact"] is True
    assert usage_s3["tags"] == usage_api["tags"]
    assert usage_s3["reclaimable_bytes"] == usage_api["reclaimable_bytes"]

    with RegistryState(registry.url) as state:
        manifests = {tag: state.manifest(seed.repo, tag) for tag in state.tags(seed.repo)}
    objects_before = s3_server.objects("bucket")
    pruned = run_cli("prune", "--registry-config", str(config), "--registry", registry.url, *seed.policy)
    assert pruned.code == 0, pruned.output
    assert snapshot(registry.url, seed.repo) == seed.expected_kept
    (audit,) = (tmp_path / "audit").glob("*.jsonl")
    restored = run_cli("restore", "--from", str(audit))
    assert restored.code == 0, restored.output
    with RegistryState(registry.url) as state:
        assert {tag: state.manifest(seed.repo, tag) for tag in state.tags(seed.repo)} == manifests
    assert s3_server.objects("bucket") == objects_before  # every key back, byte for byte


def test_the_registry_config_is_honoured_with_its_environment_overrides(s3_server: S3Server, tmp_path: Path) -> None:
    """REGISTRY_STORAGE_S3_BUCKET and _ROOTDIRECTORY override the file, as they do for the registry."""
    seed = seeded_bucket(s3_server, tmp_path, "real", root="registry")
    config = s3_server.write_registry_config(tmp_path / "config.yml", "not-this-one")
    env = {"REGISTRY_STORAGE_S3_BUCKET": "real", "REGISTRY_STORAGE_S3_ROOTDIRECTORY": "/registry"}
    planned = run_cli(
        "plan", "--registry-config", str(config), *seed.policy, "--json", str(tmp_path / "p.json"), env=env
    )
    assert planned.code == 0, planned.output
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["registry"] == "s3://real/registry"
    assert {entry["tag"] for entry in report["deleted"] if entry["tag"]} == set(seed.expected_deleted)
    # The keys may come from the AWS chain instead of the file.
    bare = tmp_path / "bare.yml"
    document = (
        config.read_text()
        .replace(f"accesskey: {s3_server.access_key}", "")
        .replace(f"secretkey: {s3_server.secret_key}", "")
    )
    bare.write_text(document)
    chain = {**env, "AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    assert run_cli("plan", "--registry-config", str(bare), *seed.policy, env=chain).code == 0


@pytest.mark.parametrize(
    ("case", "code", "expected"),
    [
        ("wrong-bucket", 2, "bucket 'no-such-bucket' does not exist"),
        ("wrong-key", 4, "refused the S3 credentials (InvalidAccessKeyId)"),
        ("wrong-secret", 4, "refused the S3 credentials (SignatureDoesNotMatch)"),
        ("unreachable", 4, "cannot reach the S3 endpoint http://127.0.0.1:9"),
        ("no-storage", 2, "storage: no storage section"),
        ("gcs", 2, "the gcs driver is not supported by the direct backends"),
        ("azure", 2, "the azure driver is not supported by the direct backends"),
        ("no-region", 2, "storage.s3.region: missing"),
        ("wrong-root", 2, "holds no repositories"),
    ],
)
def test_bad_s3_input_is_one_actionable_line_and_deletes_nothing(
    s3_server: S3Server, tmp_path: Path, case: str, code: int, expected: str
) -> None:
    seed = seeded_bucket(s3_server, tmp_path, "bucket")
    before = s3_server.objects("bucket")
    config = s3_server.write_registry_config(tmp_path / "config.yml", "bucket")
    text = config.read_text()
    replacements = {
        "wrong-bucket": ("bucket: bucket", "bucket: no-such-bucket"),
        "wrong-key": (s3_server.access_key, "AKIAWRONGWRONGWRONG1"),
        "wrong-secret": (s3_server.secret_key, "wrong-secret-CANARY-4d1e"),
        "unreachable": (s3_server.url, "http://127.0.0.1:9"),
        "no-storage": (text, "version: 0.1\nhttp: {addr: 127.0.0.1:5000}\n"),
        "gcs": (text, "version: 0.1\nstorage:\n  gcs: {bucket: b}\n"),
        "azure": (text, "version: 0.1\nstorage:\n  azure: {accountname: a, container: c}\n"),
        "no-region": ("region: us-east-1", ""),
        "wrong-root": ("secure: false", "secure: false\n    rootdirectory: /elsewhere"),
    }
    old, new = replacements[case]
    config.write_text(text.replace(old, new))
    result = run_cli("prune", "--registry-config", str(config), *seed.policy, "--json", str(tmp_path / "r.json"))
    assert result.code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    for secret in (s3_server.secret_key, "wrong-secret-CANARY-4d1e"):
        assert secret not in result.output
        assert secret not in (tmp_path / "r.json").read_text()
    assert s3_server.objects("bucket") == before
    if case in ("gcs", "azure"):
        assert "use the API" in lines[0]


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)  # polling for the other process


def wait_for_text(path: Path, text: str, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None, (process.communicate(), path.read_text())
        assert time.monotonic() < deadline, f"{text!r} did not appear in {path}"
        time.sleep(0.05)  # polling for the other process


def snapshot_keys(s3: S3Server, bucket: str) -> set[str]:
    return set(s3.objects(bucket, V2))


def test_prunes_on_two_hosts_are_serialized_by_the_s3_lease(s3_server: S3Server, tmp_path: Path) -> None:
    """Different lock directories (two agents): the flock cannot see the other run, the lease does.
    --no-wait fails fast with exit 6 naming the holder; without it the run waits, then converges; a
    SIGKILLed holder's lease is taken over once it expires."""
    seed = seeded_bucket(s3_server, tmp_path, "shared", count=16)
    config = s3_server.write_registry_config(tmp_path / "config.yml", "shared")
    args = ["prune", "--no-progress", "--registry-config", str(config), *seed.policy]
    gate = tmp_path / "gate"

    def host(name: str, **extra: str) -> dict[str, str]:
        return cli_env({"REGISTRY_PRUNE_LOCK_DIR": str(tmp_path / name / "locks"), "REGISTRY_PRUNE_LEASE_TTL": "4",
                        "REGISTRY_PRUNE_AUDIT_DIR": str(tmp_path / name / "audit"), **extra})  # fmt: skip

    first = subprocess.Popen(
        [sys.executable, "-m", "tests.support.pause", str(gate), "--", *args],
        cwd=ROOT, env=host("host-a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    processes = [first]
    try:
        wait_for(gate.with_name("gate.ready"), first)
        busy = run_cli(*args, "--no-wait", "--json", str(tmp_path / "busy.json"), env=host("host-b"))
        assert busy.code == 6, busy.output
        assert "holds the lease s3://shared/registry-prune/lease.json" in busy.stderr
        assert json.loads((tmp_path / "busy.json").read_text())["outcome"] == "locked"
        waiter_err = tmp_path / "waiter.err"
        with waiter_err.open("w") as err_file:
            waiting = subprocess.Popen(
                [sys.executable, "-m", "pipeline_step", *args], cwd=ROOT, env=host("host-b"),
                stdout=subprocess.PIPE, stderr=err_file, text=True,
            )  # fmt: skip
        processes.append(waiting)
        wait_for_text(waiter_err, "(lease s3://shared/registry-prune/lease.json)", waiting)  # queued on the lease
        assert waiting.poll() is None  # and still waiting: the holder has not moved
        gate.write_text("go")
        assert first.wait(timeout=120) == 0, first.communicate()
        out, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, out + waiter_err.read_text()
        assert "deleted 0 tags" in out  # the first run did it all; the second found nothing left
        after_first = snapshot_keys(s3_server, "shared")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    # A holder killed while holding the lease: it stops renewing, and the lease is taken over after 4 s.
    gate.unlink()
    gate.with_name("gate.ready").unlink()
    s3_server.upload_tree(seed.storage, "shared")  # everything back, so the next run has deletions to make
    killed = subprocess.Popen(
        [sys.executable, "-m", "tests.support.pause", str(gate), "--", *args],
        cwd=ROOT, env=host("host-c"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(gate.with_name("gate.ready"), killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    after = run_cli(*args, env=host("host-d"))
    assert after.code == 0, after.output
    assert "took over the expired S3 lease" in after.stderr
    assert snapshot_keys(s3_server, "shared") == after_first
