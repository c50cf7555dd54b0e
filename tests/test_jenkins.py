"""The python-jenkins wrapper against a local fake Jenkins: console, builds, descriptions with crumbs, errors."""

from __future__ import annotations

import argparse
import base64
import logging
import socket
from collections.abc import Iterator

import pytest

from pipeline_step.cli import integration_options
from pipeline_step.cli.parser import Parser
from pipeline_step.errors import ExitCode, UsageError
from pipeline_step.integrations.jenkins import (
    BuildRef,
    JenkinsClient,
    JenkinsError,
    current_build,
    parse_build_ref,
)
from pipeline_step.support.redact import MASK, redact
from tests.support.fake_jenkins import CRUMB, CRUMB_FIELD, TOKEN, USER, FakeJenkins
from tests.support.registry import free_port

CONSOLE = (
    "Started by user ci\n+ docker push reg:5000/team/app:1\nreceived unexpected HTTP status: 500\nFinished: FAILURE\n"
)


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    with FakeJenkins() as server:
        server.add_build("team/app", 40, "Finished: SUCCESS\n", result="SUCCESS")
        server.add_build("team/app", 41, CONSOLE)
        server.add_build("team/app", 42, "Finished: SUCCESS\n", result="SUCCESS")
        server.add_build("platform/ci images/base", 7, "base console\n")
        yield server


def client(server: FakeJenkins, token: str = TOKEN, user: str | None = USER) -> JenkinsClient:
    return JenkinsClient(server.url, user, token if user else None, timeout=5)


def _assert_secret_free(error: BaseException, *secrets: str) -> None:
    for secret in secrets or (TOKEN,):
        assert secret not in str(error)
        assert secret not in repr(error.args)


# --- build references ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app#42", BuildRef("app", 42)),
        ("team/app#1", BuildRef("team/app", 1)),
        ("/team/app/#3", BuildRef("team/app", 3)),
        ("platform/ci images/base#7", BuildRef("platform/ci images/base", 7)),
        ("team/app#lastFailedBuild", BuildRef("team/app", "lastFailedBuild")),
        ("team/app#lastfailedbuild", BuildRef("team/app", "lastFailedBuild")),
        (" team/app#lastBuild ", BuildRef("team/app", "lastBuild")),
    ],
)
def test_parse_build_ref(text: str, expected: BuildRef) -> None:
    assert parse_build_ref(text) == expected
    assert str(expected) == f"{expected.job}#{expected.number}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team/app", "JOB#NUMBER"),
        ("team/app#", "JOB#NUMBER"),
        ("#42", "JOB#NUMBER"),
        ("team//app#4", "empty job name"),
        ("team/app#0", "start at 1"),
        ("team/app#newest", "unknown permalink"),
        ("team/app#4#5", "JOB#NUMBER"),
        ("job/team/job/app#4", "URL path"),
    ],
)
def test_bad_build_refs(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_build_ref(text)
    assert message in str(caught.value)


def test_current_build_from_env() -> None:
    assert current_build({"JOB_NAME": "team/app", "BUILD_NUMBER": "41"}) == BuildRef("team/app", 41)
    assert current_build({"JOB_NAME": "team/app"}) is None
    assert current_build({}) is None


# --- reading and writing -----------------------------------------------------------------------------------------


def test_console_text(jenkins: FakeJenkins) -> None:
    assert client(jenkins).console_text("team/app", 41) == CONSOLE
    paths = [r.path for r in jenkins.requests]
    assert paths == ["/crumbIssuer/api/json", "/job/team/job/app/41/consoleText"]
    expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    assert all(r.headers["authorization"] == expected for r in jenkins.requests)


def test_folders_and_spaces_are_encoded(jenkins: FakeJenkins) -> None:
    assert client(jenkins).console_text("platform/ci images/base", 7) == "base console\n"
    assert jenkins.requests[-1].path == "/job/platform/job/ci%20images/job/base/7/consoleText"


def test_permalinks_resolve_to_numbers(jenkins: FakeJenkins) -> None:
    jenkins_client = client(jenkins)
    assert jenkins_client.resolve(BuildRef("team/app", "lastFailedBuild")) == BuildRef("team/app", 41)
    assert jenkins_client.resolve(BuildRef("team/app", "lastBuild")) == BuildRef("team/app", 42)
    assert jenkins_client.resolve(BuildRef("team/app", 40)) == BuildRef("team/app", 40)
    assert "/job/team/job/app/api/json?depth=0" in [r.path for r in jenkins.requests]
    assert jenkins_client.console_text("team/app", "lastFailedBuild") == CONSOLE


def test_missing_permalink_target(jenkins: FakeJenkins) -> None:
    with pytest.raises(JenkinsError) as caught:
        client(jenkins).resolve(BuildRef("team/app", "lastUnstableBuild"))
    assert "has no lastUnstableBuild" in str(caught.value)


def test_build_info(jenkins: FakeJenkins) -> None:
    info = client(jenkins).build("team/app", 41)
    assert (info.number, info.result, info.building, info.description) == (41, "FAILURE", False, None)
    assert info.url == f"{jenkins.url}/job/team/job/app/41/"


def test_set_description_sends_the_crumb(jenkins: FakeJenkins) -> None:
    jenkins_client = client(jenkins)
    jenkins_client.set_description("team/app", 41, "registry-prune: pruned 12 tags & retried <ok>")
    post = next(r for r in jenkins.requests if r.method == "POST")
    assert post.path == "/job/team/job/app/41/submitDescription"
    assert post.headers[CRUMB_FIELD.lower()] == CRUMB
    assert post.headers["authorization"].startswith("Basic ")
    assert post.form() == {"description": ["registry-prune: pruned 12 tags & retried <ok>"]}
    assert jenkins_client.build("team/app", 41).description == "registry-prune: pruned 12 tags & retried <ok>"
    assert [r.path for r in jenkins.requests].count("/crumbIssuer/api/json") == 1  # fetched once, reused


def test_set_description_without_a_crumb_issuer() -> None:
    with FakeJenkins(crumbs=False) as server:
        server.add_build("app", 3, "x\n")
        client(server).set_description("app", 3, "hello")
        post = next(r for r in server.requests if r.method == "POST")
        assert CRUMB_FIELD.lower() not in post.headers
        assert server.jobs["app"][0].description == "hello"


def test_anonymous_read() -> None:
    with FakeJenkins(anonymous_read=True) as server:
        server.add_build("app", 3, "anonymous console\n")
        assert JenkinsClient(server.url).console_text("app", 3) == "anonymous console\n"
        assert all("authorization" not in r.headers for r in server.requests)


# --- errors --------------------------------------------------------------------------------------------------------


def test_wrong_token(jenkins: FakeJenkins) -> None:
    wrong = "CANARY-WRONG-TOKEN-777"
    with pytest.raises(JenkinsError) as caught:
        client(jenkins, token=wrong).console_text("team/app", 41)
    error = caught.value
    assert error.exit_code == ExitCode.REGISTRY
    assert "refused the credentials of ci-bot (HTTP 401)" in str(error)
    assert "--jenkins-token-env" in str(error.hint)
    _assert_secret_free(error, wrong, TOKEN)
    assert error.__suppress_context__  # python-jenkins' message (with the response body) is not chained


def test_anonymous_forbidden(jenkins: FakeJenkins) -> None:
    with pytest.raises(JenkinsError) as caught:
        JenkinsClient(jenkins.url).console_text("team/app", 41)
    assert "forbids anonymous to read the console of team/app#41 (HTTP 403)" in str(caught.value)


@pytest.mark.parametrize(("job", "number"), [("team/app", 99), ("team/nope", 1), ("nope", 1)])
def test_missing_build(jenkins: FakeJenkins, job: str, number: int) -> None:
    for call in (client(jenkins).console_text, client(jenkins).build):
        with pytest.raises(JenkinsError) as caught:
            call(job, number)
        assert f"has no build {job}#{number}" in str(caught.value)


def test_unreachable() -> None:
    unreachable = JenkinsClient(f"http://{USER}:{TOKEN}@127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(JenkinsError) as caught:
        unreachable.console_text("team/app", 41)
    assert "cannot reach Jenkins" in str(caught.value) and "Connection refused" in str(caught.value)
    assert unreachable.url.startswith("http://127.0.0.1:")
    _assert_secret_free(caught.value)


def test_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        slow = JenkinsClient(f"http://127.0.0.1:{port}", USER, TOKEN, timeout=0.3)
        with pytest.raises(JenkinsError) as caught:
            slow.console_text("team/app", 41)
    assert "did not answer within 0.3s" in str(caught.value)


def test_a_login_page_instead_of_jenkins() -> None:
    with FakeJenkins(login_page=True) as server, pytest.raises(JenkinsError) as caught:
        client(server).console_text("team/app", 41)
    assert "not JSON" in str(caught.value) and "root URL" in str(caught.value)


def test_secrets_are_registered(jenkins: FakeJenkins) -> None:
    client(jenkins)
    assert redact(f"token {TOKEN}") == f"token {MASK}"
    assert redact(base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()) == MASK


@pytest.mark.parametrize("url", ["jenkins.example:8080", "ftp://jenkins.example/", "http://jenkins.example:80a/"])
def test_bad_url(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        JenkinsClient(url)
    assert "is not an http(s) URL" in str(caught.value)


# --- flags -------------------------------------------------------------------------------------------------------


def _jenkins_args(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="test")
    integration_options.add_jenkins_options(parser)
    return parser.parse_args(list(argv))


def test_jenkins_from_args(jenkins: FakeJenkins) -> None:
    assert integration_options.jenkins_from_args(_jenkins_args(), {}) is None
    env = {"JENKINS_URL": jenkins.url, "JENKINS_API_TOKEN": TOKEN}
    from_env = integration_options.jenkins_from_args(_jenkins_args("--jenkins-user", USER), env)
    assert from_env is not None and from_env.console_text("team/app", 41) == CONSOLE
    other = integration_options.jenkins_from_args(
        _jenkins_args("--jenkins-url", jenkins.url, "--jenkins-token-env", "CI_TOKEN"),
        {"JENKINS_USER": USER, "CI_TOKEN": TOKEN},
    )
    assert other is not None and other.user == USER
    ref = integration_options.build_ref_from_args(_jenkins_args("--jenkins-build", "team/app#41"))
    assert ref == BuildRef("team/app", 41)


def test_jenkins_user_without_token() -> None:
    with pytest.raises(UsageError) as caught:
        integration_options.jenkins_from_args(_jenkins_args("--jenkins-user", USER), {"JENKINS_URL": "http://ci"})
    assert "$JENKINS_API_TOKEN is empty" in str(caught.value)


def test_stray_token_is_not_a_login(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        made = integration_options.jenkins_from_args(
            _jenkins_args(), {"JENKINS_URL": "http://ci", "JENKINS_API_TOKEN": TOKEN}
        )
    assert made is not None and made.user is None
    assert "no Jenkins user was given" in caplog.text and TOKEN not in caplog.text


def test_jenkins_token_flag_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        _jenkins_args("--jenkins-token", TOKEN)
    assert "refusing --jenkins-token" in str(caught.value)
    assert TOKEN not in str(caught.value)
