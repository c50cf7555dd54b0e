"""A local S3 server for tests: moto's server mode on 127.0.0.1, with real credential checks.

The server starts with IAM authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``):
the first three requests create a user, its access key and a policy, and every
request after that must be signed with that key, so a wrong key is refused as
AWS would refuse it. Readiness is polled, never slept for. Without moto the
test fails and says how to install it.

Buckets are seeded by writing a distribution layout with
``tests.support.storage_seed`` into a directory and uploading every file under
the bucket's ``<rootdirectory>/``: the same bytes as on the filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import yaml
from botocore.config import Config

from tests.support.registry import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

INSTALL_HINT = "install it with: .venv/bin/pip install 'moto[server]' (./scripts/setup.sh installs the test extra)"
REGION = "us-east-1"


def moto_binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
    if found:
        return found
    raise RuntimeError(f"moto_server (the local S3 server) is not installed; {INSTALL_HINT}")


@dataclass
class S3Server:
    """One moto server. ``access_key``/``secret_key`` are the only credentials it accepts."""

    workdir: Path
    port: int = 0
    access_key: str = ""
    secret_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    _clients: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> S3Server:
        binary = moto_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = (self.workdir / f"moto-{self.port}.log").open("wb")
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/moto-api/", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server not ready after {timeout}s: {self.log_text()[-2000:]}")
            time.sleep(0.05)  # polling interval, not a wait for readiness
        iam = boto3.client(
            "iam", endpoint_url=self.url, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        iam.create_user(UserName="registry")
        key = iam.create_access_key(UserName="registry")["AccessKey"]
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="registry", PolicyName="all", PolicyDocument=json.dumps(everything))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        return self

    def create_user(self, name: str, actions: list[str]) -> tuple[str, str]:
        """Another IAM user allowed only ``actions`` (e.g. ``s3:GetObject``): its access and secret key."""
        iam = boto3.client("iam", endpoint_url=self.url, region_name=REGION, aws_access_key_id=self.access_key,
                           aws_secret_access_key=self.secret_key)  # fmt: skip
        self._clients.append(iam)
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(policy))
        return key["AccessKeyId"], key["SecretAccessKey"]

    def log_text(self) -> str:
        path = self.workdir / f"moto-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> S3Client:
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(max_pool_connections=16, s3={"addressing_style": "path"}),
        )
        self._clients.append(client)
        return client

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def registry_parameters(self, bucket: str, rootdirectory: str = "") -> dict[str, Any]:
        """``storage.s3`` for a registry (and for ``--registry-config``) on ``bucket``."""
        parameters: dict[str, Any] = {
            "bucket": bucket,
            "region": REGION,
            "regionendpoint": self.url,
            "secure": False,
            "v4auth": True,
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
        }
        if rootdirectory:
            parameters["rootdirectory"] = f"/{rootdirectory}"
        return parameters

    def write_registry_config(self, path: Path, bucket: str, rootdirectory: str = "", **storage: Any) -> Path:
        """A registry config file for ``bucket`` (what ``--registry-config`` reads)."""
        document = {
            "version": 0.1,
            "storage": {"s3": self.registry_parameters(bucket, rootdirectory), "delete": {"enabled": True}, **storage},
            "http": {"addr": "127.0.0.1:5000", "secret": "registry-prune-tests"},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        return path

    def upload_tree(self, root: Path, bucket: str, rootdirectory: str = "") -> int:
        """Upload every file under ``root`` (a filesystem storage) as ``<rootdirectory>/<path>``."""
        client = self.client()
        files = [path for path in sorted(root.rglob("*")) if path.is_file()]
        prefix = f"{rootdirectory}/" if rootdirectory else ""

        def put(path: Path) -> None:
            client.put_object(Bucket=bucket, Key=prefix + str(path.relative_to(root)), Body=path.read_bytes())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))
        return len(files)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every key under ``prefix`` with its bytes, for comparing two buckets."""
        client = self.client()
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", ())
        ]

        def get(key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        with ThreadPoolExecutor(8) as pool:
            return dict(zip(keys, pool.map(get, keys), strict=True))

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
