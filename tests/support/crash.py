"""The crash-anywhere matrix: SIGKILL a prune at drawn kill points, then check what it left.

For every kill point, on a fresh copy of one seeded storage:

1. the killed run (``tests.support.killpoint``) dies by SIGKILL;
2. no kept or protected tag is lost, and only planned tags are gone;
3. every manifest that is gone has its undo record, and the audit log reads
   in full (a torn last line is skipped, never an error);
4. for every ``restore_every``-th point, ``restore`` brings back every tag;
5. the lock is free again: a rerun with ``--no-wait`` is not refused (S3: the killed run's lease
   is taken over once it expires);
6. that rerun converges to exactly the planned end state.

tests/test_crash.py runs 50 points per backend; benchmarks/crash_matrix.py runs more.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_step.backends.filesystem.layout import StorageLayout
from pipeline_step.backends.registry_config import load_registry_storage
from pipeline_step.backends.s3.bucket import Bucket
from pipeline_step.backends.s3.layout import S3Layout
from pipeline_step.execution.audit import read_audit
from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.fault_seed import SeededStorage, write_app
from tests.support.images import list_tags, resolve
from tests.support.registry import RegistryServer
from tests.support.registry_state import RegistryState
from tests.support.s3 import S3Server

KINDS = {
    "api": ("request-before", "request-after", "intent"),
    "filesystem": ("fileop", "intent"),
    "s3": ("batch-before", "batch-after", "intent"),  # around each DeleteObjects: mid-batch kills
}
POINTS = 50  # per backend in CI; benchmarks/crash_matrix.py draws more
S3_POINTS = POINTS  # each S3 point seeds a bucket over HTTP (about 6 s a point)
SEED = 20261201


@dataclass(frozen=True, order=True)
class KillPoint:
    kind: str
    at: int

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.at}"


def draw(counts: dict[str, int], kinds: tuple[str, ...], n: int, seed: int) -> list[KillPoint]:
    """``n`` distinct kill points, the same ones for the same seed."""
    rng = random.Random(seed)
    pool = [KillPoint(kind, at) for kind in kinds for at in range(1, counts[kind.split("-")[0]] + 1)]
    if len(pool) <= n:
        return sorted(pool)
    return sorted(rng.sample(pool, n))


@dataclass
class CrashMatrix:
    backend: str  # api | filesystem | s3
    workdir: Path
    line: str = "2.8"  # the registry line (tests.support.registry.LINES)
    count: int = 20
    keep: int = 5
    restore_every: int = 10
    seed: SeededStorage = field(init=False)
    kept: dict[str, str] = field(init=False, default_factory=dict)  # tag -> digest, as planned
    planned: set[str] = field(init=False, default_factory=set)  # manifest digests the plan deletes
    doomed: set[str] = field(init=False, default_factory=set)  # tags the plan deletes

    def __post_init__(self) -> None:
        self.template = self.workdir / "template"
        self.seed = write_app(self.template, count=self.count, keep=self.keep)
        self.s3: S3Server | None = S3Server(self.workdir / "s3").start() if self.backend == "s3" else None

    def close(self) -> None:
        if self.s3 is not None:
            self.s3.stop()

    def bucket(self, name: str) -> str:
        return f"crash-{name}"

    def config(self, name: str) -> Path:
        return self.workdir / name / "registry-config.yml"

    # -- set-up ------------------------------------------------------------------

    def fresh(self, name: str) -> tuple[Path, RegistryServer]:
        storage = self.workdir / name / "storage"
        if self.s3 is not None:
            bucket = self.s3.create_bucket(self.bucket(name))
            self.s3.upload_tree(self.template, bucket)
            self.s3.write_registry_config(self.config(name), bucket)
            server = RegistryServer(
                workdir=self.workdir / name, storage=storage, s3=self.s3.registry_parameters(bucket)
            )
            return storage, server
        shutil.copytree(self.template, storage, symlinks=True)
        server = RegistryServer(workdir=self.workdir / name, storage=storage, line=self.line)
        return storage, server

    def args(self, storage: Path, server: RegistryServer, name: str) -> list[str]:
        target = {
            "api": ["--registry", server.url],
            "filesystem": ["--storage-root", str(storage)],
            "s3": ["--registry-config", str(self.config(name))],
        }[self.backend]
        return [*target, *self.seed.policy, "--audit-dir", str(self.workdir / name / "audit")]

    def env(self, name: str) -> dict[str, str]:
        # A killed run's S3 lease stays until it expires (no kernel releases it): keep that short here.
        return cli_env({"REGISTRY_PRUNE_LOCK_DIR": str(self.workdir / name / "locks"), "REGISTRY_PRUNE_LEASE_TTL": "2"})

    def tags(self, storage: Path, server: RegistryServer) -> dict[str, str | None]:
        """Every listed tag and what it resolves to (None: listed, but resolves to nothing)."""
        if self.backend == "api":
            return {tag: resolve(server.url, self.seed.repo, tag) for tag in list_tags(server.url, self.seed.repo)}
        if self.backend == "s3":
            location = load_registry_storage(self.config(storage.parent.name)).s3
            assert location is not None
            bucket = Bucket(location)
            try:
                reader = S3Layout(bucket, location)
                return {tag: reader.read_tag_link(self.seed.repo, tag) for tag in reader.tags(self.seed.repo)}
            finally:
                bucket.close()
        layout = StorageLayout.open(storage)
        return {tag: layout.tag_digest(self.seed.repo, tag) for tag in layout.tags(self.seed.repo)}

    def prepare(self) -> dict[str, int]:
        """Learn the plan and count the events of a whole run; returns the counts."""
        storage, server = self.fresh("plan")
        server.start()
        try:
            plan = run_cli(
                "prune", "--dry-run", *self.args(storage, server, "plan"), "--json", str(self.workdir / "plan.json")
            )
            assert plan.code == 0, plan.output
            document = json.loads((self.workdir / "plan.json").read_text())
            self.kept = {entry["tag"]: entry["digest"] for entry in document["kept"]}
            self.planned = {entry["digest"] for entry in document["deleted"]}
            self.doomed = {entry["tag"] for entry in document["deleted"] if entry["tag"]}
            counts_file = self.workdir / "counts.json"
            counted = self.killed(storage, server, "plan", f"count:{counts_file}")
            assert counted == 0, f"the counting run failed with {counted}"
            counts: dict[str, int] = json.loads(counts_file.read_text())
            assert set(self.tags(storage, server)) == set(self.kept), "the counting run did not converge"
            return counts
        finally:
            server.stop()

    def killed(self, storage: Path, server: RegistryServer, name: str, spec: str) -> int:
        command = [sys.executable, "-m", "tests.support.killpoint", spec, "--", "prune", "--no-progress"]
        completed = subprocess.run(
            [*command, *self.args(storage, server, name)],
            capture_output=True, text=True, cwd=ROOT, env=self.env(name), timeout=120,
        )  # fmt: skip
        return completed.returncode

    # -- one kill point ----------------------------------------------------------------

    def check(self, point: KillPoint, number: int) -> None:
        name = f"point-{number}"
        storage, server = self.fresh(name)
        if self.backend == "api":
            server.start()  # direct mode needs the registry only to restore
        try:
            before = self.tags(storage, server)
            code = self.killed(storage, server, name, point.spec)
            assert code == -9, f"{point.spec}: the run was not killed (exit {code})"
            after = self.tags(storage, server)
            where = f"{self.backend} {point.spec}"
            # No kept or protected tag is lost, and nothing outside the plan is touched.
            for tag, digest in self.kept.items():
                assert after.get(tag) == digest, f"{where}: kept tag {tag} lost or moved ({after.get(tag)})"
            ghosts = {tag for tag, digest in after.items() if digest is None}
            if self.backend in ("filesystem", "s3"):
                # Our own removals are ordered so that no kill leaves a listed tag without its link.
                assert not ghosts, f"{where}: listed tags resolve to nothing: {sorted(ghosts)}"
            else:
                # The registry's DELETE drops the manifest before its tags; a client killed meanwhile
                # leaves tags that resolve to nothing. Only planned ones; the rerun must repair them.
                assert ghosts <= self.doomed, f"{where}: unplanned tags resolve to nothing: {sorted(ghosts)}"
            gone = {before[tag] for tag in set(before) - set(after)} - {None}
            assert gone <= self.planned, f"{where}: an unplanned manifest is gone"
            # Every deletion that happened is in the undo log, which reads in full.
            logs = sorted((self.workdir / name / "audit").glob("*.jsonl"))
            intents = {deletion.digest for log in logs for deletion in read_audit(log)}
            assert gone <= intents, f"{where}: {sorted(gone - intents)} deleted without an undo record"
            if gone and number % self.restore_every == 0:
                self.restore(logs, server, before, where)
            # The lock is free again, and a rerun converges to exactly the planned state.
            # The flock is free at once; a killed holder's S3 lease once expired (then it is taken over).
            wait = ["--lock-timeout", "30"] if self.backend == "s3" else ["--no-wait"]
            rerun = run_cli("prune", *wait, *self.args(storage, server, name), env=self.env(name))
            assert rerun.code == 0, f"{where}: the rerun failed: {rerun.output}"
            final = self.tags(storage, server)
            assert final == self.kept, f"{where}: the rerun did not converge: {sorted(set(final) ^ set(self.kept))}"
            if self.backend == "api":
                # Manifests too: on 3.x a kill between untagging and the manifest's DELETE leaves it untagged,
                # and the rerun finishes it from the undo log.
                with RegistryState(server.url) as registry:
                    left = registry.present(self.seed.repo, self.planned - set(self.kept.values()))
                assert not left, f"{where}: planned manifests left after the rerun: {sorted(left)}"
        finally:
            server.stop()
            shutil.rmtree(self.workdir / name, ignore_errors=True)

    def restore(self, logs: list[Path], server: RegistryServer, before: dict[str, str | None], where: str) -> None:
        if self.backend != "api":
            server.start()
        for log in logs:
            restored = run_cli("restore", "--from", str(log), "--registry", server.url)
            assert restored.code == 0, f"{where}: restore failed: {restored.output}"
        now = {tag: resolve(server.url, self.seed.repo, tag) for tag in list_tags(server.url, self.seed.repo)}
        assert now == before, f"{where}: restore did not bring back {sorted(set(before) - set(now))}"
