"""The Jenkins shared library (vars/, Jenkinsfile.example), tested under Debian's groovy 2.4.

The Groovy cases live in tests/groovy/*Test.groovy and run in one JVM (tests/groovy/run.groovy);
each file is one pytest test here. A second, small JVM runs a deliberately failing file to prove
the runner reports failures. Then, for real: the wheel and sdist are built (``python -m build``,
``twine check``) and the install command the step builds installs that wheel; and the restore
job of Jenkinsfile.example undoes a registryPrune from its archived undo log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_step import __version__
from tests.support.apps import seed_app
from tests.support.containers import build_dist
from tests.support.images import list_tags
from tests.support.registry import RegistryFactory

pytestmark = pytest.mark.groovy

ROOT = Path(__file__).resolve().parent.parent
GROOVY_DIR = ROOT / "tests" / "groovy"
SUITES = sorted(path.stem for path in GROOVY_DIR.glob("*Test.groovy"))
SELF_TEST = GROOVY_DIR / "selftest" / "FailingTest.groovy"


@dataclass
class GroovyRun:
    code: int
    output: str
    out_dir: Path

    def results(self) -> list[dict[str, Any]]:
        path = self.out_dir / "results.json"
        if not path.exists():
            pytest.fail(f"the Groovy runner wrote no results (exit {self.code}):\n{self.output}", pytrace=False)
        results: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return results


def groovy_environment() -> tuple[str, dict[str, str]]:
    groovy = shutil.which("groovy")
    if groovy is None:
        pytest.fail("groovy is not on PATH; install it with: sudo apt-get install -y groovy", pytrace=False)
    env = dict(os.environ)
    java_home = env.get("JAVA_HOME", "")
    if not java_home or not (Path(java_home) / "bin" / "java").exists():
        java = shutil.which("java")
        if java is None:
            pytest.fail("java is not on PATH; install it with: sudo apt-get install -y groovy", pytrace=False)
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return groovy, env


def start_groovy(files: list[Path], out_dir: Path) -> subprocess.Popen[str]:
    groovy, env = groovy_environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [groovy, "-cp", str(GROOVY_DIR), str(GROOVY_DIR / "run.groovy"), "--out", str(out_dir), *map(str, files)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str], out_dir: Path, timeout: float = 300) -> GroovyRun:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"groovy did not finish within {timeout} s:\n{output}", pytrace=False)
    # Groovy 2.4 on Java 17 warns about illegal reflective access; that is noise.
    lines = [line for line in output.splitlines() if not line.startswith("WARNING: ")]
    return GroovyRun(process.returncode, "\n".join(lines), out_dir)


@pytest.fixture(scope="module")
def groovy_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroovyRun, GroovyRun]:
    """The suite and the self-test, started together so the two JVM start-ups overlap."""
    suite_dir = tmp_path_factory.mktemp("groovy-suite")
    self_dir = tmp_path_factory.mktemp("groovy-selftest")
    suite = start_groovy([GROOVY_DIR / f"{name}.groovy" for name in SUITES], suite_dir)
    self_test = start_groovy([SELF_TEST], self_dir)
    return finish(suite, suite_dir), finish(self_test, self_dir)


@pytest.fixture(scope="module")
def suite_run(groovy_runs: tuple[GroovyRun, GroovyRun]) -> GroovyRun:
    return groovy_runs[0]


def test_groovy_suites_found() -> None:
    assert {"RegistryRecoverTest", "RegistryPruneTest", "SupportTest", "JenkinsfileExampleTest", "HelpTest"} <= set(
        SUITES
    )


@pytest.mark.parametrize("suite", SUITES)
def test_groovy(suite_run: GroovyRun, suite: str) -> None:
    cases = [result for result in suite_run.results() if result["suite"] == suite]
    failed = [case for case in cases if not case["ok"]]
    if failed or not cases:
        details = "\n\n".join(f"{case['name']}:\n{case['message']}" for case in failed)
        pytest.fail(
            f"{len(failed)} of {len(cases)} Groovy case(s) in {suite} failed:\n\n{details}\n\n"
            f"full output:\n{suite_run.output}",
            pytrace=False,
        )


def test_groovy_runner_exit_status(suite_run: GroovyRun) -> None:
    assert suite_run.code == 0, suite_run.output
    assert suite_run.output.rstrip().endswith(" 0 failed"), suite_run.output


def test_runner_reports_failures(groovy_runs: tuple[GroovyRun, GroovyRun]) -> None:
    run = groovy_runs[1]
    assert run.code == 1, run.output
    assert "ok 1 - FailingTest: a passing case" in run.output
    assert "not ok 2 - FailingTest: a failing assertion" in run.output
    assert "assert h.shScripts() == ['expected-by-the-self-test']" in run.output
    assert "not ok 3 - FailingTest: an unexpected step error" in run.output
    assert "StepError: boom from the self-test" in run.output
    assert "# 1 passed, 2 failed" in run.output
    assert [case["ok"] for case in run.results()] == [True, False, False]


def test_wheel_and_sdist_build_and_pass_twine_check(suite_run: GroovyRun) -> None:
    """What CI publishes: ``python -m build`` into the folder the install test reads, then ``twine check``."""
    dist = suite_run.out_dir / "dist"
    build_dist(dist)
    built = sorted(path.name for path in dist.iterdir())
    assert built == [f"registry_prune-{__version__}-py3-none-any.whl", f"registry_prune-{__version__}.tar.gz"]
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "No module named twine" in checked.stderr:
        pytest.fail("twine is not installed; install it with: .venv/bin/pip install -e '.[test]'", pytrace=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_install_command_gives_a_working_tool(suite_run: GroovyRun) -> None:
    """The exact command registryRecover builds (installSpec: the locally built wheel) installs a working tool."""
    wheel = suite_run.out_dir / "dist" / f"registry_prune-{__version__}-py3-none-any.whl"
    if not wheel.exists():
        build_dist(suite_run.out_dir / "dist")
    command_file = suite_run.out_dir / "install-command.sh"
    assert command_file.exists(), suite_run.output
    command = command_file.read_text(encoding="utf-8").strip()
    workspace = suite_run.out_dir / "workspace"
    venv = workspace / ".registry-prune-venv"
    assert command.startswith(f"python3 -m venv {venv} && ")
    assert f" install --quiet --disable-pip-version-check {wheel} && " in command
    workspace.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # Jenkins' sh step runs the script with /bin/sh in the workspace.
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run(
        [str(venv / "bin" / "registry-prune"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"registry-prune {__version__}"


def emit_scripts(config: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """The exact scripts the steps build for ``config`` (tests/groovy/e2e/EmitTest.groovy), by step."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "emit.json"
    spec.write_text(json.dumps(config), encoding="utf-8")
    groovy, env = groovy_environment()
    command = [groovy, "-cp", str(GROOVY_DIR), str(GROOVY_DIR / "run.groovy"), "--out", str(out_dir),
               str(GROOVY_DIR / "e2e" / "EmitTest.groovy")]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env={**env, "REGISTRY_PRUNE_EMIT": str(spec)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    run = finish(process, out_dir)
    assert run.code == 0, run.output
    return {step.split("@")[0]: (out_dir / f"{step.split('@')[0]}.sh").read_text() for step in config if step[0] != "_"}


def test_the_restore_job_undoes_a_prune_from_its_archived_undo_log(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """registryPrune writes the undo log into the workspace; the restore job of Jenkinsfile.example,
    given that build's artifacts as copyArtifacts lays them out, puts every pruned tag back."""
    registry = registry_factory()
    seeded = seed_app(registry.url)
    before = set(list_tags(registry.url, seeded.repo))
    prune_dir, restore_dir = tmp_path / "prune-job", tmp_path / "restore-job"
    policy = {"registry": registry.url, "repository": seeded.repo, "match": "alpha", "keep": 2, "dryRun": False}
    prune = emit_scripts({"registryPrune": policy}, prune_dir)["registryPrune"]
    restore_args = {"params": {"PRUNE_BUILD": "17", "TAGS": "", "DRY_RUN": False},
                    "overrides": {"registry": registry.url, "credentialsId": None, "toolImage": None}}  # fmt: skip
    restore = emit_scripts({"registryRestore@Jenkinsfile": restore_args}, restore_dir)["registryRestore"]
    assert " restore --registry " in restore and " --latest undo/registry-prune-audit " in restore

    # Jenkins' sh: /bin/sh in the workspace; this checkout's tool on the agent's PATH (executable: registry-prune).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "registry-prune").write_text(
        f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m pipeline_step "$@"\n'
    )
    (bin_dir / "registry-prune").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("REGISTRY_PRUNE_AUDIT_DIR", None)
    prune_ws = prune_dir / "workspace"
    prune_ws.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["/bin/sh", "-c", prune], cwd=prune_ws, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((prune_ws / "registry-prune-report.json").read_text())
    deleted = {entry["tag"] for entry in report["deleted"] if entry["tag"]}
    assert deleted and set(list_tags(registry.url, seeded.repo)) == before - deleted
    archived = prune_ws / report["audit_log"]
    assert report["audit_log"].startswith("registry-prune-audit/") and archived.is_file()

    # copyArtifacts(filter: 'registry-prune-audit/*.jsonl', target: 'undo') into the restore job's workspace.
    restore_ws = restore_dir / "workspace"
    (restore_ws / "undo" / "registry-prune-audit").mkdir(parents=True)
    shutil.copy(archived, restore_ws / "undo" / report["audit_log"])
    done = subprocess.run(["/bin/sh", "-c", restore], cwd=restore_ws, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    restored = json.loads((restore_ws / "registry-prune-restore.json").read_text())
    assert (restored["outcome"], restored["exit_code"]) == ("ok", 0), restored["message"]
    assert set(list_tags(registry.url, seeded.repo)) == before
