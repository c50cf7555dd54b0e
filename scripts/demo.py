"""Demo: a local registry full of CI tags, planned and pruned by registry-prune."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.images import Pusher, list_tags
from tests.support.registry import RegistryServer


def run(*args: str) -> int:
    print(f"\n$ registry-prune {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "pipeline_step", *args], check=False).returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="registry-prune-demo-") as work:
        server = RegistryServer(workdir=Path(work), storage=Path(work) / "storage").start()
        try:
            print(f"local registry on {server.url} (delete enabled, storage in {work})")
            with Pusher(server.url) as pusher:
                for n in range(1, 41):
                    pusher.image("team/app", f"3.3.0-alpha.{n}")
                for release in ("3.1.0", "3.2.0"):
                    pusher.image("team/app", release)
                pusher.tag("team/app", "3.3.0-alpha.40", "latest")
            print(f"pushed {len(list_tags(server.url, 'team/app'))} tags to team/app")
            common = ["--registry", server.url, "--repo", "team/app", "--match", "alpha", "--keep", "10"]
            if run("plan", *common) != 0:
                return 1
            code = run("prune", *common)
            print(f"\ntags left: {', '.join(list_tags(server.url, 'team/app'))}")
            return code
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
