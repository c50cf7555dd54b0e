"""Registry replicas on one bucket: docker-registry processes sharing an S3 storage and http.secret,
each with its own in-memory blob cache, started and stopped by pid file (tests.support.registryctl),
so their restart and read-only commands can be handed to ``gc``/``recover`` like a real fleet's.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.registry import free_port, registry_binary
from tests.support.registryctl import start, stop

SHARED_SECRET = "registry-prune-replicas"  # one http.secret: upload sessions survive a hop between replicas


@dataclass
class Replica:
    workdir: Path
    s3: dict[str, Any]  # storage.s3 parameters
    port: int = field(default_factory=free_port)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def config_path(self, *, readonly: bool = False) -> Path:
        return self.workdir / ("config-readonly.yml" if readonly else "config.yml")

    def write_configs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for readonly in (False, True):
            document = {
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {
                    "s3": self.s3,
                    "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"},
                    "redirect": {"disable": True},  # moto's credential checks refuse presigned redirects
                    "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": readonly}},
                },
                "http": {"addr": self.host, "secret": SHARED_SECRET},
            }
            self.config_path(readonly=readonly).write_text(yaml.safe_dump(document))

    def ctl(self, action: str, *, readonly: bool = False) -> str:
        return shlex.join(
            [sys.executable, "-m", "tests.support.registryctl", action, "--config",
             str(self.config_path(readonly=readonly)), "--pidfile", str(self.workdir / "pid"),
             "--log", str(self.workdir / "log")]
        )  # fmt: skip

    def gc_command(self) -> str:
        # Without AWS_CA_BUNDLE, like the registry itself (tests.support.registry.registry_env).
        return shlex.join(["env", "-u", "AWS_CA_BUNDLE", registry_binary(), "garbage-collect", str(self.config_path())])

    def start(self) -> Replica:
        self.write_configs()
        start(self.config_path(), self.workdir / "pid", self.workdir / "log")
        return self

    def stop(self) -> None:
        stop(self.workdir / "pid")
