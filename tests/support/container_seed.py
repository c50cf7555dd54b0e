"""The seed's deployment under podman: the registry:2 stand-in in a container, on a small disk,
filled with `docker push` until the docker CLI reports the registry's 500.

Used by tests/test_container_seed.py and by ``./scripts/demo.sh --container``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.containers import DockerApi, Images
from tests.support.images import resolve
from tests.support.registry import free_port
from tests.support.scenario import SmallDisk

REPO = "team/app"
LAYER = 4 * 1024 * 1024
CONFIG = "/etc/docker/registry/config.yml"


@dataclass
class Seed:
    api: DockerApi
    images: Images
    name: str  # the registry container, as in `docker run --name registry`
    host: str
    disk: SmallDisk
    failed_tag: str = ""
    failed_log: str = ""
    protected: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def image(self, tag: str) -> str:
        return f"{self.host}/{REPO}:{tag}"

    def run_registry(self, *extra: str, name: str | None = None) -> str:
        """`docker run -d` of the registry image on the storage, on host networking."""
        return shlex.join(
            ["docker", "run", "-d", *extra, "--name", name or self.name, "--network", "host",
             "-v", f"{self.disk.path}:/var/lib/registry", "-e", f"REGISTRY_HTTP_ADDR={self.host}",
             "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true"]
        )  # fmt: skip

    def readonly_recipe(self) -> tuple[str, ...]:
        """The README's read-only recipe (pulls keep working), with the seed's docker exec GC."""
        readonly = self.run_registry(
            "--rm", "-e", 'REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}', name=f"{self.name}-ro"
        )
        return (
            "--readonly-cmd", f"docker stop {self.name} && {readonly} {self.images.registry}",
            "--gc-cmd", f"docker exec {self.name}-ro bin/registry garbage-collect {CONFIG}",
            "--restart-cmd", f"docker stop {self.name}-ro; docker restart {self.name}",
        )  # fmt: skip

    def stopped_recipe(self) -> tuple[str, ...]:
        gc = f"docker run --rm -v {self.disk.path}:/var/lib/registry {self.images.registry} garbage-collect {CONFIG}"
        return ("--stop-cmd", f"docker stop {self.name}", "--gc-cmd", gc, "--start-cmd", f"docker start {self.name}")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval, not a wait for readiness
        logs = self.api.docker("logs", self.name, check=False)
        raise AssertionError(f"the registry container did not answer: {logs.stdout}{logs.stderr}")

    def build_image(self, tag: str, size: int, work: Path) -> None:
        """A one-layer image of ``size`` random bytes, made with `docker import` (nothing can be pulled)."""
        layer = work / "layer"
        layer.mkdir(parents=True, exist_ok=True)
        (layer / "data").write_bytes(os.urandom(size))
        subprocess.run(["tar", "-C", str(layer), "-cf", str(work / "layer.tar"), "."], check=True)
        self.api.docker("import", str(work / "layer.tar"), self.image(tag))

    def push(self, tag: str) -> subprocess.CompletedProcess[str]:
        return self.api.docker("push", self.image(tag), check=False)

    def running(self, name: str) -> bool:
        done = self.api.docker("inspect", "--format", "{{.State.Running}}", name, check=False)
        return done.returncode == 0 and done.stdout.strip() == "true"


@contextlib.contextmanager
def container_seed(
    images: Images, workdir: Path, *, on_push: Callable[[str, bool], None] = lambda tag, ok: None
) -> Iterator[Seed]:
    """The registry container on a full 64 MiB disk, and the failed `docker push` output."""
    host = f"127.0.0.1:{free_port()}"
    name = f"registry-{uuid.uuid4().hex[:8]}"
    with DockerApi(workdir / "api", insecure=(host,)) as api, SmallDisk(workdir / "storage", 64) as disk:
        seed = Seed(api, images, name, host, disk)
        try:
            subprocess.run(f"{seed.run_registry()} {images.registry}", shell=True, env=api.env, check=True,
                           capture_output=True)  # fmt: skip
            seed.wait_ready()
            for release in ("3.1.0", "3.2.0"):
                seed.build_image(release, 64 * 1024, workdir / "build")
                assert seed.push(release).returncode == 0
                seed.protected[release] = resolve(seed.url, REPO, release) or ""
            for n in range(1, 40):
                tag = f"3.3.0-alpha.{n}"
                seed.build_image(tag, LAYER, workdir / "build")
                pushed = seed.push(tag)
                on_push(tag, pushed.returncode == 0)
                if pushed.returncode != 0:
                    seed.failed_tag, seed.failed_log = (
                        tag,
                        f"+ docker push {seed.image(tag)}\n{pushed.stdout}{pushed.stderr}",
                    )
                    break
            assert seed.failed_tag, "the registry's disk never filled up"
            yield seed
        finally:
            api.docker("rm", "-f", name, f"{name}-ro", check=False)
            listed = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
            mine = [image for image in listed if image.startswith(f"{host}/")]
            if mine:
                api.docker("rmi", "-f", *mine, check=False)
