"""Demo: the disk-full incident from the seed write-up, recovered by registry-prune.

1. Start Debian's docker-registry on 127.0.0.1 with its storage on a 64 MiB tmpfs.
2. Push CI builds (3.3.0-alpha.N) with skopeo until a push fails with a 500.
3. Run `registry-prune recover`: prune old alphas, garbage-collect, restart the
   registry, retry the push and verify it, report to a local Slack stand-in.
4. Clean up: stop only the registry it started, unmount the tmpfs. The undo log
   and the lock file live in the demo's own folder and go with it.

With --container it replays the seed's deployment instead: the registry in a
container (podman, through the real docker CLI), `docker push` until the disk
is full, GC through `docker exec` behind the read-only recipe and `docker
restart` (the first run builds the images, about three minutes).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.container_seed import container_seed
from tests.support.containers import ensure_images
from tests.support.fake_slack import FakeSlack
from tests.support.images import list_tags
from tests.support.scenario import DiskFullRegistry, OciLayout, fill_until_500

REPO = "team/app"
LAYER = 4 * 1024 * 1024


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def demo_env(work: Path, **extra: str) -> dict[str, str]:
    """The tool's environment: its undo log and lock in the demo's folder, nothing left behind."""
    return {
        **os.environ,
        "REGISTRY_PRUNE_AUDIT_DIR": str(work / "audit"),
        "REGISTRY_PRUNE_LOCK_DIR": str(work / "locks"),
        **extra,
    }


def main() -> int:
    if sys.argv[1:] == ["--container"]:
        return container_demo()
    if sys.argv[1:]:
        print("usage: ./scripts/demo.sh [--container]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="registry-prune-demo-") as work_dir:
        work = Path(work_dir)
        say("starting docker-registry on a 64 MiB filesystem")
        try:
            registry = DiskFullRegistry(work / "registry").__enter__()
        except RuntimeError as exc:
            print(f"cannot set up the small filesystem: {exc}", file=sys.stderr)
            return 1
        try:
            assert registry.disk is not None
            print(f"registry {registry.url}, storage {registry.storage} ({registry.disk.kind})")
            layout = OciLayout(work / "oci")
            for release in ("3.1.0", "3.2.0"):
                layout.add(release, 64 * 1024)
                subprocess.run(layout.push_command(release, registry.host, REPO), shell=True, check=True)
            say("CI pushes a 4 MiB build per commit until the disk is full")

            def progress(tag: str, ok: bool) -> None:
                assert registry.disk is not None
                free = registry.disk.free_bytes() // 1024
                print(f"push {REPO}:{tag}: {'ok' if ok else 'FAILED'} ({free} KiB free)", flush=True)

            failed_tag, failed_log = fill_until_500(registry, layout, REPO, LAYER, on_push=progress)
            print(f"\nthe deploy stage fails like the seed incident:\n  {failed_log.splitlines()[-1]}")
            console = work / "console.log"
            console.write_text(failed_log + "\n")
            report = work / "recover.json"
            with FakeSlack() as slack:
                flags = {
                    "--registry": registry.url,
                    "--repo": REPO,
                    "--match": "alpha",
                    "--keep": "5",
                    "--console-log": str(console),
                    "--disk": f"path:{registry.storage}",
                    "--min-free": "20%",
                    # GC only while the registry is stopped: no push can race the sweep.
                    "--stop-cmd": registry.ctl("stop"),
                    "--gc-cmd": registry.gc_command(),
                    "--start-cmd": registry.ctl("start"),
                    "--push-cmd": layout.push_command(failed_tag, registry.host, REPO),
                    "--json": str(report),
                }
                arguments = [word for pair in flags.items() for word in pair]
                say("registry-prune recover " + shlex.join(arguments))
                # The webhook URL is a secret: it goes in the environment, never on the command line.
                env = demo_env(work, SLACK_WEBHOOK_URL=slack.webhook_url)
                command = [sys.executable, "-m", "pipeline_step", "recover", *arguments]
                code = subprocess.run(command, check=False, env=env).returncode
                posts = slack.posts
            say("result")
            document = json.loads(report.read_text())
            print(f"exit code {code}; outcome {document['outcome']}; {len(document['deleted'])} tags deleted")
            print(f"free space: {document['free_bytes_before']} -> {document['free_bytes_final']} bytes")
            print(f"tags now on {REPO}: {', '.join(list_tags(registry.url, REPO))}")
            if posts:
                print(f"Slack got 1 message: {posts[0].get('text', '')}")
            return code
        finally:
            say("cleaning up: stopping the demo registry, unmounting its filesystem")
            registry.__exit__()


def container_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="registry-prune-demo-") as work_dir:
        work = Path(work_dir)
        say("building (or finding) the registry and tool images")
        try:
            images = ensure_images()
        except RuntimeError as exc:
            print(f"cannot build the images: {exc}", file=sys.stderr)
            return 1
        say("docker run registry (Debian's docker-registry as registry:2) on a 64 MiB tmpfs; docker push until full")

        def progress(tag: str, ok: bool) -> None:
            print(f"docker push {REPO}:{tag}: {'ok' if ok else 'FAILED'}", flush=True)

        with container_seed(images, work / "seed", on_push=progress) as seed:
            print(f"\nthe push stage fails like the seed incident:\n  {seed.failed_log.splitlines()[-1]}")
            console = work / "console.log"
            console.write_text(seed.failed_log)
            report = work / "recover.json"
            arguments = [
                "--registry", seed.url, "--repo", REPO, "--match", "alpha", "--keep", "5",
                "--console-log", str(console), "--disk", f"path:{seed.disk.path}", "--min-free", "20%",
                *seed.readonly_recipe(), "--push-cmd", f"docker push {seed.image(seed.failed_tag)}",
                "--json", str(report),
            ]  # fmt: skip
            say("registry-prune recover " + shlex.join(arguments))
            command = [sys.executable, "-m", "pipeline_step", "recover", *arguments]
            code = subprocess.run(command, check=False, env=demo_env(work, **seed.api.env)).returncode
            document = json.loads(report.read_text())
            say("result")
            print(f"exit code {code}; outcome {document['outcome']}; {len(document['deleted'])} tags deleted")
            print(f"free space: {document['free_bytes_before']} -> {document['free_bytes_final']} bytes")
            print(f"tags now on {REPO}: {', '.join(list_tags(seed.url, REPO))}")
            say("cleaning up: removing the demo's containers and images, unmounting its filesystem")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
