"""The S3 scenario: the direct S3 backend against the API of a registry on the same S3 server.

    ./scripts/bench.sh --scenario s3          (about 15 minutes on 2 cores)
    .venv/bin/python -m benchmarks.s3 [--quick] [--json FILE]

Two identical buckets are seeded on a local S3 server (moto, 127.0.0.1, with
credential checks): one repository of 300 tags and 20 repositories of 50 tags,
one image per tag. One bucket is served by Debian's docker-registry and planned
and pruned (keep 10) through its API; the other is planned and pruned directly
(``--registry-config``). Requests to S3 are counted from the S3 server's own
access log, so the registry's requests and ours are counted alike. Peak RSS is
the CLI process's own VmHWM. The plans change nothing, so they run
``--repeat`` times each, alternating API and direct, and the median counts;
each prune runs once (it empties its bucket). Speed targets: direct prune
>= 30x and direct plan >= 3x faster than through the API; peak RSS <= 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.support.registry import RegistryServer
from tests.support.s3 import S3Server
from tests.support.storage_seed import StorageWriter

ROOT = Path(__file__).resolve().parent.parent
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|HEAD|DELETE) [^"]* HTTP/1\.[01]')
KEEP = 10


@dataclass
class Figure:
    action: str
    mode: str
    wall: float
    s3_requests: int
    tags: int
    peak_rss_mb: float | None
    exit_code: int

    @property
    def per_tag(self) -> float:
        return self.s3_requests / self.tags if self.tags else 0.0


def seed(root: Path, big: int, small_repos: int, small: int) -> int:
    writer = StorageWriter(root)
    for n in range(1, big + 1):
        writer.image("bench/big", f"1.0.0-alpha.{n}", label=f"big-{n}")
    for r in range(1, small_repos + 1):
        for n in range(1, small + 1):
            writer.image(f"bench/small-{r:02d}", f"1.0.0-alpha.{n}", label=f"small-{r}-{n}")
    return big + small_repos * small


def requests_logged(s3: S3Server) -> int:
    return len(REQUEST_LINE.findall(s3.log_text()))


def run(s3: S3Server, work: Path, action: str, mode: str, target: list[str], *, tags: int) -> Figure:
    rss = work / f"{action}-{mode}.rss"
    before = requests_logged(s3)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.peak", str(rss), "--", action, "--no-progress", *target,
         "--repo", "bench/**", "--match", "alpha", "--keep", str(KEEP), "--json", str(work / f"{action}-{mode}.json")],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "REGISTRY_PRUNE_AUDIT_DIR": str(work / "audit"), "REGISTRY_PRUNE_LOCK_DIR": str(work)},
    )  # fmt: skip
    wall = time.monotonic() - started
    time.sleep(0.5)  # the server's access log line is written after its answer
    peak = int(rss.read_text()) / 1024 if rss.exists() else None
    figure = Figure(action, mode, wall, requests_logged(s3) - before, tags, peak, completed.returncode)
    print(f"  {action:<6} {mode:<22} {wall:8.2f}s  {figure.s3_requests:7d} S3 requests ({figure.per_tag:5.2f}/tag)  "
          f"peak {peak or 0:5.1f} MB  exit {completed.returncode}", flush=True)  # fmt: skip
    if completed.returncode != 0:
        print(completed.stdout[-2000:], completed.stderr[-2000:], file=sys.stderr)
    return figure


def median(runs: list[Figure]) -> Figure:
    """The run with the median wall time (its own request count and peak RSS)."""
    middle = statistics.median_low(f.wall for f in runs)
    return next(f for f in runs if f.wall == middle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.s3")
    parser.add_argument("--quick", action="store_true", help="30 + 2 x 10 tags: a smoke run of the harness")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each plan (the median counts)")
    args = parser.parse_args(argv)
    big, repos, small = (30, 2, 10) if args.quick else (300, 20, 50)
    os.environ.pop("AWS_CA_BUNDLE", None)  # the registry panics with it (tests.support.registry)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as temp:
        work = Path(temp)
        s3 = S3Server(work / "s3").start()
        registry: RegistryServer | None = None
        try:
            started = time.monotonic()
            tags = seed(work / "seed", big, repos, small)
            for bucket in ("via-api", "direct"):
                s3.create_bucket(bucket)
                s3.upload_tree(work / "seed", bucket)
            print(f"seeded two buckets of {tags} tags in {time.monotonic() - started:.0f}s", flush=True)
            registry = RegistryServer(workdir=work / "registry", storage=work / "unused",
                                      s3=s3.registry_parameters("via-api")).start()  # fmt: skip
            config = s3.write_registry_config(work / "registry-config.yml", "direct")
            api = ["--registry", registry.url]
            direct = ["--registry-config", str(config)]
            plans: dict[str, list[Figure]] = {"api": [], "direct s3": []}
            for _ in range(max(1, args.repeat)):
                plans["api"].append(run(s3, work, "plan", "api", api, tags=tags))
                plans["direct s3"].append(run(s3, work, "plan", "direct s3", direct, tags=tags))
            figures = [
                median(plans["api"]),
                median(plans["direct s3"]),
                run(s3, work, "prune", "direct s3", direct, tags=tags),
                run(s3, work, "prune", "api", api, tags=tags),
            ]
        finally:
            if registry is not None:
                registry.stop()
            s3.stop()
    by = {(f.action, f.mode): f for f in figures}
    prune_ratio = by["prune", "api"].wall / by["prune", "direct s3"].wall
    plan_ratio = by["plan", "api"].wall / by["plan", "direct s3"].wall
    peak = max(f.peak_rss_mb or 0 for f in figures)
    checks = [
        (f"direct S3 prune >= 30x faster than the API prune: {prune_ratio:.1f}x", prune_ratio >= 30),
        (f"direct S3 plan >= 3x faster than the API plan: {plan_ratio:.1f}x", plan_ratio >= 3),
        (f"peak RSS <= 100 MB: {peak:.0f} MB", peak <= 100),
        ("every run exited 0", all(f.exit_code == 0 for f in figures)),
    ]
    load = os.getloadavg()[0]
    machine = f"{os.cpu_count()} cores, load average {load:.1f} at the end; plans: median of {max(1, args.repeat)}"
    print(f"\ns3 scenario: 1 x {big} tags + {repos} x {small} tags, one image each, keep {KEEP}; moto on 127.0.0.1; "
          f"{machine}")  # fmt: skip
    print(f"{'action':<6}  {'mode':<10}  {'wall s':>8}  {'S3 req':>7}  {'req/tag':>7}  {'peak RSS MB':>11}")
    for f in figures:
        print(f"{f.action:<6}  {f.mode:<10}  {f.wall:8.2f}  {f.s3_requests:7d}  {f.per_tag:7.2f}  "
              f"{f.peak_rss_mb or 0:11.0f}")  # fmt: skip
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(f), "per_tag": f.per_tag} for f in figures], indent=2))
    return 0 if all(ok for _, ok in checks) or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
