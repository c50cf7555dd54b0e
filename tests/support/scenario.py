"""The disk-full incident, reproduced: a registry on a small filesystem that fills up.

Used by the end-to-end recovery test and by the README's demo. Everything runs
on 127.0.0.1; the filesystem is a tmpfs (or, where tmpfs cannot be mounted, a
loop-mounted ext4 image) that is unmounted again at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, make_layer, sha256
from tests.support.registry import free_port, registry_binary
from tests.support.registryctl import start, stop

ROOT = Path(__file__).resolve().parents[2]


class SmallDisk:
    """A filesystem of ``size_mib`` mounted at ``path``: tmpfs, else a loop-mounted ext4 image."""

    def __init__(self, path: Path, size_mib: int = 64) -> None:
        self.path = path
        self.size_mib = size_mib
        self.kind = ""
        self._image: Path | None = None

    def __enter__(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        tmpfs = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if tmpfs.returncode == 0:
            self.kind = "tmpfs"
            return self
        self._image = self.path.with_suffix(".img")
        subprocess.run(["truncate", "-s", f"{self.size_mib}M", str(self._image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self._image)], check=True)
        loop = subprocess.run(
            ["mount", "-o", "loop", str(self._image), str(self.path)], capture_output=True, text=True, check=False
        )
        if loop.returncode != 0:
            raise RuntimeError(
                f"cannot mount a small filesystem at {self.path} (tmpfs: {tmpfs.stderr.strip()}; "
                f"loop: {loop.stderr.strip()}); run as root, or in a container with CAP_SYS_ADMIN"
            )
        self.kind = "ext4 on a loop device"
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
        if self._image is not None:
            self._image.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize


class OciLayout:
    """Source images for skopeo, in an OCI layout directory on the agent's own disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
        self.blobs: dict[str, dict[str, bytes]] = {}  # tag -> digest -> bytes
        self.layers: dict[str, list[tuple[bytes, str]]] = {}  # tag -> (blob, diff_id)

    def _blob(self, data: bytes) -> str:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    def add(self, tag: str, layer_bytes: int, *, reuse_layers_of: str | None = None) -> None:
        """An image with the shared base layer and one layer of its own (or another tag's layers)."""
        base = make_layer("base", 4096, seed=b"shared-base-layer")
        own = make_layer(f"build-{tag}", layer_bytes)
        layers = [base, own] if reuse_layers_of is None else self.layers[reuse_layers_of]
        self.layers[tag] = layers
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2024-01-01T00:00:00Z",
                "config": {"Labels": {"build": tag}},
                "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            }
        ).encode()
        blobs = {self._blob(config): config}
        descriptors = []
        for data, _ in layers:
            blobs[self._blob(data)] = data
            descriptors.append({"mediaType": OCI_LAYER, "digest": sha256(data), "size": len(data)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
                "layers": descriptors,
            }
        ).encode()
        blobs[self._blob(manifest)] = manifest
        self.blobs[tag] = blobs
        self.index["manifests"].append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
        (self.path / "index.json").write_text(json.dumps(self.index))

    def push_command(self, tag: str, registry_host: str, repository: str) -> str:
        return shlex.join(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{self.path}:{tag}",
                f"docker://{registry_host}/{repository}:{tag}",
            ]
        )


@dataclass
class DiskFullRegistry:
    """A docker-registry (delete enabled) whose storage is a small filesystem."""

    workdir: Path
    size_mib: int = 64
    line: str = "2.8"  # which registry: tests.support.registry.LINES
    port: int = field(default_factory=free_port)
    disk: SmallDisk | None = None

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def config(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "registry.pid"

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def readonly_config(self) -> Path:
        return self.workdir / "config-readonly.yml"

    def ctl(self, action: str, *, readonly: bool = False) -> str:
        """The shell command that starts/stops/restarts this registry (for --restart-cmd, --stop-cmd...);
        with ``readonly`` it (re)starts in storage.maintenance.readonly mode (for --readonly-cmd)."""
        config = self.readonly_config if readonly else self.config
        return shlex.join(
            [
                sys.executable,
                "-m",
                "tests.support.registryctl",
                action,
                "--config",
                str(config),
                "--pidfile",
                str(self.pidfile),
                "--log",
                str(self.log),
                "--line",
                self.line,
            ]
        )

    def gc_command(self) -> str:
        return shlex.join([registry_binary(self.line), "garbage-collect", str(self.config)])

    def __enter__(self) -> DiskFullRegistry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.disk = SmallDisk(self.storage, self.size_mib).__enter__()
        for path, readonly in ((self.config, False), (self.readonly_config, True)):
            maintenance = {"uploadpurging": {"enabled": False}, "readonly": {"enabled": readonly}}
            document = {
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {
                    "filesystem": {"rootdirectory": str(self.storage)},
                    "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"},
                    "maintenance": maintenance,
                },
                "http": {"addr": self.host, "secret": "registry-prune-scenario"},
            }
            path.write_text(yaml.safe_dump(document))
        start(self.config, self.pidfile, self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.pidfile)
        if self.disk is not None:
            self.disk.__exit__()


def fill_until_500(
    registry: DiskFullRegistry,
    layout: OciLayout,
    repository: str,
    layer_bytes: int,
    *,
    on_push: Callable[[str, bool], None] = lambda tag, ok: None,
) -> tuple[str, str]:
    """Push ``3.3.0-alpha.N`` builds until one fails with the registry's 500; returns (tag, skopeo's output).

    When the disk fills in the middle of a layer upload, the registry may drop the
    connection instead of answering; the next try of the same push then meets a
    full disk from its first request, which the registry answers with a 500."""
    for n in range(1, 1000):
        tag = f"3.3.0-alpha.{n}"
        layout.add(tag, layer_bytes)
        for _ in range(3):
            push = subprocess.run(
                layout.push_command(tag, registry.host, repository),
                shell=True,
                capture_output=True,
                text=True,
                check=False,
            )
            output = (push.stdout + push.stderr).strip()
            if push.returncode == 0 or "500 Internal Server Error" in output:
                break
        on_push(tag, push.returncode == 0)
        if push.returncode != 0:
            return tag, output
    raise AssertionError("the registry never filled up")


def pull_blobs(url_host: str, repository: str, tag: str) -> dict[str, bytes]:
    """``skopeo copy`` the image back into a dir: layout and return its blobs by digest."""
    with tempfile.TemporaryDirectory(prefix="pulled-") as target:
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                f"docker://{url_host}/{repository}:{tag}",
                f"dir:{target}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        blobs: dict[str, bytes] = {}
        for path in Path(target).iterdir():
            if path.name not in ("version",):
                data = path.read_bytes()
                blobs[sha256(data)] = data
        return blobs
