"""One runner for every external program (autodevhub_cli/core/adapters/process.py): each start
and end is logged (AUTODEVHUB_DEBUG=1 shows them), and every way a program fails is a ToolError
naming the command, never a traceback."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.errors import ToolError
from tests.helpers import REPO
from tests.images.conftest import logged as log_lines


@pytest.fixture()
def logged() -> Iterator[list[str]]:
    with log_lines("autodevhub.process") as lines:
        yield lines


def test_a_program_that_is_not_installed(logged: list[str]) -> None:
    with pytest.raises(ToolError) as raised:
        process.run(["no-such-program-x1"], what="The tool", missing_hint="Install it.")
    assert "The tool could not be started: no-such-program-x1 is not installed" in str(raised.value)
    assert raised.value.returncode is None and "Install it." in str(raised.value)
    assert logged == ["process: no-such-program-x1"]


def test_a_program_past_its_time_limit(logged: list[str]) -> None:
    with pytest.raises(ToolError) as raised:
        process.run(["sh", "-c", "echo started; sleep 5"], what="The sleeper", timeout=0.5)
    assert "The sleeper did not finish within 0.5s" in str(raised.value)
    assert "started" in str(raised.value), "the output so far"
    assert "stopped after" in logged[-1] and "time limit" in logged[-1]


def test_a_failing_program_names_its_exit_code_and_output(logged: list[str]) -> None:
    with pytest.raises(ToolError) as raised:
        process.run(["sh", "-c", "echo it broke >&2; exit 3"], what="The step")
    text = str(raised.value)
    assert "The step failed." in text and "(exit code 3)" in text and "it broke" in text
    assert logged[-1].startswith("process: sh exited 3 in ")
    assert process.run(["sh", "-c", "exit 3"], what="x", check=False).returncode == 3


def test_a_secret_on_the_command_line_is_shown_as_given(logged: list[str]) -> None:
    with pytest.raises(ToolError) as raised:
        process.run(["sh", "-c", "exit 1", "s3cret"], what="The tool", shown=["sh", "***"])
    assert "s3cret" not in str(raised.value) and all("s3cret" not in line for line in logged)


def test_no_module_starts_a_program_another_way() -> None:
    """A test that adds one: every subprocess call goes through the runner, so that
    AUTODEVHUB_DEBUG=1 logs each."""
    starts = {"run", "Popen", "call", "check_call", "check_output"}
    found = []
    for path in sorted((REPO / "autodevhub_cli").rglob("*.py")):
        if path.name == "process.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in starts
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("subprocess", "os")
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []


def test_debug_logs_every_program_a_command_starts() -> None:
    env = {**os.environ, "AUTODEVHUB_DEBUG": "1", "AUTODEVHUB_NO_CACHE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "autodevhub_cli", "validate", "--env", "dev", "-C", str(REPO)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "autodevhub.process process: " in proc.stderr and "config --quiet" in proc.stderr
    assert "autodevhub.process process: " in proc.stderr and " exited 0 in " in proc.stderr
