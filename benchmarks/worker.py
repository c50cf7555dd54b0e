"""One measured run in a fresh process, so CPU time and peak RSS belong to it alone.

``python -m benchmarks.worker JOB_JSON`` prints one JSON line: wall seconds,
client CPU seconds (``time.process_time``: the registry runs in another
process), requests, and peak RSS (``ru_maxrss``). Jobs:

* ``{"kind": "cli", "argv": [...]}`` runs registry-prune's own CLI entry point
  in-process (stdout to /dev/null; the request count comes from ``--json``).
* ``{"kind": "library", ...}`` calls the planning entry point, build_plan, through the
  same source the CLI builds (API client on the lean transport, or the storage).
* ``{"kind": "floor", ...}`` runs benchmarks.floor.raw_floor.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_cli(argv: list[str]) -> dict[str, Any]:
    from pipeline_step.cli.main import build_parser, main  # noqa: PLC0415 - imported before the clock starts

    build_parser(argv)  # imports the command's modules (the CLI loads them lazily) before the clock starts

    report_path = argv[argv.index("--json") + 1]
    # The table goes to /dev/null at the descriptor level: output.print_table bound sys.stdout at import.
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        code = main(argv)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = _peak_rss_mb()  # before reading the report back: a 100k-entry report is the worker's, not ours
        sys.stdout.flush()
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
    if code != 0:
        raise SystemExit(f"registry-prune {' '.join(argv)} exited {code}")
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)
    summary = report["summary"]
    deleted = summary["manifests_deleted"] if report["executed"] else 0
    return {"wall": wall, "cpu": cpu, "requests": report.get("requests") or 0, "deleted": deleted, "peak_rss_mb": peak}


def run_library(job: dict[str, Any]) -> dict[str, Any]:
    import threading  # noqa: PLC0415

    from pipeline_step.backends import open_backend  # noqa: PLC0415
    from pipeline_step.planning.build import build_plan  # noqa: PLC0415
    from pipeline_step.policy.config import load_configuration  # noqa: PLC0415
    from pipeline_step.registry.http.choose import open_client  # noqa: PLC0415

    flags = {"repositories": job["repositories"], "policy.match": job["match"], "policy.keep": job["keep"]}
    if job.get("url"):
        flags["registry.url"] = job["url"]
    configuration = load_configuration(None, flags=flags)
    stop = threading.Event()
    concurrency = job["concurrency"]
    started, cpu = time.perf_counter(), time.process_time()
    if job.get("url"):
        with open_client(configuration.registry.url, concurrency=concurrency, transport="lean") as client:
            backend = open_backend(client=client, concurrency=concurrency, stop=stop)
            plan = build_plan(backend, configuration, registry=client.url, stop=stop)
            requests = client.stats.requests
    else:
        backend = open_backend(storage_root=job["storage"], concurrency=concurrency, stop=stop)
        plan = build_plan(backend, configuration, registry="storage", stop=stop)
        requests = 0
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not plan.step_count:
        raise SystemExit("the library plan deleted nothing: the benchmark's policy is wrong")
    return {"wall": wall, "cpu": cpu, "requests": requests, "deleted": 0}


def run_floor(job: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.floor import raw_floor  # noqa: PLC0415

    keep = set(job["keep"]) if job.get("keep") is not None else None
    started, cpu = time.perf_counter(), time.process_time()
    result = raw_floor(
        job["url"],
        job["repositories"],
        doomed=(lambda tag: tag not in keep) if keep is not None else None,
        concurrency=job["concurrency"],
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "requests": result.requests, "deleted": result.deleted}


def main() -> None:
    job = json.loads(sys.argv[1])
    # Import first so that the clock and the CPU counter see only the run. The library
    # job imports only what planning needs, as an embedding program would.
    if job["kind"] == "library":
        import pipeline_step.backends  # noqa: PLC0415
        import pipeline_step.registry.http.choose  # noqa: PLC0415
    else:
        import pipeline_step.cli.main  # noqa: F401, PLC0415

    baseline = _peak_rss_mb()
    runners = {"floor": run_floor, "library": run_library, "cli": lambda job: run_cli(job["argv"])}
    result = runners[job["kind"]](job)
    result.setdefault("peak_rss_mb", _peak_rss_mb())
    result["baseline_rss_mb"] = baseline
    print(json.dumps(result))


if __name__ == "__main__":
    main()
