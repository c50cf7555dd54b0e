"""Start a real registry on 127.0.0.1 for tests: Debian's docker-registry (distribution 2.8.2), or
distribution 3.x built from the Go module proxy (tests/support/tools.py).

Each server gets its own config file and storage directory. Readiness is
polled, never slept for. If the binary is missing, the test fails and says how
to install it. ``LINES`` are the registry lines every real-registry suite runs on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml

from tests.support.tools import tool

BINARY_NAMES = ("docker-registry", "registry")
LINES = ("2.8", "3.1")  # every real-registry suite runs on both (the registry_factory fixture's parameter)
INSTALL_HINT = "install it with: sudo apt-get install -y docker-registry (Debian/Ubuntu), or run ./scripts/test.sh"


BINARY_ENV = "REGISTRY_PRUNE_TEST_REGISTRY"  # a registry binary to use instead of the one on PATH


def registry_binary(line: str = "2.8") -> str:
    """The binary of one registry line: 2.8 is Debian's docker-registry; 3.1 and 3.0 are built by gotools.sh."""
    if line != "2.8":
        return tool(f"registry-{line}")
    chosen = os.environ.get(BINARY_ENV)
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise RuntimeError(f"${BINARY_ENV} names {chosen}, which is not an executable; {INSTALL_HINT}")
        return chosen
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"the docker-registry binary is not on PATH; {INSTALL_HINT}")


def free_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RegistryFactory = Callable[..., "RegistryServer"]


def registry_env() -> dict[str, str]:
    """The registry's environment. Without AWS_CA_BUNDLE: with it set, 2.8's s3 driver panics at start
    ("LoadCustomCABundleError: ... HTTPClient's transport unsupported type")."""
    env = {key: value for key, value in os.environ.items() if key != "AWS_CA_BUNDLE"}
    env["OTEL_TRACES_EXPORTER"] = "none"
    return env


@dataclass
class RegistryServer:
    """One docker-registry process. ``config`` is the YAML document it runs with."""

    workdir: Path
    storage: Path
    delete_enabled: bool = True
    auth: dict[str, Any] | None = None
    tls: dict[str, str] | None = None
    readonly: bool = False
    extra_storage: dict[str, Any] = field(default_factory=dict)
    line: str = "2.8"  # which registry: LINES
    s3: dict[str, Any] | None = None  # storage.s3 parameters: the registry stores in a bucket instead
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def config(self) -> dict[str, Any]:
        s3 = self.s3
        if s3 is not None and self.line != "2.8":
            # 3.x's s3 driver addresses buckets by host name (bucket.127.0.0.1) unless told otherwise.
            s3 = {**s3, "forcepathstyle": True}
        driver = {"s3": s3} if s3 is not None else {"filesystem": {"rootdirectory": str(self.storage)}}
        storage: dict[str, Any] = {
            **driver,
            "delete": {"enabled": self.delete_enabled},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {
                "uploadpurging": {"enabled": False},
                "readonly": {"enabled": self.readonly},
            },
        }
        if self.s3 is not None:
            # Blobs through the registry, not a presigned S3 redirect: moto's credential checks refuse those.
            storage["redirect"] = {"disable": True}
        storage.update(self.extra_storage)
        http: dict[str, Any] = {"addr": f"127.0.0.1:{self.port}", "secret": "registry-prune-tests"}
        if self.tls:
            http["tls"] = self.tls
        document: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": storage,
            "http": http,
        }
        if self.auth:
            document["auth"] = self.auth
        return document

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()))
        return self.config_path

    @property
    def binary(self) -> str:
        return registry_binary(self.line)

    def start(self, timeout: float = 15.0, *, same_port: bool = False) -> RegistryServer:
        binary = self.binary
        last_error = ""
        for _ in range(3):  # a freshly picked port can be taken in between; pick again
            if not (same_port and self.port):
                self.port = free_port()
            self.write_config()
            self.log_path = self.workdir / f"registry-{self.port}.log"
            log = self.log_path.open("wb")
            self.process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=registry_env(),
            )
            log.close()
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop()
        raise RuntimeError(f"registry {self.line} did not start: {last_error}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        with httpx.Client(verify=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(self.log_text()[-2000:])
                try:
                    response = client.get(f"{self.url}/v2/")
                    if response.status_code in (200, 401):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.02)  # polling interval, not a wait for readiness
        raise RuntimeError(f"not ready after {timeout}s: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, *, same_port: bool = False, **changes: Any) -> RegistryServer:
        """Stop, apply attribute ``changes`` (e.g. delete_enabled=False), start (on a new port unless
        ``same_port``: then the registry's URL, which audit logs and locks name, stays the same)."""
        self.stop()
        for key, value in changes.items():
            setattr(self, key, value)
        return self.start(same_port=same_port)

    def garbage_collect(self, *extra: str) -> subprocess.CompletedProcess[str]:
        self.write_config()
        return subprocess.run(
            [self.binary, "garbage-collect", *extra, str(self.config_path)],
            capture_output=True,
            text=True,
            check=True,
            env=registry_env(),
        )
