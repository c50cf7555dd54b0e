"""The Jenkins shared library (vars/, Jenkinsfile.example), tested under Debian's groovy 2.4.

The Groovy cases live in tests/groovy/*Test.groovy and run in one JVM (tests/groovy/run.groovy);
each file is one pytest test here. A second, small JVM runs a deliberately failing file to prove
the runner reports failures. The last test runs the install command the step builds, for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_step import __version__

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


def test_install_command_gives_a_working_tool(suite_run: GroovyRun) -> None:
    """The exact command registryRecover builds (installSpec: this checkout) installs a working tool."""
    command_file = suite_run.out_dir / "install-command.sh"
    assert command_file.exists(), suite_run.output
    command = command_file.read_text(encoding="utf-8").strip()
    workspace = suite_run.out_dir / "workspace"
    venv = workspace / ".registry-prune-venv"
    assert command.startswith(f"python3 -m venv {venv} && ")
    assert f" install --quiet --disable-pip-version-check {ROOT} && " in command
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
