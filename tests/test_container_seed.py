"""The seed's deployment, replayed for real: the registry in a container, the real docker CLI.

The registry runs under podman (through its Docker-compatible API socket) from a
registry:2 stand-in built from Debian's docker-registry package, with its
storage on a 64 MiB tmpfs. CI pushes with ``docker push`` until the registry's
disk is full and the docker CLI reports the 500; ``recover`` classifies that
output, prunes, garbage-collects with ``docker exec`` behind the README's
read-only recipe, brings the registry back with ``docker restart`` and retries
the ``docker push``. The stopped recipe (``docker stop``, ``docker run --rm``
GC, ``docker start``) is proved by ``gc``. The tool's own image then runs
``plan``, ``prune`` and ``recover`` through the exact ``docker run`` the
Jenkins steps build.

Images are built once and cached (tests/support/containers.py); the first run
on a fresh machine spends about three minutes building them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.container_seed import CONFIG, LAYER, REPO, Seed, container_seed
from tests.support.containers import Images, ensure_images
from tests.support.fake_slack import FakeSlack
from tests.support.images import list_tags, resolve
from tests.test_groovy_steps import GROOVY_DIR, finish, start_groovy

pytestmark = [pytest.mark.registry, pytest.mark.container]


@pytest.fixture(scope="session")
def images() -> Images:
    try:
        return ensure_images()
    except RuntimeError as exc:
        pytest.fail(f"cannot build the container images: {exc}", pytrace=False)


@pytest.fixture
def seed(images: Images, tmp_path: Path) -> Iterator[Seed]:
    with container_seed(images, tmp_path) as seed:
        yield seed


def alphas(url: str) -> list[int]:
    return sorted(int(t.rsplit(".", 1)[1]) for t in list_tags(url, REPO) if "alpha" in t)


def test_the_seed_recovers_through_docker_exec_and_docker_restart(seed: Seed, tmp_path: Path) -> None:
    # The real docker CLI's words for the full disk, as the build log has them.
    assert "received unexpected HTTP status: 500 Internal Server Error" in seed.failed_log
    console = tmp_path / "console.log"
    console.write_text(seed.failed_log)
    classified = run_cli("classify", "--console-log", str(console), env=seed.api.env)
    assert classified.code == 0 and classified.stdout.startswith("registry-500"), classified.output

    report_path = tmp_path / "recover.json"
    result = run_cli(
        "recover", "--registry", seed.url, "--repo", REPO, "--match", "alpha", "--keep", "5",
        "--console-log", str(console), "--disk", f"path:{seed.disk.path}", "--min-free", "20%",
        *seed.readonly_recipe(),
        "--push-cmd", f"docker push {seed.image(seed.failed_tag)}", "--push-backoff", "0.2",
        "--json", str(report_path), env=seed.api.env, timeout=600,
    )  # fmt: skip
    assert result.code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["trigger"] == "registry-500"
    assert report["outcome"] == "recovered" and report["push"]["verified"] is True
    assert report["gc_ran"] is True and [r["gc"]["ok"] for r in report["rounds"]] == [True]
    commands = [step["command"] for step in report["rounds"][0]["gc"]["commands"]]
    assert [c.split(" && ")[0] for c in commands] == [
        f"docker stop {seed.name}",
        f"docker exec {seed.name}-ro bin/registry garbage-collect {CONFIG}",
        f"docker stop {seed.name}-ro; docker restart {seed.name}",
    ]
    newest = int(seed.failed_tag.rsplit(".", 1)[1])
    assert alphas(seed.url) == list(range(newest - 5, newest + 1))
    for tag, digest in seed.protected.items():
        assert resolve(seed.url, REPO, tag) == digest
    assert report["freed_bytes"] > (newest - 6) * LAYER * 0.9
    assert report["free_bytes_before"] < 2 * LAYER <= 0.2 * 64 * 2**20 <= report["free_bytes_final"]
    assert seed.running(seed.name) and not seed.running(f"{seed.name}-ro")
    assert seed.push(seed.failed_tag).returncode == 0  # writable again: not left read-only

    # The stopped recipe, measured by gc, after a second prune; the freed bytes go to Slack.
    pruned = run_cli("prune", "--registry", seed.url, "--repo", REPO, "--match", "alpha", "--keep", "2",
                     "--json", str(tmp_path / "prune.json"), env=seed.api.env)  # fmt: skip
    assert pruned.code == 0, pruned.output
    with FakeSlack() as slack:
        gc = run_cli(
            "gc", "--registry", seed.url, *seed.stopped_recipe(), "--disk", f"path:{seed.disk.path}",
            "--predicted-from", str(tmp_path / "prune.json"), "--json", str(tmp_path / "gc.json"),
            env={**seed.api.env, "SLACK_WEBHOOK_URL": slack.webhook_url}, timeout=300,
        )  # fmt: skip
        posts = slack.posts
    assert gc.code == 0, gc.output
    gc_report = json.loads((tmp_path / "gc.json").read_text())
    assert gc_report["gc"]["freed_bytes"] >= 3 * LAYER * 0.9
    assert gc_report["slack"]["delivered"] is True and len(posts) == 1
    assert "freed" in json.dumps(posts[0]).lower()
    assert seed.running(seed.name)
    assert alphas(seed.url) == [newest - 1, newest]


def emit(config: dict[str, object], out_dir: Path) -> dict[str, str]:
    """The scripts the Jenkins steps build for ``config`` (tests/groovy/e2e/EmitTest.groovy)."""
    spec = out_dir / "emit.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(config))
    os.environ["REGISTRY_PRUNE_EMIT"] = str(spec)
    try:
        run = finish(start_groovy([GROOVY_DIR / "e2e" / "EmitTest.groovy"], out_dir), out_dir)
    finally:
        del os.environ["REGISTRY_PRUNE_EMIT"]
    assert run.code == 0, run.output
    return {step: (out_dir / f"{step}.sh").read_text() for step in config if not step.startswith("_")}


def test_the_tool_image_runs_plan_prune_and_recover_through_the_steps_docker_run(seed: Seed, tmp_path: Path) -> None:
    tool = seed.images.tool
    planned = seed.api.docker(
        "run", "--rm", "--network", "host", tool, "plan", "--registry", seed.url, "--repo", REPO,
        "--match", "alpha", "--keep", "5", check=False,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stdout + planned.stderr
    newest = int(seed.failed_tag.rsplit(".", 1)[1])
    assert "3.3.0-alpha.1" in planned.stdout and "delete" in planned.stdout.lower()

    # The commands recover runs (docker stop/exec/restart/push) run inside the tool's container:
    # it gets the docker CLI and the API socket through dockerArgs, as docs/jenkins.md shows.
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    docker_args = [
        "-v", f"{docker_cli}:/usr/local/bin/docker:ro", "-v", f"{seed.api.socket}:{seed.api.socket}",
        "-e", "DOCKER_HOST", "-e", "DOCKER_CONFIG", "-v", f"{seed.api.docker_config}:{seed.api.docker_config}",
    ]  # fmt: skip
    common = {"registry": seed.url, "repository": REPO, "match": "alpha", "keep": 5, "toolImage": tool,
              "dockerArgs": docker_args}  # fmt: skip
    recipe = dict(zip(seed.readonly_recipe()[::2], seed.readonly_recipe()[1::2], strict=True))
    scripts = emit(
        {
            "_log": seed.failed_log.splitlines(),
            "registryPrune": common,
            "registryRecover": {
                **common, "image": seed.image(seed.failed_tag), "readonlyCommand": recipe["--readonly-cmd"],
                "gcCommand": recipe["--gc-cmd"], "restartCommand": recipe["--restart-cmd"],
            },
        },
        tmp_path / "groovy",
    )  # fmt: skip
    workspace = tmp_path / "groovy" / "workspace"
    assert (workspace / "registry-prune-console.log").read_text().startswith("+ docker push ")
    for step, script in scripts.items():
        assert script.startswith(
            "rm -f registry-prune-report.json\nmkdir -p /tmp/registry-prune-locks && docker run "
        ), step

    def sh(script: str) -> subprocess.CompletedProcess[str]:
        # Jenkins' sh: /bin/sh in the workspace, with the agent's environment.
        return subprocess.run(["/bin/sh", "-c", script], cwd=workspace, env=seed.api.env, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip

    dry = sh(scripts["registryPrune"])
    assert dry.returncode == 0, dry.stdout + dry.stderr
    report = json.loads((workspace / "registry-prune-report.json").read_text())
    assert report["dry_run"] is True and len(report["deleted"]) == newest - 1 - 5

    done = sh(scripts["registryRecover"])
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((workspace / "registry-prune-report.json").read_text())
    assert report["outcome"] == "recovered" and report["push"]["verified"] is True
    assert report["trigger"] == "registry-500"
    # The undo log is in the workspace, where the step archives it from.
    assert report["audit_log"].startswith("registry-prune-audit/")
    assert (workspace / report["audit_log"]).is_file()
    assert alphas(seed.url) == list(range(newest - 5, newest + 1))
    assert seed.running(seed.name)
