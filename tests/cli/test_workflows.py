"""The CI/CD workflow calls only real autodevhub commands with options they accept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from typer.main import get_command

from autodevhub_cli.main import app
from tests.helpers import REPO, run_cli

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _invocations(path: Path) -> list[list[str]]:
    data = yaml.safe_load(path.read_text())
    found = []
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            script = step.get("run", "")
            for line in script.splitlines():
                line = line.split(">", 1)[0].split("|", 1)[0].strip()
                if line.startswith("autodevhub "):
                    found.append(shlex.split(line)[1:])
    return found


def _help_options(command: str) -> set[str]:
    """The options `autodevhub COMMAND --help` lists (the real CLI, as a user sees it)."""
    code, out, err = run_cli(command, "--help")
    assert code == 0, f"autodevhub {command} --help failed: {err}"
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", out))


def _check(words: list[str]) -> None:
    name, *rest = words
    group = get_command(app)
    command = group.get_command(click.Context(group), name)  # type: ignore[attr-defined]
    assert command is not None, f"autodevhub has no command {name!r}"
    listed = _help_options(name)
    flags = {opt for p in command.params if getattr(p, "is_flag", False) for opt in p.opts}
    flags |= {opt for p in command.params for opt in getattr(p, "secondary_opts", [])}
    i = 0
    while i < len(rest):
        word = rest[i]
        assert word.startswith("-"), f"autodevhub {name}: unexpected argument {word!r}"
        flag = word.split("=", 1)[0]
        assert flag in listed, f"autodevhub {name} has no option {flag}"
        if flag not in flags and "=" not in word:
            i += 1
            assert i < len(rest), f"autodevhub {name} {flag} needs a value"
        i += 1


def test_there_is_a_pipeline() -> None:
    assert WORKFLOWS, "no workflow in .github/workflows"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_autodevhub_invocation_is_valid(path: Path) -> None:
    invocations = _invocations(path)
    assert invocations, f"{path.name} calls no autodevhub command"
    for words in invocations:
        _check(words)


def test_the_pipeline_deploys_staging_then_prod_behind_approval() -> None:
    data = yaml.safe_load((REPO / ".github" / "workflows" / "pipeline.yml").read_text())
    jobs = data["jobs"]
    assert jobs["staging"]["needs"] == "build" and jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "production"
    commands = [" ".join(words) for words in _invocations(REPO / ".github/workflows/pipeline.yml")]
    assert any(re.match(r"deploy --env prod", c) for c in commands)
    assert any(c.startswith("promote --env prod") for c in commands)
    assert any(c.startswith("smoke-test --env staging") for c in commands)


def test_the_checker_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError, match="has no option --bogus"):
        _check(["deploy", "--env", "prod", "--bogus"])
    with pytest.raises(AssertionError, match="has no command"):
        _check(["launch", "--env", "prod"])


def test_step_summary_is_written_for_ci(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.md"
    code, _, err = run_cli(
        "smoke-test",
        "--env",
        "dev",
        "--url",
        "frontend=http://127.0.0.1:9",
        "--timeout",
        "0.5",
        "-C",
        str(REPO),
        env={"GITHUB_STEP_SUMMARY": str(summary_file)},
    )
    assert code == 3, err
    text = summary_file.read_text()
    assert "### autodevhub smoke-test --env dev: FAILED" in text
    assert "| frontend page | **FAIL** |" in text


SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_token_is_least_privilege_and_secrets_reach_only_their_steps(path: Path) -> None:
    """No default token rights; each job names its own; registry credentials and kubeconfigs
    only in the env of the steps that use them (never the job running pull-request code), and
    no secret expanded inside a script."""
    text = path.read_text()
    data = yaml.safe_load(text)
    assert data.get("permissions") == {}, "the workflow must start with `permissions: {}`"
    assert "REGISTRY_PASSWORD" not in (data.get("env") or {})
    for name, job in data["jobs"].items():
        assert "permissions" in job, f"job {name} names no permissions"
        assert "write" not in str(job["permissions"]), f"job {name}: {job['permissions']}"
        assert "secrets." not in str(job.get("env", {})), f"job {name} puts secrets in job env"
        for step in job.get("steps", []):
            assert "secrets." not in step.get("run", ""), f"job {name}: a secret in a script"
            if "REGISTRY_PASSWORD" in str(step.get("env", {})):
                assert name != "test", "the test job runs pull-request code"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_their_version(path: Path) -> None:
    lines = path.read_text().splitlines()
    uses = [line.strip() for line in lines if line.strip().startswith(("- uses:", "uses:"))]
    assert uses
    for line in uses:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        assert SHA_PIN.match(ref.strip()), f"not pinned by commit: {line}"
        assert re.match(r"^\s*v\d+\.\d+\.\d+$", comment), f"no version comment: {line}"
    data = yaml.safe_load(path.read_text())
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False
