"""Hostile and mistaken command lines: broken kubeconfigs, `init` where a path is in the way,
options out of range, output into a closed pipe. Each: a clear error with a non-zero exit, never
"Unexpected error", and nothing half-written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.cases import Case, run_case


def kubeconfig(text: str) -> object:
    def setup(project: Path) -> None:
        (project / "kubeconfig").write_text(text)

    return setup


KUBECONFIGS = {
    "not-yaml": "garbage: [\n",
    "a-list": "- a\n- b\n",
    "clusters-a-number": "apiVersion: v1\nkind: Config\nclusters: 5\n",
    "no-current-context": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n",
    "context-without-cluster": (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: nope, user: u}}]\nclusters: []\nusers: []\n"
    ),
    "binary": "\x00\x01\x02",
    "empty": "",
}

CASES: list[Case] = [
    Case(
        f"kubeconfig-{name}",
        ["status", "--env", "staging", "--kubeconfig", "{project}/kubeconfig"],
        setup=kubeconfig(text),
        words=["Kubernetes configuration", "{project}/kubeconfig"],
    )
    for name, text in KUBECONFIGS.items()
]
CASES += [
    Case(
        "kubeconfig-missing",
        ["history", "--env", "staging", "--kubeconfig", "{tmp}/nope"],
        words=["{tmp}/nope"],
    ),
    Case(
        "kubeconfig-a-folder",
        ["status", "--env", "staging", "--kubeconfig", "{tmp}"],
        words=["Kubernetes configuration"],
    ),
    Case(
        "kubeconfig-unknown-context",
        [
            "status",
            "--env",
            "staging",
            "--kubeconfig",
            "{project}/kubeconfig",
            "--context",
            "nope",
        ],
        setup=kubeconfig(KUBECONFIGS["context-without-cluster"]),
        words=["context 'nope'"],
    ),
    Case(
        "init-file-in-the-way",
        ["init", "{tmp}/new"],
        setup=lambda p: (
            (p.parent / "new").mkdir(),
            (p.parent / "new" / "environments").write_text("mine"),
        ),
        words=["environments is a file where init makes a folder", "nothing was written"],
        unchanged=["{tmp}/new"],
    ),
    Case(
        "init-into-a-file",
        ["init", "{tmp}/afile"],
        setup=lambda p: (p.parent / "afile").write_text("mine"),
        words=["exists and is not a folder"],
        unchanged=["{tmp}/afile"],
    ),
    Case(
        "init-bad-name",
        ["init", "{tmp}/x", "--name", "Not A Label"],
        words=["cannot name a project", "--name"],
        missing=["{tmp}/x"],
    ),
    Case(
        "init-into-proc",
        ["init", "/proc/autodevhub-init"],
        words=["/proc/autodevhub-init"],
    ),
    Case(
        "timeout-nan",
        ["deploy", "--env", "dev", "--dry-run", "--timeout", "nan"],
        words=["--timeout"],
    ),
    Case(
        "timeout-negative",
        ["deploy", "--env", "dev", "--dry-run", "--timeout", "-5"],
        words=["--timeout"],
    ),
    Case(
        "timeout-inf",
        ["deploy", "--env", "dev", "--dry-run", "--timeout", "inf"],
        words=["--timeout"],
    ),
    Case(
        "kube-version-nonsense",
        ["validate", "--env", "prod", "--kube-version", "latest"],
        words=["Kubernetes version 'latest'"],
    ),
    Case(
        "images-not-json",
        ["render", "--env", "prod", "--images", "{project}/environments/prod.yaml"],
        words=["environments/prod.yaml"],
    ),
    Case(
        "images-missing",
        ["render", "--env", "prod", "--images", "{tmp}/nope.json"],
        words=["{tmp}/nope.json"],
    ),
    Case(
        "images-a-folder",
        ["render", "--env", "prod", "--images", "{tmp}"],
        words=["{tmp}"],
    ),
    Case(
        "project-dir-a-file",
        ["render", "--env", "prod", "--project-dir", "{project}/environments/prod.yaml"],
        words=["environments/prod.yaml is a file, not a folder"],
    ),
    Case(
        "env-name-traversal",
        ["render", "--env", "../../etc/passwd"],
        words=["Unknown environment"],
    ),
    Case(
        "env-name-empty",
        ["render", "--env", ""],
        words=["Unknown environment"],
    ),
    Case(
        "target-unknown",
        ["render", "--env", "prod", "--target", "nomad"],
        words=["Unknown target 'nomad'"],
    ),
]


SQLITE = "sqlite:///{tmp}/app.db"
CASES += [
    Case(
        "backups-component-unknown",
        ["render", "--env", "dev", "--set", "backups.component=nope"],
        words=["backups.component", "no component named 'nope'"],
    ),
    Case(
        "backups-component-without-its-variable",
        ["render", "--env", "dev", "--set", "backups.url_env=null"],
        words=["backups", "set both component and url_env"],
    ),
    Case(
        "db-backup-unsupported-scheme",
        ["db", "backup", "--env", "dev", "--database-url", "mysql://user:pw@host/db"],
        words=["Unsupported database URL", "postgresql:// and sqlite:///"],
        absent=["pw@"],
    ),
    Case(
        "db-backup-not-a-url",
        ["db", "backup", "--env", "dev", "--database-url", "not a url"],
        words=["Unsupported database URL"],
    ),
    Case(
        "db-backup-missing-sqlite",
        ["db", "backup", "--env", "dev", "--database-url", SQLITE, "--to", "{tmp}/bk"],
        code=1,
        words=["{tmp}/app.db does not exist"],
    ),
    Case(
        "db-restore-missing-file",
        ["db", "restore", "--env", "dev", "--database-url", SQLITE, "--from", "{tmp}/x.sqlite3"],
        words=["{tmp}/x.sqlite3 does not exist"],
    ),
    Case(
        "db-restore-no-checksum",
        ["db", "restore", "--env", "dev", "--database-url", SQLITE, "--from", "/etc/hostname"],
        code=1,
        words=["has no checksum file", "cannot be verified"],
    ),
    Case(
        "db-restore-password-not-shown",
        [
            "db",
            "restore",
            "--env",
            "staging",
            "--database-url",
            "postgresql://u:hunter2-secret@127.0.0.1:1/db",
            "--from",
            "/etc/hostname",
        ],
        code=1,
        absent=["hunter2-secret"],
    ),
    Case(
        "rollback-unknown-environment",
        ["rollback", "--env", "nope"],
        words=["Unknown environment 'nope'", "dev, prod, staging"],
    ),
    Case(
        "build-unknown-image",
        ["build", "--env", "dev", "--only", "nope"],
        words=["Unknown image 'nope' for --only", "backend, frontend"],
    ),
    Case(
        "deploy-images-not-json",
        ["deploy", "--env", "dev", "--images", "/etc/hostname", "--dry-run"],
        words=["--images /etc/hostname is not readable JSON"],
    ),
    Case(
        "deploy-kubeconfig-missing",
        ["deploy", "--env", "prod", "--dry-run", "--kubeconfig", "{tmp}/none"],
        words=["Cannot load the Kubernetes configuration from {tmp}/none"],
    ),
    Case(
        "diff-kubeconfig-missing",
        ["diff", "--env", "prod", "--kubeconfig", "{tmp}/none"],
        words=["Cannot load the Kubernetes configuration from {tmp}/none"],
    ),
    Case(
        "secrets-file-missing",
        ["secrets", "set", "--env", "dev", "--from-file", "{tmp}/none"],
        words=["Cannot read {tmp}/none"],
    ),
    Case(
        "secrets-file-not-key-value",
        ["secrets", "set", "--env", "dev", "--from-file", "/etc/hostname"],
        words=["/etc/hostname line 1", "KEY=VALUE"],
        absent=[Path("/etc/hostname").read_text().strip() or "\x00"],
    ),
    Case(
        "doctor-unknown-environment",
        ["doctor", "--env", "nope"],
        words=["Unknown environment 'nope'"],
    ),
    Case(
        "output-unknown-format",
        ["status", "--env", "dev", "--output", "yaml"],
        words=["'yaml' is not one of 'text', 'json'"],
    ),
    Case("unknown-option", ["render", "--env", "dev", "--bogus"], words=["No such option"]),
    Case("unknown-command", ["deploi", "--env", "dev"], words=["No such command"]),
    Case("missing-env", ["render"], words=["--env"]),
    Case(
        "smoke-url-without-name",
        ["smoke-test", "--env", "dev", "--url", "backend"],
        words=["--url 'backend' is not NAME=URL"],
    ),
    Case(
        "smoke-url-unknown-component",
        ["smoke-test", "--env", "dev", "--url", "nope=http://127.0.0.1:1"],
        words=["no component named 'nope'"],
    ),
    # `logs` and `dev`: refused before any engine or cluster is asked anything.
    Case(
        "logs-unknown-component",
        ["logs", "--env", "dev", "backend", "nope"],
        words=["has no component 'nope' (its components: backend, worker, frontend)"],
    ),
    Case("logs-since-not-a-duration", ["logs", "--env", "dev", "--since", "5x"], words=["--since"]),
    Case("logs-since-negative", ["logs", "--env", "dev", "--since", "-1m"], words=["--since"]),
    Case("logs-tail-negative", ["logs", "--env", "dev", "--tail", "-1"], words=["--tail"]),
    Case(
        "logs-previous-on-compose",
        ["logs", "--env", "dev", "--previous"],
        words=["--previous reads the container Kubernetes replaced; on compose"],
    ),
    Case(
        "logs-previous-and-follow",
        ["logs", "--env", "staging", "--previous", "--follow"],
        words=["--previous and --follow cannot be combined"],
    ),
    # An engine or cluster that is down: the error names it and what to do, exit 1, no hang.
    Case(
        "logs-engine-down",
        ["logs", "--env", "dev", "--follow"],
        code=1,
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        words=["No Docker engine answers at unix:///nonexistent/docker.sock", "DOCKER_HOST"],
        child=True,
    ),
    Case(
        "logs-cluster-down",
        ["logs", "--env", "staging", "--follow", "--kubeconfig", "{project}/kubeconfig"],
        setup=kubeconfig(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
            "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: u, user: {token: t0ken-abc}}]\n"
        ),
        code=1,
        words=["the Kubernetes API is unreachable", "--context"],
        absent=["t0ken-abc"],
        child=True,
    ),
    Case(
        "dev-on-kubernetes",
        ["dev", "--env", "prod"],
        words=["runs Compose environments; 'prod' is a kubernetes environment"],
    ),
    Case(
        "dev-sync-path-outside-the-project",
        [
            "dev",
            "--env",
            "dev",
            "--set",
            "components.backend.develop.sync=[{path: ../x, target: /a}]",
        ],
        words=["components.backend.develop.sync.0.path", "inside the project folder"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_command(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)


@pytest.mark.parametrize("command", ["validate", "render", "history"])
def test_output_into_a_closed_pipe_ends_quietly(command: str, tmp_path: Path) -> None:
    """`autodevhub validate --env prod | head -1`: the reader stops early; the writer ends
    without a traceback or "Unexpected error" (as any Unix tool does)."""
    from tests.helpers import REPO

    args = [command, "--env", "prod", "--project-dir", str(REPO)]
    if command == "history":
        args = ["--help"]
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    reader.stdin.close()  # as `head` does once it has what it wants
    reader.wait()
    read, write = os.pipe()
    os.close(read)  # nobody reads: every write is EPIPE
    done = subprocess.run(
        [sys.executable, "-m", "autodevhub_cli", *args],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    os.close(write)
    assert "Traceback" not in done.stderr and "Unexpected error" not in done.stderr, done.stderr
    assert done.returncode in (0, 1, 120, 141), done.returncode
