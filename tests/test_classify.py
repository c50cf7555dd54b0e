"""Console-log classification: categories, precedence, decorations, speed, and the ``classify`` command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from pipeline_step.integrations.classify import (
    MAX_LINE_CHARS,
    Category,
    classify_chunks,
    classify_file,
    classify_stream,
    classify_text,
)
from tests.support.cli import ROOT, run_cli
from tests.support.fake_jenkins import TOKEN, USER, FakeJenkins
from tests.support.registry import free_port

FIXTURES = Path(__file__).parent / "fixtures"
SEED = FIXTURES / "seed-docker-push-500.log"
SEED_ERROR = "received unexpected HTTP status: 500 Internal Server Error"

R500 = Category.REGISTRY_500
RDISK = Category.REGISTRY_DISK_FULL
ADISK = Category.AGENT_DISK_FULL
AUTH = Category.AUTH
NET = Category.NETWORK
UNKNOWN = Category.UNKNOWN

SNIPPETS: list[tuple[str, Category]] = [
    # the registry answered 500
    (SEED_ERROR, R500),
    ("Error response from daemon: received unexpected HTTP status: 500 Internal Server Error", R500),
    (
        "ERROR: failed to solve: failed to push reg.example:5000/team/app:1.0.0-rc.1: "
        "unexpected status: 500 Internal Server Error",
        R500,
    ),
    (
        "#8 ERROR: failed to push reg.example:5000/team/app:1: unexpected status from PUT request to "
        "https://reg.example:5000/v2/team/app/manifests/1: 500 Internal Server Error",
        R500,
    ),
    (
        'ERROR: failed to solve: failed to copy: failed to do request: Put "https://reg.example:5000/v2/team/app/'
        'blobs/uploads/5e1c": unexpected status: 500 Internal Server Error',
        R500,
    ),
    (
        "FATA[0002] Error writing blob: Error initiating layer upload to /v2/team/app/blobs/uploads/ in "
        "reg.example:5000: received unexpected HTTP status: 500 Internal Server Error",
        R500,
    ),
    (
        'time="2024-03-11T02:14:09Z" level=fatal msg="copying system image from manifest list: writing blob: '
        "initiating layer upload to /v2/mirror/nginx/blobs/uploads/ in reg:5000: received unexpected HTTP status: "
        '500 Internal Server Error"',
        R500,
    ),
    (
        'Error: writing blob: uploading layer chunked: StatusCode: 500, "{\\"errors\\":[{\\"code\\":\\"UNKNOWN\\",'
        '\\"message\\":\\"unknown error\\"}]}"',
        R500,
    ),
    (
        "ctr: failed to copy: unexpected status from PUT request to http://reg:5000/v2/app/manifests/1: "
        "500 Internal Server Error",
        R500,
    ),
    (
        'time="2024-03-11T02:14:09Z" level=fatal msg="failed to copy: unexpected status from POST request to '
        'https://reg:5000/v2/app/blobs/uploads/: 500 Internal Server Error"',
        R500,
    ),
    (
        "Error: writing manifest: uploading manifest 1 to reg:5000/app: invalid status code from registry 500 "
        "(Internal Server Error)",
        R500,
    ),
    ("Error: trying to reuse blob sha256:ab12 at destination: unknown: unknown error", R500),
    ("b42928ca3a48: push failed: 500 Internal Server Error", R500),
    # the registry says its disk is full
    (
        '{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"filesystem: write /var/lib/registry/docker/'
        'registry/v2/blobs/sha256/1f/1f2e/data: no space left on device"}]}',
        RDISK,
    ),
    (
        'time="2024-01-02T03:04:05.123Z" level=error msg="response completed with error" err.code=unknown '
        'err.detail="filesystem: mkdir /var/lib/registry/docker/registry/v2/repositories/team/app/_uploads/0e6f: '
        'no space left on device" err.message="unknown error" http.request.method=POST http.response.status=500',
        RDISK,
    ),
    (
        "filesystem: write /data/docker/registry/v2/repositories/team/app/_uploads/9c1b/data: no space left on device",
        RDISK,
    ),
    (
        'Error: writing blob: StatusCode: 500, "{\\"errors\\":[{\\"code\\":\\"UNKNOWN\\",\\"message\\":\\"unknown '
        'error\\",\\"detail\\":\\"filesystem: write /srv/registry/x/data: no space left on device\\"}]}"',
        RDISK,
    ),
    ('    "detail": "filesystem: write /srv/registry/blobs/ab/data: no space left on device"', RDISK),
    (
        "ERROR: failed to solve: failed to push reg:5000/app:1: unexpected status from PUT request to "
        "https://reg:5000/v2/app/blobs/uploads/7d0b: 500 Internal Server Error: write /tmp/x: no space left on device",
        RDISK,
    ),
    # the agent's own disk is full
    ("write /var/lib/docker/tmp/GetImageBlob123456789: no space left on device", ADISK),
    (
        "failed to register layer: Error processing tar file(exit status 1): write /usr/lib/x86_64-linux-gnu/"
        "libLLVM-15.so.1: no space left on device",
        ADISK,
    ),
    (
        "ERROR: failed to solve: failed to compute cache key: failed to copy: write /var/lib/docker/buildkit/"
        "content/ingest/9f8e/data: no space left on device",
        ADISK,
    ),
    ("ERROR: failed to solve: no space left on device", ADISK),
    ("OSError: [Errno 28] No space left on device: '/home/jenkins/workspace/app/dist/app.whl'", ADISK),
    ("java.io.IOException: No space left on device", ADISK),
    ("docker: Error response from daemon: mkdir /var/lib/docker/overlay2/4d5e6f-init: no space left on device.", ADISK),
    ("fatal: write error: No space left on device", ADISK),
    ("java.io.IOException: There is not enough space on the disk", ADISK),
    ("npm ERR! nospc ENOSPC: no space left on device, write", ADISK),
    ("Error: no space left on device", ADISK),
    # credentials
    ("denied: requested access to the resource is denied", AUTH),
    ("unauthorized: authentication required", AUTH),
    ("no basic auth credentials", AUTH),
    (
        'Error response from daemon: Get "https://reg.example:5000/v2/": unauthorized: incorrect username or password',
        AUTH,
    ),
    ("ERROR: failed to solve: failed to fetch oauth token: unexpected status: 401 Unauthorized", AUTH),
    (
        "ERROR: failed to solve: failed to push reg/app:1: unexpected status from POST request to "
        "https://reg/v2/app/blobs/uploads/: 403 Forbidden",
        AUTH,
    ),
    (
        "ERROR: failed to solve: failed to push reg/app:1: server message: insufficient_scope: authorization failed",
        AUTH,
    ),
    (
        "Error: initializing source docker://reg:5000/app:1: reading manifest 1 in reg:5000/app: "
        "unauthorized: authentication required",
        AUTH,
    ),
    ("denied: access forbidden", AUTH),
    # the registry cannot be reached
    ('Get "https://reg.example:5000/v2/": dial tcp 10.20.30.40:5000: connect: connection refused', NET),
    ('Get "https://reg.example:5000/v2/": dial tcp 10.20.30.40:5000: i/o timeout', NET),
    ('Get "https://reg.example:5000/v2/": dial tcp: lookup reg.example on 127.0.0.53:53: no such host', NET),
    ('Get "https://reg.example:5000/v2/": net/http: TLS handshake timeout', NET),
    (
        'Get "https://reg.example:5000/v2/": net/http: request canceled while waiting for connection '
        "(Client.Timeout exceeded while awaiting headers)",
        NET,
    ),
    ('Get "https://reg.example:5000/v2/": x509: certificate signed by unknown authority', NET),
    ('Get "https://reg.example:5000/v2/": http: server gave HTTP response to HTTPS client', NET),
    (
        'ERROR: failed to solve: failed to push reg:5000/app:1: failed to do request: Put "https://reg:5000/v2/app/'
        'blobs/uploads/5e1c?digest=sha256%3Aab": write tcp 10.0.0.2:51234->10.20.30.40:5000: write: connection '
        "reset by peer",
        NET,
    ),
    ("received unexpected HTTP status: 502 Bad Gateway", NET),
    ("unexpected status from HEAD request to https://reg/v2/app/manifests/1: 503 Service Unavailable", NET),
    (
        'ctr: failed to resolve reference "reg:5000/app:1": failed to do request: Head "https://reg:5000/v2/app/'
        'manifests/1": dial tcp 10.20.30.40:5000: connect: no route to host',
        NET,
    ),
    # nothing a registry prune is about
    ("b42928ca3a48: Retrying in 5 seconds", UNKNOWN),
    ("Tests run: 500, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 12.5 s", UNKNOWN),
    (
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-deploy-plugin:3.1.1:deploy (default-deploy) "
        "on project app: Failed to deploy artifacts: Could not transfer artifact com.example:app:jar:1.0 from/to "
        "nexus (https://nexus.example/repository/releases/): status code: 500, reason phrase: Internal Server Error "
        "(500)",
        UNKNOWN,
    ),
    ("curl: (22) The requested URL returned error: 500", UNKNOWN),
    ("< HTTP/1.1 500 Internal Server Error", UNKNOWN),
    (
        "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
        'Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/images/create": dial unix /var/run/docker.sock: connect: '
        "permission denied",
        UNKNOWN,
    ),
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", UNKNOWN),
    ("Timeout set to expire in 30 min", UNKNOWN),
    ("Error occurred while pushing image to the registry: hudson.AbortException: script returned exit code 1", UNKNOWN),
]

ESC = "\x1b"
DECORATIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda line: line,
    "iso-timestamp": lambda line: f"[2024-01-02T03:04:05.123Z] {line}",
    "clock": lambda line: f"12:34:56 {line}",
    "ansi": lambda line: f"{ESC}[1;31m{line[:10]}{ESC}[0m{ESC}[31m{line[10:]}{ESC}[0m",
    "timestamp-and-ansi": lambda line: f"{ESC}[90m[2024-01-02T03:04:05.123Z]{ESC}[0m {ESC}[31m{line}{ESC}[0m",
    "crlf": lambda line: line + "\r",
}


def _log_around(line: str) -> str:
    return f"[Pipeline] sh\n+ docker push reg.example:5000/team/app:1\n{line}\n[Pipeline] }}\nFinished: FAILURE\n"


@pytest.mark.parametrize("decoration", DECORATIONS)
@pytest.mark.parametrize(("line", "expected"), SNIPPETS, ids=[f"{c.value}-{i}" for i, (_, c) in enumerate(SNIPPETS)])
def test_snippet_category(line: str, expected: Category, decoration: str) -> None:
    result = classify_text(_log_around(DECORATIONS[decoration](line)))
    assert result.category is expected, result
    assert result.prune_can_help is (expected in (R500, RDISK))
    if expected is UNKNOWN:
        assert result.evidence is None and result.line is None
    else:
        assert result.line == 3
        assert result.evidence == line.strip()  # timestamps, colours and \r are gone


def test_seed_log_is_registry_500() -> None:
    result = classify_file(SEED)
    assert result.category is Category.REGISTRY_500
    assert result.prune_can_help
    assert result.evidence == SEED_ERROR
    assert SEED.read_text().splitlines()[result.line - 1 if result.line else 0] == SEED_ERROR
    assert result.also_seen == ()
    assert result.lines_scanned == len(SEED.read_text().splitlines())
    assert "500" in result.explanation


def test_seed_log_with_timestamper_and_colours_is_registry_500() -> None:
    decorated = "".join(
        f"{ESC}[8mha:////4LnQnXw0AAAA={ESC}[0m[2024-01-02T03:04:{i % 60:02d}.123Z] {ESC}[32m{line}{ESC}[0m\n"
        for i, line in enumerate(SEED.read_text().splitlines())
    )
    result = classify_text(decorated)
    assert result.category is Category.REGISTRY_500
    assert result.evidence == SEED_ERROR


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("seed-docker-push-500.log", R500),
        ("buildx-registry-disk-full.log", RDISK),
        ("docker-build-agent-disk-full.log", ADISK),
        ("skopeo-copy-500.log", R500),
        ("docker-push-denied.log", AUTH),
        ("docker-push-connection-refused.log", NET),
    ],
)
def test_fixture_logs(name: str, expected: Category) -> None:
    assert classify_file(FIXTURES / name).category is expected


# --- precedence ------------------------------------------------------------------------------------------------

REGISTRY_DETAIL = (
    '{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"filesystem: write /var/lib/registry/'
    'docker/registry/v2/blobs/x/data: no space left on device"}]}'
)
LOCAL_FULL = "write /var/lib/docker/tmp/GetImageBlob42: no space left on device"
REFUSED = 'Get "https://reg:5000/v2/": dial tcp 10.0.0.5:5000: connect: connection refused'


def test_registry_detail_beats_a_500_and_is_the_evidence() -> None:
    result = classify_text(f"{SEED_ERROR}\n{REGISTRY_DETAIL}\n{SEED_ERROR}\n")
    assert result.category is Category.REGISTRY_DISK_FULL
    assert result.line == 2 and result.evidence == REGISTRY_DETAIL
    assert result.also_seen == (Category.REGISTRY_500,)


def test_local_disk_full_beats_a_500() -> None:
    result = classify_text(f"{LOCAL_FULL}\n{SEED_ERROR}\n")
    assert result.category is Category.AGENT_DISK_FULL
    assert not result.prune_can_help
    assert result.evidence == LOCAL_FULL
    assert result.also_seen == (Category.REGISTRY_500,)


def test_an_unmarked_disk_full_does_not_beat_a_500() -> None:
    result = classify_text(f"Error: no space left on device\n{SEED_ERROR}\n")
    assert result.category is Category.REGISTRY_500
    assert result.also_seen == (Category.AGENT_DISK_FULL,)


def test_registry_disk_full_beats_a_full_agent() -> None:
    result = classify_text(f"{LOCAL_FULL}\n{REGISTRY_DETAIL}\n")
    assert result.category is Category.REGISTRY_DISK_FULL
    assert result.also_seen == (Category.AGENT_DISK_FULL,)


def test_500_beats_network_and_auth_noise() -> None:
    result = classify_text(f"{REFUSED}\nunauthorized: authentication required\n{SEED_ERROR}\n")
    assert result.category is Category.REGISTRY_500
    assert result.also_seen == (Category.AUTH, Category.NETWORK)


def test_auth_beats_network() -> None:
    assert classify_text(f"denied: requested access to the resource is denied\n{REFUSED}\n").category is AUTH


def test_evidence_is_the_last_matching_line() -> None:
    first = "ERROR: failed to push reg/app:1: unexpected status: 500 Internal Server Error"
    result = classify_text(f"{first}\nfiller\n{SEED_ERROR}\nmore filler\n")
    assert (result.line, result.evidence) == (3, SEED_ERROR)


# --- scanning mechanics ------------------------------------------------------------------------------------------


def test_chunk_boundaries_do_not_matter() -> None:
    text = SEED.read_text() + "\n" + REFUSED + "\n" + "x" * 50 + "\n"
    whole = classify_text(text)
    for size in (1, 7, 64, 4096):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert classify_chunks(pieces) == whole


def test_a_line_longer_than_the_carry_limit_is_still_scanned() -> None:
    huge = "x" * (MAX_LINE_CHARS + 10) + " " + SEED_ERROR
    result = classify_chunks([huge[i : i + 100_000] for i in range(0, len(huge), 100_000)])
    assert result.category is Category.REGISTRY_500


def test_a_long_progress_line_is_read_around_its_keywords() -> None:
    progress = "".join(f"\rDownloading {i}%" for i in range(100)) * 300
    line = progress + "\r" + LOCAL_FULL + progress + "\r" + SEED_ERROR + progress
    result = classify_text(f"start\n{line}\nend\n")
    assert result.category is Category.AGENT_DISK_FULL and result.line == 2
    assert result.also_seen == (Category.REGISTRY_500,)
    assert result.evidence is not None and LOCAL_FULL in result.evidence and len(result.evidence) <= 500


def test_a_long_line_without_carriage_returns_keeps_the_match_in_the_evidence() -> None:
    result = classify_text("x" * 100_000 + " " + SEED_ERROR + " " + "y" * 100_000 + "\n")
    assert result.category is Category.REGISTRY_500
    assert result.evidence is not None and SEED_ERROR in result.evidence


def test_empty_log_is_unknown() -> None:
    result = classify_text("")
    assert (result.category, result.lines_scanned, result.evidence) == (Category.UNKNOWN, 0, None)


def test_last_line_without_newline_counts() -> None:
    result = classify_text("one\ntwo\n" + SEED_ERROR)
    assert (result.line, result.lines_scanned) == (3, 3)


def test_characters_that_grow_when_lower_cased_keep_lines_aligned() -> None:
    result = classify_text("İstanbul İzmir\n" + SEED_ERROR + "\n")
    assert (result.line, result.evidence) == (2, SEED_ERROR)


def test_undecodable_bytes_are_replaced(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"\xff\xfe garbage \x80\n" + SEED_ERROR.encode() + b"\n")
    assert classify_file(log).category is Category.REGISTRY_500


def test_stream_input() -> None:
    assert classify_stream(io.StringIO(SEED.read_text())).category is Category.REGISTRY_500


def test_evidence_is_bounded() -> None:
    result = classify_text(SEED_ERROR + " " + "y" * 5000)
    assert result.evidence is not None and len(result.evidence) <= 500
    assert result.evidence.startswith(SEED_ERROR) and result.evidence.endswith("…")


def test_evidence_of_a_long_line_shows_the_deciding_match() -> None:
    url = "https://reg.example:5000/v2/team/app/blobs/uploads/7d0b?_state=" + "Q" * 900 + "&digest=sha256%3A1f2e"
    line = (
        f"[2024-01-02T03:04:05.123Z] ERROR: failed to solve: failed to push reg.example:5000/team/app:1: "
        f'unexpected status from PUT request to {url}: 500 Internal Server Error: {{"errors":[{{"code":"UNKNOWN",'
        f'"message":"unknown error","detail":"filesystem: write /var/lib/registry/docker/registry/v2/'
        f'repositories/team/app/_uploads/7d0b/data: no space left on device"}}]}}'
    )
    result = classify_text(line + "\n")
    assert result.category is Category.REGISTRY_DISK_FULL
    assert result.evidence is not None and len(result.evidence) <= 500
    assert result.evidence.startswith("…") and "no space left on device" in result.evidence


def test_50_megabyte_log(tmp_path: Path) -> None:
    filler = (
        "[2024-01-02T03:04:05.123Z] [INFO] Downloading from central: https://repo.maven.apache.org/maven2/org/"
        "apache/maven/plugins/maven-surefire-plugin/3.0.0/maven-surefire-plugin-3.0.0.pom\n"
        "12:34:56 b42928ca3a48: Retrying in 5 seconds\n"
        "Tests run: 1500, Failures: 0, Errors: 0, Skipped: 3, Time elapsed: 12.345 s - in com.example.AppTest\n"
        f"{ESC}[36m#12 [build 4/7] COPY . .{ESC}[0m\n"
    )
    block = filler * 2000
    repeats = 50 * 1024 * 1024 // len(block) + 1
    log = tmp_path / "big.log"
    with log.open("w") as out:
        for i in range(repeats):
            if i == repeats // 2:
                out.write(f"[2024-01-02T03:04:05.123Z] {SEED_ERROR}\n")
            out.write(block)
    assert log.stat().st_size >= 50 * 1024 * 1024
    result = classify_file(log)
    assert result.category is Category.REGISTRY_500
    assert result.line == (repeats // 2) * filler.count("\n") * 2000 + 1
    assert result.evidence == SEED_ERROR


# --- the command ---------------------------------------------------------------------------------------------------


def test_cli_console_log_file() -> None:
    result = run_cli("classify", "--console-log", str(SEED))
    assert result.code == 0, result.output
    assert result.stdout.startswith("registry-500: a registry prune can help")
    assert SEED_ERROR in result.stdout and "line 87" in result.stdout


@pytest.mark.parametrize("args", [(), ("--console-log", "-")])
def test_cli_reads_stdin(args: tuple[str, ...]) -> None:
    result = run_cli("classify", *args, stdin=SEED.read_text())
    assert result.code == 0, result.output
    assert "registry-500" in result.stdout and "(stdin, line 87)" in result.stdout


def test_cli_exits_10_when_pruning_cannot_help() -> None:
    result = run_cli("classify", "--console-log", str(FIXTURES / "docker-build-agent-disk-full.log"))
    assert result.code == 10, result.output
    assert result.stdout.startswith("agent-disk-full: a registry prune cannot help")


def test_cli_json_to_stdout_keeps_stdout_clean() -> None:
    result = run_cli("classify", "--json", "-", "--console-log", str(FIXTURES / "buildx-registry-disk-full.log"))
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["category"] == "registry-disk-full"
    assert report["prune_can_help"] is True
    assert report["also_seen"] == ["registry-500"]
    assert "no space left on device" in report["evidence"]
    assert report["exit_code"] == 0 and report["command"] == "classify"
    assert "registry-disk-full: a registry prune can help" in result.stderr


def test_cli_json_file(tmp_path: Path) -> None:
    target = tmp_path / "classify.json"
    result = run_cli("classify", "--json", str(target), stdin="unauthorized: authentication required\n")
    assert result.code == 10
    report = json.loads(target.read_text())
    assert (report["category"], report["prune_can_help"], report["source"], report["line"]) == (
        "auth",
        False,
        "stdin",
        1,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--console-log", "/nonexistent/console.log"), "no such file"),
        (("--console-log", str(FIXTURES)), "is a directory"),
        (("--console-log", str(SEED), "--jenkins-build", "team/app#1"), "not both"),
        (("--jenkins-build", "team/app"), "JOB#NUMBER"),
        (("--jenkins-build", "team/app#1"), "--jenkins-url"),
        (("--jenkins-token", "CANARY-JENKINS-TOKEN-1234"), "refusing --jenkins-token"),
    ],
)
def test_cli_bad_input_exits_2(args: tuple[str, ...], message: str) -> None:
    result = run_cli("classify", *args, stdin="")
    assert result.code == 2, result.output
    assert message in result.stderr
    assert "CANARY-JENKINS-TOKEN" not in result.output


def test_cli_refuses_a_terminal_on_stdin() -> None:
    primary, secondary = os.openpty()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "pipeline_step", "classify"],
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert completed.returncode == 2
    assert "no log to classify" in completed.stderr


def _jenkins_env(jenkins: FakeJenkins, token: str = TOKEN) -> dict[str, str]:
    return {"JENKINS_URL": jenkins.url, "JENKINS_API_TOKEN": token}


def test_cli_reads_a_jenkins_build_by_permalink() -> None:
    with FakeJenkins() as jenkins:
        jenkins.add_build("team/app", 41, SEED.read_text())
        jenkins.add_build("team/app", 42, "Finished: SUCCESS\n", result="SUCCESS")
        result = run_cli(
            "classify",
            "--jenkins-user",
            USER,
            "--jenkins-build",
            "team/app#lastFailedBuild",
            "--json",
            "-",
            env=_jenkins_env(jenkins),
        )
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["source"], report["category"], report["line"]) == ("jenkins:team/app#41", "registry-500", 87)
    assert TOKEN not in result.output
    paths = [r.path for r in jenkins.requests]
    assert "/job/team/job/app/41/consoleText" in paths
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in jenkins.requests)


def test_cli_jenkins_wrong_token_exits_4_without_leaking_it() -> None:
    canary = "CANARY-WRONG-JENKINS-TOKEN-99"
    with FakeJenkins() as jenkins:
        jenkins.add_build("team/app", 41, SEED.read_text())
        result = run_cli(
            "-vv",
            "classify",
            "--jenkins-user",
            USER,
            "--jenkins-build",
            "team/app#41",
            env=_jenkins_env(jenkins, canary),
        )
    assert result.code == 4, result.output
    assert "refused the credentials" in result.stderr and "HTTP 401" in result.stderr
    assert canary not in result.output


def test_cli_jenkins_unreachable_exits_4() -> None:
    result = run_cli(
        "classify",
        "--jenkins-url",
        f"http://127.0.0.1:{free_port()}",
        "--jenkins-user",
        USER,
        "--jenkins-build",
        "team/app#41",
        env={"JENKINS_API_TOKEN": TOKEN},
    )
    assert result.code == 4, result.output
    assert "cannot reach Jenkins" in result.stderr
    assert TOKEN not in result.output
