"""registry-prune against the raw API floor, through the API and directly on the storage.

    .venv/bin/python -m benchmarks.run                      # every scenario (about 15 minutes on 2 cores)
    .venv/bin/python -m benchmarks.run --quick              # tiny sizes, seconds: the harness still works
    .venv/bin/python -m benchmarks.run --scenario prune-1990of2000 --repeat-large 3

Each scenario's storage is seeded once by writing distribution's layout
(benchmarks/seed.py); a prune runs on a fresh copy each time. Every API run
gets a freshly started Debian docker-registry on 127.0.0.1 (cold in-memory
cache, warm page cache). The raw floor (benchmarks/floor.py) is measured in
the same run, interleaved with ours, and every wall time is shown as a ratio
to it. Each measured run is a fresh process (benchmarks/worker.py) that calls
registry-prune's CLI entry point, so its CPU time and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.seed import SeedSpec, seed, tag_name
from tests.support.registry import LINES, RegistryServer, registry_binary

ROOT = Path(__file__).resolve().parent.parent
MATCH = r"-alpha\."
KEEP = 10
POLICY = [f"--match={MATCH}", "--keep", str(KEEP)]
FLOOR, API, HTTPX, DIRECT = "raw floor (httpx loop)", "api", "api, httpx transport", "direct (--storage-root)"
API8 = "api, --concurrency 8"  # is the default of 4 right?
LIB_API, LIB_DIRECT = "api, library build_plan", "direct, library build_plan"
SMALL_MODES = (FLOOR, API, DIRECT)
# At 100,000 tags the API is measured through the library entry point only (the CLI adds its report and
# table, which the direct CLI row shows): a second 100,000-request run would push the total past 15 minutes.
LARGE_MODES = (FLOOR, LIB_API, LIB_DIRECT, DIRECT)


@dataclass(frozen=True)
class Scenario:
    name: str
    action: str
    full: SeedSpec
    quick: SeedSpec
    modes: tuple[str, ...] = SMALL_MODES
    prune: bool = False
    large: bool = False  # runs --repeat-large times instead of --repeat
    default: bool = True  # part of a run without --scenario


SCENARIOS = (
    Scenario("plan-1x2000", "plan", SeedSpec(1, 2000), SeedSpec(1, 40), (FLOOR, API, HTTPX, API8, DIRECT)),
    Scenario("plan-50x200", "plan", SeedSpec(50, 200), SeedSpec(3, 15)),
    Scenario(
        "prune-1990of2000",
        "prune all but 10 of",
        SeedSpec(1, 2000),
        SeedSpec(1, 40),
        (FLOOR, API, API8, DIRECT),
        True,
        True,
    ),
    Scenario("plan-100k", "plan", SeedSpec(1, 100_000, 1000), SeedSpec(1, 200, 20), LARGE_MODES, large=True),
    Scenario(
        "plan-100k-unique", "plan", SeedSpec(1, 100_000), SeedSpec(1, 200), LARGE_MODES, large=True, default=False
    ),
)


def title(scenario: Scenario, spec: SeedSpec) -> str:
    return f"{scenario.action} {spec.describe()}"


@dataclass
class Measured:
    scenario: Scenario
    title: str
    mode: str
    tags: int
    repositories: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)

    @property
    def cpu_per_request_ms(self) -> float | None:
        per = [run["cpu"] / run["requests"] * 1000 for run in self.runs if run["requests"]]
        return statistics.median(per) if per else None


def _fs_type(path: Path) -> str:
    best, kind = "", "?"
    target = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) > 2 and target.startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def _default_workdir() -> Path:
    """tmpfs when it has room: seeding 100,000 tags on a VM disk takes longer than the whole benchmark."""
    shm = Path("/dev/shm")
    # The 100k scenarios need about 1.5 million inodes as well as the bytes.
    if shm.is_dir() and shutil.disk_usage(shm).free > 6 * 1024**3 and os.statvfs(shm).f_favail > 2_000_000:
        return shm
    return Path(tempfile.gettempdir())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = args.workdir or _default_workdir()
        self.workdir = Path(tempfile.mkdtemp(prefix="registry-prune-bench-", dir=base))
        # Audit log and lock on the ordinary temp dir (a disk, like ~/.local/state): the audit
        # fsync before every deletion is part of the cost.
        self.statedir = Path(tempfile.mkdtemp(prefix="registry-prune-bench-state-", dir=args.state_dir))
        self.seeds: dict[str, Path] = {}
        self.seed_seconds: dict[str, float] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            REGISTRY_PRUNE_AUDIT_DIR=str(self.statedir / "audit"),
            REGISTRY_PRUNE_LOCK_DIR=str(self.statedir / "locks"),
        )

    def close(self) -> None:
        if not self.args.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.statedir, ignore_errors=True)

    def spec(self, scenario: Scenario) -> SeedSpec:
        return scenario.quick if self.args.quick else scenario.full

    def seeded(self, spec: SeedSpec) -> Path:
        if spec.key not in self.seeds:
            path = self.workdir / f"seed-{spec.key}"
            started = time.perf_counter()
            seed(path, spec)
            self.seed_seconds[spec.key] = time.perf_counter() - started
            self.seeds[spec.key] = path
            print(f"seeded {spec.key} ({spec.repositories * spec.tags} tags) in {self.seed_seconds[spec.key]:.1f}s")
        return self.seeds[spec.key]

    def run_scenario(self, scenario: Scenario) -> list[Measured]:
        spec = self.spec(scenario)
        source = self.seeded(spec)
        repeat = 1 if self.args.quick else (self.args.repeat_large if scenario.large else self.args.repeat)
        results = {
            mode: Measured(scenario, title(scenario, spec), mode, spec.repositories * spec.tags, spec.repositories)
            for mode in scenario.modes
        }
        for round_number in range(repeat):
            modes = list(scenario.modes)
            offset = round_number % len(modes)  # rotate the order: load drifts, every mode sees the same drift
            for mode in modes[offset:] + modes[:offset]:
                run = self.measure(scenario, spec, source, mode)
                results[mode].runs.append(run)
                print(
                    f"  {scenario.name:<17} {mode:<24} {run['wall']:8.2f}s  cpu {run['cpu']:7.2f}s  "
                    f"requests {run['requests']:>7}  rss {run['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        return list(results.values())

    def measure(self, scenario: Scenario, spec: SeedSpec, source: Path, mode: str) -> dict[str, Any]:
        storage = source
        if scenario.prune:
            storage = self.workdir / "run"
            shutil.rmtree(storage, ignore_errors=True)
            subprocess.run(["cp", "-a", str(source), str(storage)], check=True)
        server = None
        try:
            if mode not in (DIRECT, LIB_DIRECT):
                server = RegistryServer(workdir=self.workdir / "registry", storage=storage, line=self.args.line).start()
            job = self.job(scenario, spec, storage, mode, server.url if server else "")
            completed = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", json.dumps(job)],
                capture_output=True,
                text=True,
                env=self.env,
                cwd=ROOT,
                check=False,
            )
            if completed.returncode != 0:
                raise SystemExit(f"{scenario.name}/{mode} failed:\n{completed.stdout}\n{completed.stderr}")
            run: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        finally:
            if server is not None:
                server.stop()
            if scenario.prune:
                shutil.rmtree(storage, ignore_errors=True)
        expected = spec.repositories * (spec.tags - KEEP) if scenario.prune else 0
        if run["deleted"] != expected:
            raise SystemExit(f"{scenario.name}/{mode} deleted {run['deleted']}, expected {expected}")
        return run

    def job(self, scenario: Scenario, spec: SeedSpec, storage: Path, mode: str, url: str) -> dict[str, Any]:
        concurrency = self.args.concurrency
        repository = "bench/*" if spec.repositories > 1 else spec.names()[0]
        if mode == FLOOR:
            keep = [tag_name(i) for i in range(spec.tags - KEEP, spec.tags)] if scenario.prune else None
            return {"kind": "floor", "url": url, "repositories": spec.names(), "keep": keep, "concurrency": concurrency}
        if mode in (LIB_API, LIB_DIRECT):
            where = {"url": url} if mode == LIB_API else {"storage": str(storage)}
            policy = {"match": MATCH, "keep": KEEP, "repositories": [repository], "concurrency": concurrency}
            return {"kind": "library", **where, **policy}
        command = "prune" if scenario.prune else "plan"
        target = ["--storage-root", str(storage)] if mode == DIRECT else ["--registry", url]
        transport = ["--transport", "httpx" if mode == HTTPX else "lean"] if mode != DIRECT else []
        # API8 keeps the floor at --concurrency: is registry-prune faster with more workers?
        report = str(self.workdir / "report.json")
        workers = 8 if mode == API8 else concurrency
        argv = [command, *target, *transport, "--repo", repository, *POLICY, "--concurrency", str(workers)]
        return {"kind": "cli", "argv": [*argv, "--no-progress", "--json", report]}


def _registry_version(line: str) -> str:
    binary = registry_binary(line)
    completed = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return completed.stdout.strip() or "unknown"


def print_table(results: list[Measured], bench: Bench, started: float, loads: tuple[str, str]) -> list[str]:
    print()
    intro = [
        f"registry-prune benchmark: {os.cpu_count()} cores, {_registry_version(bench.args.line)} on 127.0.0.1,",
        f"storage on {_fs_type(bench.workdir)}, audit log on {_fs_type(bench.statedir)}, "
        f"concurrency {bench.args.concurrency}, Python {sys.version.split()[0]}, load average {loads[0]} -> {loads[1]}",
    ]
    header = ("scenario", "mode", "runs", "wall s", "x floor", "req/tag", "CPU ms/req", "CPU s", "peak RSS MB")
    rows = [header]
    floors = {m.scenario.name: m.median("wall") for m in results if m.mode == FLOOR}
    for m in results:
        wall = m.median("wall")
        per_request = m.cpu_per_request_ms
        rows.append(
            (
                m.title,
                m.mode,
                str(len(m.runs)),
                f"{wall:.2f}",
                f"{wall / floors[m.scenario.name]:.3f}" if m.scenario.name in floors else "-",
                f"{m.runs[-1]['requests'] / m.tags:.2f}",
                f"{per_request:.3f}" if per_request is not None else "-",
                f"{m.median('cpu'):.2f}",
                f"{max(run['peak_rss_mb'] for run in m.runs):.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = intro
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells.extend(cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:]))
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    seeds = ", ".join(f"{key} in {seconds:.0f}s" for key, seconds in bench.seed_seconds.items())
    total = time.perf_counter() - started
    lines.append(f"(medians; x floor = wall / the raw floor's wall in this run; seeding {seeds}; total {total:.0f}s)")
    print("\n".join(lines))
    return lines


def check_targets(results: list[Measured]) -> list[str]:
    """The issue's targets, each PASS or MISS with its figure."""
    by = {(m.scenario.name, m.mode): m for m in results}
    checks: list[tuple[str, bool, str]] = []

    def wall(name: str, mode: str) -> float | None:
        measured = by.get((name, mode))
        return measured.median("wall") if measured else None

    floor, api, api8, direct = (wall("prune-1990of2000", mode) for mode in (FLOOR, API, API8, DIRECT))
    if floor and api:
        checks.append(("prune: API <= 1.15x the raw floor", api / floor <= 1.15, f"{api / floor:.3f}x"))
    if floor and api8:
        label = "prune: API with --concurrency 8 <= 1.15x the raw floor"
        checks.append((label, api8 / floor <= 1.15, f"{api8 / floor:.3f}x"))
    if floor and direct:
        checks.append(
            ("prune: direct >= 10x faster than the raw floor", floor / direct >= 10, f"{floor / direct:.1f}x")
        )
    for m in results:
        name = m.scenario.name
        if m.mode == API or (m.mode == LIB_API and (name, API) not in by):
            floor_wall = wall(name, FLOOR)
            if floor_wall and not m.scenario.prune:
                ratio = m.median("wall") / floor_wall
                checks.append((f"{name}: {m.mode} plan <= 1.15x the raw floor", ratio <= 1.15, f"{ratio:.3f}x"))
            per = m.cpu_per_request_ms
            if per is not None:
                checks.append((f"{name}: {m.mode} <= 0.3 ms client CPU per request", per <= 0.3, f"{per:.3f} ms"))
            if not m.scenario.prune:
                requests = m.runs[-1]["requests"]
                # A tag list page per 1,000 tags of each repository (3.x pages; 2.8 answers in one);
                # /v2/, the catalog, the registry-line probe and one referrers API probe (404 on 2.8 and 3.x).
                pages = m.repositories * -(-m.tags // m.repositories // 1000)
                allowed = m.tags + pages + 4
                label = f"{name}: {m.mode} plan <= 1 request per tag (+1 per 1,000 tags of a repository, +4)"
                checks.append((label, requests <= allowed, f"{requests} requests for {m.tags} tags"))
        if name.startswith("plan-100k"):
            through_api = wall(name, LIB_API if m.mode == LIB_DIRECT else API)
            if m.mode in (DIRECT, LIB_DIRECT) and through_api:
                ratio = through_api / m.median("wall")
                label = f"{name}: {m.mode} plan >= 10x faster than through the API"
                checks.append((label, ratio >= 10, f"{ratio:.1f}x"))
            if m.mode in (API, DIRECT, LIB_API, LIB_DIRECT):
                rss = max(run["peak_rss_mb"] for run in m.runs)
                checks.append((f"{name}: {m.mode}: peak RSS <= 100 MB", rss <= 100, f"{rss:.0f} MB"))
    lines = [f"{'PASS' if ok else 'MISS'}  {label}: {figure}" for label, ok, figure in checks]
    print()
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each: a smoke test of the harness")
    parser.add_argument(
        "--scenario", action="append", choices=[s.name for s in SCENARIOS], help="run only these (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode of the small plan scenarios (median)")
    parser.add_argument("--repeat-large", type=int, default=1, help="runs per mode of the prune and 100k scenarios")
    parser.add_argument("--concurrency", type=int, default=4, help="for registry-prune and the floor (default 4)")
    parser.add_argument(
        "--line", choices=LINES, default="2.8", help="the registry: Debian's 2.8.2, or 3.1.1 from scripts/gotools.sh"
    )
    parser.add_argument("--workdir", type=Path, help="where storages are seeded (default /dev/shm if roomy, else tmp)")
    parser.add_argument("--keep-workdir", action="store_true", help="leave the seeded storages behind")
    parser.add_argument(
        "--state-dir", type=Path, help="where the audit log and lock go (default: the temp dir, a disk like ~/.local)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.1f}"
    bench = Bench(args)
    results: list[Measured] = []
    try:
        for scenario in SCENARIOS:
            if (args.scenario and scenario.name not in args.scenario) or (not args.scenario and not scenario.default):
                continue
            results.extend(bench.run_scenario(scenario))
        table = print_table(results, bench, started, (load_before, f"{os.getloadavg()[0]:.1f}"))
        targets = check_targets(results)
    finally:
        bench.close()
    if args.json:
        document = {
            "table": table,
            "targets": targets,
            "runs": [{"scenario": m.scenario.name, "mode": m.mode, "tags": m.tags, "runs": m.runs} for m in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
