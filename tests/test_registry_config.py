"""``--registry-config``: the registry's own config file, read as the registry reads it.

The parsing is pure (no registry, no S3 server): the filesystem and s3
drivers, the ``REGISTRY_STORAGE_*`` overrides (values are YAML, the shortest
name applies first, ``REGISTRY_STORAGE`` switches the driver), and one
actionable error for each bad file. With the filesystem driver, direct mode
through the config file plans and prunes exactly like ``--storage-root``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline_step.backends.registry_config import load_registry_storage
from pipeline_step.errors import ConfigError
from tests.support.cli import run_cli
from tests.support.fault_seed import write_app
from tests.support.storage_seed import tree

S3_FILE = {
    "version": 0.1,
    "storage": {
        "s3": {
            "bucket": "images",
            "region": "eu-west-1",
            "regionendpoint": "minio.internal:9000",
            "secure": False,
            "rootdirectory": "/registry/",
            "accesskey": "AKIA-CANARY-file",
            "secretkey": "secret-CANARY-file",
        },
        "delete": {"enabled": True},
        "maintenance": {"readonly": {"enabled": True}},
    },
}


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_s3_section_is_read_with_the_registrys_defaults(tmp_path: Path) -> None:
    storage = load_registry_storage(write(tmp_path / "config.yml", S3_FILE), environ={})
    assert storage.driver == "s3" and storage.readonly is True and storage.filesystem_root is None
    s3 = storage.s3
    assert s3 is not None
    assert (s3.bucket, s3.region, s3.endpoint, s3.rootdirectory) == (
        "images",
        "eu-west-1",
        "http://minio.internal:9000",  # secure: false, as the driver builds the URL
        "registry",
    )
    assert s3.v2_prefix == "registry/docker/registry/v2/"
    assert s3.label == "s3://images/registry"
    assert s3.secrets == ("AKIA-CANARY-file", "secret-CANARY-file")
    assert "CANARY" not in repr(s3) and "CANARY" not in repr(storage)


def test_environment_overrides_apply_like_the_registrys(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yml", S3_FILE)
    environ = {
        "REGISTRY_STORAGE_S3_BUCKET": "2024",  # YAML: an int, still a bucket name
        "REGISTRY_STORAGE_S3_REGIONENDPOINT": "https://s3.example",
        "REGISTRY_STORAGE_S3_ACCESSKEY": "AKIA-CANARY-env",
        "REGISTRY_STORAGE_S3_SECRETKEY": "secret-CANARY-env",
        "REGISTRY_STORAGE_MAINTENANCE_READONLY": '{"enabled":false}',
        "REGISTRY_HTTP_ADDR": ":5000",  # not storage: ignored
    }
    s3 = load_registry_storage(config, environ=environ).s3
    assert s3 is not None
    assert (s3.bucket, s3.endpoint, s3.rootdirectory) == ("2024", "https://s3.example", "registry")
    assert s3.secrets == ("AKIA-CANARY-env", "secret-CANARY-env")
    assert load_registry_storage(config, environ=environ).readonly is False


def test_registry_storage_switches_the_driver_and_longer_names_fill_it_in(tmp_path: Path) -> None:
    on_disk = write(tmp_path / "fs.yml", {"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/srv/r"}}})
    assert load_registry_storage(on_disk, environ={}).filesystem_root == Path("/srv/r")
    switched = load_registry_storage(
        on_disk,
        environ={"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_REGION": "r"},
    )
    assert switched.driver == "s3" and switched.s3 is not None and switched.s3.bucket == "b"
    assert switched.s3.endpoint is None  # AWS itself
    # A file without storage, completed from the environment alone (a container's usual set-up).
    bare = write(tmp_path / "bare.yml", {"version": 0.1, "http": {"addr": ":5000"}})
    from_env = load_registry_storage(bare, environ={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"})
    assert from_env.filesystem_root == Path("/data")
    # The filesystem driver's own default.
    default = write(tmp_path / "default.yml", {"version": 0.1, "storage": {"filesystem": None}})
    assert load_registry_storage(default, environ={}).filesystem_root == Path("/var/lib/registry")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"version": 0.1, "http": {}}, "storage: no storage section"),
        ({"storage": {"delete": {"enabled": True}}}, "storage: names no storage driver"),
        ({"storage": {"filesystem": {}, "s3": {}}}, "storage: names several drivers (filesystem, s3)"),
        ({"storage": {"gcs": {"bucket": "b"}}}, "the gcs driver is not supported by the direct backends"),
        ({"storage": {"azure": {"accountname": "a"}}}, "the azure driver is not supported by the direct backends"),
        ({"storage": {"s3": {"region": "r"}}}, "storage.s3.bucket: missing"),
        ({"storage": {"s3": {"bucket": "b", "region": "r", "accesskey": "AKIA-CANARY"}}}, "only one of the two"),
        ({"storage": {"s3": "bucket"}}, "storage.s3: is not a mapping"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_field(tmp_path: Path, document: object, expected: str) -> None:
    config = write(tmp_path / "config.yml", document)
    with pytest.raises(ConfigError) as raised:
        load_registry_storage(config, environ={})
    assert expected in str(raised.value)
    assert raised.value.hint
    assert "CANARY" not in str(raised.value)
    if "not supported" in expected:
        assert "use the API" in str(raised.value)


def test_an_unreadable_or_broken_file_is_one_line(tmp_path: Path) -> None:
    for path, expected in ((tmp_path / "missing.yml", "cannot read it"), (tmp_path / "bad.yml", "not valid YAML")):
        if path.name == "bad.yml":
            path.write_text("storage: [unclosed\n")
        result = run_cli("plan", "--registry-config", str(path), "--repo", "team/app")
        assert result.code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], result.stderr


def test_the_filesystem_driver_through_the_config_file_prunes_like_storage_root(tmp_path: Path) -> None:
    """The same plan and the same resulting tree as --storage-root, with the root from the file, or
    from REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY over a file naming another one."""
    by_root = write_app(tmp_path / "by-root", count=20, keep=5)
    write_app(tmp_path / "by-config", count=20, keep=5)
    config = write(tmp_path / "config.yml", {"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/nope"}}})
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "by-config")}
    reports = {}
    for name, target, extra in (
        ("root", ("--storage-root", str(by_root.storage)), {}),
        ("config", ("--registry-config", str(config)), env),
    ):
        report = tmp_path / f"{name}.json"
        result = run_cli("prune", *target, *by_root.policy, "--audit-dir", str(tmp_path / "audit"),
                         "--json", str(report), env=extra)  # fmt: skip
        assert result.code == 0, result.output
        assert "restart the registry" in result.stdout
        reports[name] = json.loads(report.read_text())
    assert reports["config"]["backend"] == reports["root"]["backend"] == "filesystem"
    assert reports["config"]["deleted"] == reports["root"]["deleted"]
    assert {entry["tag"] for entry in reports["config"]["deleted"] if entry["tag"]} == set(by_root.expected_deleted)
    assert tree(tmp_path / "by-config") == tree(by_root.storage)
    both = run_cli("plan", "--storage-root", str(by_root.storage), "--registry-config", str(config), *by_root.policy)
    assert both.code == 2 and "--storage-root and --registry-config both given" in both.stderr
