"""Hostile and mistaken input to `smoke-test` and `secrets set`, through the real CLI: an unusable
--timeout is refused (exit 2), Rich markup from a server or a check name is printed literally
(exit 0 when the check passes, 3 when it fails), and no secret reaches stdout, stderr, the job
summary or the debug log, while the message still says what is wrong."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import copy_project, run_cli
from tests.hostile_http import MARKUP, HostileServer


@pytest.fixture()
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture()
def outputs(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Where the tool writes besides stdout and stderr: the job summary and the traceback file;
    with AUTODEVHUB_DEBUG=1 its own log goes to stderr (set up afresh for each command)."""
    logger = logging.getLogger("autodevhub")
    saved = (logger.handlers[:], logger.level)
    logger.handlers.clear()
    state = tmp_path / "state"
    state.mkdir()
    yield {"summary": tmp_path / "summary.md", "debug_log": state / "autodevhub-debug.log"}
    logger.handlers[:], level = saved
    logger.setLevel(level)


def _run(outputs: dict[str, Path], *args: str, env: dict[str, str] | None = None) -> Result:
    logging.getLogger("autodevhub").handlers.clear()  # configure_logging binds this stderr
    started = time.monotonic()
    code, out, err = run_cli(
        *args,
        env={
            "AUTODEVHUB_DEBUG": "1",
            "XDG_STATE_HOME": str(outputs["debug_log"].parent),
            "GITHUB_STEP_SUMMARY": str(outputs["summary"]),
            "COLUMNS": "2000",  # Rich wraps nothing: the table's text can be searched whole
            **(env or {}),
        },
    )
    files = [p.read_text() for p in outputs.values() if p.exists()]
    return Result(code, out, err, "\n".join(files), time.monotonic() - started)


class Result:
    """What a command printed and wrote."""

    def __init__(self, code: int, out: str, err: str, files: str, seconds: float) -> None:
        self.code, self.out, self.err, self.files, self.seconds = code, out, err, files, seconds

    def clean(self, code: int, *words: str) -> None:
        """Exit `code`, no traceback, every word in stderr."""
        assert self.code == code, (self.out, self.err)
        for text in (self.out, self.err):
            assert "Traceback" not in text and "Unexpected error" not in text, text
        for word in words:
            assert word in self.err, f"{word!r} not in stderr: {self.err}"

    def hides(self, *secrets: str) -> None:
        """No secret in stdout, stderr, the job summary or the debug log."""
        for secret in secrets:
            for where, text in (("stdout", self.out), ("stderr", self.err), ("files", self.files)):
                assert secret not in text, f"{secret!r} in {where}: {text}"


def _smoke(project: Path, url: str, checks: str, *more: str) -> list[str]:
    return [
        "smoke-test",
        "--env",
        "dev",
        "-C",
        str(project),
        "--url",
        f"frontend={url}",
        "--set",
        "smoke.probes=false",
        "--set",
        f"smoke.checks={checks}",
        "--timeout",
        "2",
        *more,
    ]


# --- A: an unusable --timeout is refused before anything runs ----------------------------------

TIMEOUTS = [
    (["smoke-test", "--env", "dev", "--timeout", "nan"], "--timeout nan"),
    (["smoke-test", "--env", "dev", "--timeout", "inf"], "--timeout inf"),
    (["smoke-test", "--env", "dev", "--timeout", "-1"], "--timeout -1"),
    (["smoke-test", "--env", "dev", "--timeout", "0"], "--timeout 0"),
    (["smoke-test", "--env", "dev", "--timeout", "1e9"], "--timeout 1e+09"),
    (["deploy", "--env", "dev", "--timeout", "nan"], "--timeout nan"),
    (["rollback", "--env", "dev", "--timeout", "-inf"], "--timeout -inf"),
    (["promote", "--env", "dev", "--timeout", "0"], "--timeout 0"),
    (["secrets", "set", "--env", "dev", "--timeout", "nan"], "--timeout nan"),
    (["secrets", "rotate", "--env", "dev", "key", "--timeout", "inf"], "--timeout inf"),
]


@pytest.mark.parametrize(("args", "shown"), TIMEOUTS, ids=lambda v: " ".join(v)[:40])
def test_an_unusable_timeout_is_refused(
    project: Path, outputs: dict[str, Path], args: list[str], shown: str
) -> None:
    result = _run(outputs, *args, "-C", str(project))
    result.clean(2, shown, "is not a usable number of seconds", "greater than 0")
    assert result.seconds < 10


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("smoke.timeout_seconds=inf", "smoke.timeout_seconds"),
        ("smoke.timeout_seconds=nan", "smoke.timeout_seconds"),
        (
            "smoke.checks=[{name: p, component: frontend, path: /, latency: {budget_ms: inf}}]",
            "smoke.checks.0.latency.budget_ms",
        ),
    ],
)
def test_an_unusable_deadline_in_the_environment_is_refused(
    project: Path, outputs: dict[str, Path], setting: str, field: str
) -> None:
    result = _run(outputs, "smoke-test", "--env", "dev", "-C", str(project), "--set", setting)
    result.clean(2, field, "finite number")


def test_a_dripping_server_fails_the_check_by_the_deadline(
    project: Path, outputs: dict[str, Path], hostile: HostileServer
) -> None:
    checks = "[{name: drip, component: frontend, path: '/drip?every=0.5'}]"
    result = _run(outputs, *_smoke(project, hostile.url, checks))
    result.clean(3, "drip: GET", "no complete answer within the deadline")
    assert result.seconds < 10


# --- B: markup from outside is printed literally, and the exit code is the check's ---------------

MARKUP_NAME = "[/x] [bold page"


@pytest.mark.parametrize("output", ["text", "json"])
def test_markup_in_a_passing_check_is_printed_literally(
    project: Path, outputs: dict[str, Path], hostile: HostileServer, output: str
) -> None:
    checks = json.dumps(
        [
            {
                "name": MARKUP_NAME,
                "component": "frontend",
                "path": "/markup",
                "expect": {"contains": "[red]x[/red]"},
            }
        ]
    )
    result = _run(outputs, *_smoke(project, hostile.url, checks, "-o", output))
    result.clean(0)
    if output == "json":
        assert json.loads(result.out)["checks"][0]["name"] == MARKUP_NAME
    else:
        assert MARKUP_NAME in result.out and "ok" in result.out
    assert MARKUP_NAME in result.err  # the progress line


@pytest.mark.parametrize("output", ["text", "json"])
def test_markup_in_a_failing_check_is_printed_literally(
    project: Path, outputs: dict[str, Path], hostile: HostileServer, output: str
) -> None:
    checks = json.dumps(
        [{"name": MARKUP_NAME, "component": "frontend", "path": "/markup?status=500"}]
    )
    result = _run(outputs, *_smoke(project, hostile.url, checks, "-o", output))
    result.clean(3, "1 smoke check(s) failed", MARKUP_NAME, "answered 500, expected 200", MARKUP)
    if output == "json":
        assert MARKUP in json.loads(result.out)["checks"][0]["detail"]
    else:
        assert MARKUP in result.out and "FAILED" in result.out


def test_markup_in_the_live_progress_is_shown_literally() -> None:
    from rich.console import Console

    from autodevhub_cli.commands.progress import Progress

    progress = Progress(["[/x]"])
    progress.status["[/x]"] = "FAILED: [bold [/red] answered"
    console = Console(record=True, width=200)
    console.print(progress._table())
    assert "[/x]  FAILED: [bold [/red] answered" in console.export_text()


# --- C: secrets never shown ---------------------------------------------------------------------

SECRET = "tok-SECRET-7a1f9c"


def test_a_header_from_an_environment_variable_that_is_not_yaml(
    project: Path, outputs: dict[str, Path], hostile: HostileServer
) -> None:
    checks = "[{name: page, component: frontend, path: /}]"
    result = _run(
        outputs,
        *_smoke(project, hostile.url, checks),
        env={"AUTODEVHUB__SMOKE__HEADERS__AUTHORIZATION": f"[Bearer {SECRET}"},
    )
    result.clean(
        2,
        "environment variable AUTODEVHUB__SMOKE__HEADERS__AUTHORIZATION",
        "not a valid YAML scalar or list",
    )
    result.hides(SECRET)


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize(
    "variable",
    ["AUTODEVHUB__SMOKE__HEADERS__AUTHORIZATION", "AUTODEVHUB__SMOKE__HEADERS__X_API_KEY"],
)
def test_a_header_from_an_environment_variable_echoed_by_the_server(
    project: Path, outputs: dict[str, Path], hostile: HostileServer, variable: str, output: str
) -> None:
    checks = "[{name: page, component: frontend, path: '/echo?status=401'}]"
    result = _run(
        outputs, *_smoke(project, hostile.url, checks, "-o", output), env={variable: SECRET}
    )
    result.clean(3, "page: GET", "answered 401, expected 200")
    result.hides(SECRET)


def test_a_header_value_http_does_not_allow(
    project: Path, outputs: dict[str, Path], hostile: HostileServer
) -> None:
    checks = "[{name: page, component: frontend, path: /}]"
    result = _run(
        outputs,
        *_smoke(project, hostile.url, checks),
        env={"AUTODEVHUB__SMOKE__HEADERS__AUTHORIZATION": f"Bearer {SECRET}\u2019"},
    )
    result.clean(3, "the value of header Authorization holds a character HTTP does not allow")
    result.hides(SECRET)


def test_a_variable_with_a_line_break_in_a_header(
    project: Path, outputs: dict[str, Path], hostile: HostileServer
) -> None:
    checks = "[{name: page, component: frontend, path: /}]"
    result = _run(
        outputs,
        *_smoke(project, hostile.url, checks),
        env={"SMOKE_API_KEY": f"{SECRET}\nInjected: yes"},
    )
    result.clean(3, "the value of header Authorization holds a character HTTP does not allow")
    result.hides(SECRET)


@pytest.mark.parametrize("output", ["text", "json"])
def test_env_expansions_in_a_path_and_a_header(
    project: Path, outputs: dict[str, Path], hostile: HostileServer, output: str
) -> None:
    checks = json.dumps(
        [
            {
                "name": "signed",
                "component": "frontend",
                "path": "/echo?status=404&sig=${env:SMOKE_SIG}",
                "headers": {"X-Trace": "${env:SMOKE_TRACE}"},
            }
        ]
    )
    trace = "trace-SECRET-33e0"
    result = _run(
        outputs,
        *_smoke(project, hostile.url, checks, "-o", output),
        env={"SMOKE_SIG": SECRET, "SMOKE_TRACE": trace, "SMOKE_API_KEY": "api-SECRET-5b2c"},
    )
    result.clean(3, "signed: GET", "/echo?status=404&sig=***", "answered 404, expected 200")
    result.hides(SECRET, trace, "api-SECRET-5b2c")
    assert hostile.requests == [f"GET /echo?status=404&sig={SECRET}"] * 3, "the real value is sent"


@pytest.mark.parametrize("output", ["text", "json"])
def test_userinfo_in_a_url(
    project: Path, outputs: dict[str, Path], hostile: HostileServer, output: str
) -> None:
    password = "pw-SECRET-456"
    url = hostile.url.replace("http://", f"http://smoke:{password}@")
    basic = base64.b64encode(f"smoke:{password}".encode()).decode()
    checks = "[{name: page, component: frontend, path: '/echo?status=404'}]"
    result = _run(outputs, *_smoke(project, url, checks, "-o", output))
    result.clean(3, "page: GET http://smoke:***@127.0.0.1:", "answered 404")
    result.hides(password, basic)
    if output == "json":
        assert json.loads(result.out)["urls"]["frontend"].startswith("http://smoke:***@127.0.0.1:")
    else:
        assert "frontend http://smoke:***@127.0.0.1:" in result.out


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("bad name=http://u:{s}@127.0.0.1:9", ["'bad name' is not a component name"]),
        ("frontend=http://u:{s}@[::1", ["the URL has no valid host and port"]),
        ("frontend=ftp://u:{s}@127.0.0.1", ["is not NAME=URL", "ftp://u:***@127.0.0.1"]),
        ("nosuch=http://u:{s}@127.0.0.1:9", ["smoke.urls.nosuch", "no component named 'nosuch'"]),
    ],
)
def test_a_bad_url_with_userinfo(
    project: Path, outputs: dict[str, Path], url: str, words: list[str]
) -> None:
    result = _run(
        outputs, "smoke-test", "--env", "dev", "-C", str(project), "--url", url.format(s=SECRET)
    )
    result.clean(2, *words)
    result.hides(SECRET)


PASTED = "sk-ant-api03-SECRET-Zx81"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"{PASTED}\n", ["line 1: expected KEY=VALUE", "the value itself is not shown"]),
        (
            f"database-url=postgresql://x\nANTHROPIC_API_KEY: {PASTED}=more\n",
            ["line 2: what comes before the first '=' is not a key name", "is not shown"],
        ),
        (
            base64.b64encode(PASTED.encode()).decode().rstrip("=") + "==\n",
            [
                "1 of the 1 key(s) given for Secret autodevhub-secrets is not referenced",
                "1 key not shown, in case it is a value pasted where a key belongs",
            ],
        ),
        (
            f"anthropic-api-kye={PASTED}\n{PASTED.replace('-', '')}=\n",
            [
                "2 of the 2 key(s)",
                "anthropic-api-kye (did you mean anthropic-api-key?)",
                "1 key not shown",
            ],
        ),
    ],
    ids=["no-equals", "value-where-the-key-belongs", "base64-value-as-key", "typo-and-value"],
)
def test_a_pasted_value_in_a_secrets_file(
    project: Path, outputs: dict[str, Path], tmp_path: Path, text: str, words: list[str]
) -> None:
    values = tmp_path / "values.env"
    values.write_text(text)
    result = _run(
        outputs,
        "secrets",
        "set",
        "--env",
        "staging",
        "--from-file",
        str(values),
        "-C",
        str(project),
        "--no-verify",
    )
    result.clean(2, *words)
    result.hides(
        PASTED, PASTED.replace("-", ""), base64.b64encode(PASTED.encode()).decode().rstrip("=")
    )
