"""What a new team meets when it writes its own project (tests/fixtures/notes) from the README
and `autodevhub schema`, without a cluster or an engine: the template library's output, the
project's own values and their schema, the config reference, task identity, secrets refused
when empty, smoke checks on a host that does not resolve, `diff --exit-code` on bad input.
The deploys themselves are in tests/deploy/test_new_project.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from autodevhub_cli.core.adapters.kube import ApplyConflict, ObjectRef
from tests.helpers import REPO, documents, find, run_cli

NOTES = REPO / "tests" / "fixtures" / "notes"


@pytest.fixture()
def notes(tmp_path: Path) -> Path:
    return Path(shutil.copytree(NOTES, tmp_path / "notes"))


def _cli(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_cli(*args, "--project-dir", str(root), env=env)


def _render(root: Path, env: str = "live", *sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    code, out, err = _cli(root, "render", "--env", env, *args)
    assert code == 0, err
    return documents(out)


# --- 1, 3: the template library ----------------------------------------------------------------


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [(f"{path}.{k}", v) for k, v in node.items()] + [
            found for k, v in node.items() for found in _walk(v, f"{path}.{k}")
        ]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _walk(v, f"{path}[{i}]")]
    return []


def test_the_library_renders_no_default_valued_field_a_controller_would_strip(
    notes: Path,
) -> None:
    """Argo Rollouts writes a Rollout back without zero-valued fields; rendering one makes the
    controller own the container list and every later apply conflict (tested on the real node
    in tests/deploy/test_new_project.py)."""
    base = notes / "environments" / "_base.yaml"
    base.write_text(
        base.read_text().replace("      DATA_DIR: /data", '      DATA_DIR: /data\n      EMPTY: ""')
    )
    docs = _render(notes, "live")
    rollout = find(docs, "Rollout", "api")
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    assert "initialDelaySeconds" not in container["readinessProbe"]
    assert {"name": "EMPTY"} in container["env"], "an empty value is left out, not rendered as ''"
    # In the pod template Argo writes back, only pointer fields may hold a zero value.
    for where, value in _walk(rollout["spec"]["template"]):
        assert value not in (0, False, "") or where.endswith(
            (".allowPrivilegeEscalation", ".automountServiceAccountToken")
        ), f"Rollout api .spec.template{where} = {value!r}"


def test_the_library_renders_volumes_as_claims_and_mounts_on_both_targets(notes: Path) -> None:
    docs = _render(notes)
    claim = find(docs, "PersistentVolumeClaim", "data")
    assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for name, read_only in (("api", None), ("worker", True)):
        kind = "Rollout" if name == "api" else "Deployment"
        pod = find(docs, kind, name)["spec"]["template"]["spec"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data")
        assert mount.get("readOnly") == read_only
        assert {"name": mount["name"], "persistentVolumeClaim": {"claimName": "data"}} in pod[
            "volumes"
        ]
    job = next(d for d in docs if d["kind"] == "Job")
    mounts = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/data" for m in mounts), "the task mounts the component's volume"
    compose = _render(notes, "local")[0]
    assert compose["volumes"] == {"data": {}}
    assert compose["services"]["worker"]["volumes"] == ["data:/data:ro"]


def test_the_starter_renders_a_volume_a_user_adds(tmp_path: Path) -> None:
    root = tmp_path / "app"
    assert run_cli("init", str(root))[0] == 0
    base = root / "environments" / "_base.yaml"
    base.write_text(
        base.read_text().replace(
            "    run_as_user: 10001",
            "    run_as_user: 10001\n    volumes:\n      uploads: {path: /srv/uploads}",
        )
        + "\nvolumes:\n  uploads: {size: 2Gi, storage_class: fast}\n"
    )
    docs = _render(root, "prod")
    claim = find(docs, "PersistentVolumeClaim", "uploads")
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert _render(root, "dev")[0]["services"]["web"]["volumes"] == ["uploads:/srv/uploads"]


def test_a_storage_setting_for_a_volume_no_component_mounts_is_refused(notes: Path) -> None:
    code, _, err = _cli(notes, "validate", "--env", "live", "--set", "volumes.dtaa.size=1Gi")
    assert code == 2
    assert "volumes.dtaa: no component mounts a volume named 'dtaa' (mounted: data)" in err


def test_an_error_in_a_project_template_that_calls_the_library_names_both(notes: Path) -> None:
    app = notes / "templates" / "kubernetes" / "app.yaml.j2"
    app.write_text(app.read_text().replace("k.all_services()", 'k.services("nope")'))
    code, _, err = _cli(notes, "render", "--env", "live")
    assert code == 2
    assert "autodevhub/kubernetes.j2 line" in err and "templates/kubernetes/app.yaml.j2" in err
    assert "Traceback" not in err


# --- 2, 7: a task's identity ---------------------------------------------------------------------


def _job_name(docs: list[dict[str, Any]]) -> str:
    (job,) = [d for d in docs if d["kind"] == "Job"]
    labels = job["metadata"]["labels"]
    assert labels["autodevhub.io/task-of"] == "api" and labels["autodevhub.io/step"] == "migrate"
    assert "app.kubernetes.io/component" not in job["spec"]["template"]["metadata"]["labels"], (
        "a task's pod is no Service's endpoint"
    )
    return str(job["metadata"]["name"])


@pytest.mark.parametrize(
    "change",
    [
        "components.api.env.LOG_LEVEL=debug",
        "components.api.secret_env.OTHER.secret=notes-secrets",
        "components.api.volumes.data.read_only=true",
        "values.greeting=bonjour",
        "components.api.image.tag=0.2.0",
    ],
)
def test_a_task_job_is_named_after_everything_its_pod_runs_with(notes: Path, change: str) -> None:
    """A Job's pod template is immutable: any change to what it runs with is a new Job, never
    a "field is immutable" error."""
    before = _job_name(_render(notes))
    sets = [change]
    if "secret_env.OTHER" in change:
        sets.append("components.api.secret_env.OTHER.key=other")
    assert _job_name(_render(notes, "live", *sets)) != before


# --- 4: values of the project's own, the schema and the reference ------------------------------


def test_templates_read_the_projects_own_values(notes: Path) -> None:
    docs = _render(notes, "live", "values.greeting=bonjour")
    env = find(docs, "Rollout", "api")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GREETING", "value": "bonjour"} in env


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("values.greeting=''", ["values.greeting:", "should be non-empty", "values.schema.json"]),
        ("values.colour=red", ["values:", "'colour' was unexpected", "values.schema.json"]),
    ],
)
def test_the_projects_own_values_are_checked_by_its_schema(
    notes: Path, override: str, words: list[str]
) -> None:
    code, _, err = _cli(notes, "validate", "--env", "live", "--set", override)
    assert code == 2, err
    for word in words:
        assert word in err, err


def test_a_broken_values_schema_is_named(notes: Path) -> None:
    (notes / "environments" / "values.schema.json").write_text('{"type": "objekt"}')
    code, _, err = _cli(notes, "render", "--env", "live")
    assert code == 2
    assert "environments/values.schema.json is not a valid JSON Schema" in err


def test_an_unknown_field_lists_the_valid_ones(notes: Path) -> None:
    base = notes / "environments" / "_base.yaml"
    base.write_text(
        base.read_text().replace("    run_as_user: 20003", "    replics: 2\n    run_as_user: 20003")
    )
    code, _, err = _cli(notes, "render", "--env", "live")
    assert code == 2
    assert "components.web.replics: unknown field (check its spelling); valid here: image," in err
    assert "replicas" in err and "environments/_base.yaml line" in err


def test_schema_is_a_json_schema_every_environment_file_meets(notes: Path) -> None:
    """What an editor checks the files with: every file of this project, of the fixture and of
    the starter passes; a misspelt field, a wrong type or a bad own value does not."""
    for root in (REPO, notes):
        code, out, err = _cli(root, "schema")
        assert code == 0, err
        schema = json.loads(out)
        jsonschema.Draft202012Validator.check_schema(schema)
        check = jsonschema.Draft202012Validator(schema)
        for path in sorted((root / "environments").glob("*.yaml")):
            errors = [e.message for e in check.iter_errors(yaml.safe_load(path.read_text()))]
            assert errors == [], (path, errors)
    for bad in (
        {"components": {"api": {"replics": 2}}},
        {"components": {"api": {"replicas": "two"}}},
        {"values": {"greeting": 5}},
    ):
        assert list(check.iter_errors(bad)), bad
    assert not list(check.iter_errors({"components": {"api": {"secret_env": None}}})), (
        "null removes a base's value"
    )


def test_the_config_reference_in_docs_is_the_generated_one() -> None:
    code, out, err = run_cli("schema", "--format", "markdown")
    assert code == 0, err
    page = REPO / "docs" / "config-reference.md"
    assert page.read_text() == out, (
        "docs/config-reference.md is out of date: autodevhub schema --format markdown > "
        "docs/config-reference.md"
    )
    for field in ("`initial_delay_seconds`", "`storage_class`", "`values`", "`secret_env`"):
        assert field in out


# --- 5, 6, 8: secrets, smoke, diff -------------------------------------------------------------


def test_an_empty_secret_value_is_refused_before_anything_is_written(
    notes: Path, tmp_path: Path
) -> None:
    env = {"AUTODEVHUB__COMPOSE__SECRETS_DIR": str(tmp_path / "secrets")}
    values = tmp_path / "values.env"
    values.write_text("api-token=   \n")
    code, _, err = _cli(
        notes, "secrets", "set", "--env", "local", "--from-file", str(values), env=env
    )
    assert code == 2
    assert "The value given for api-token of Secret notes-secrets is empty" in err
    assert not (tmp_path / "secrets").exists()


def test_a_smoke_check_on_a_host_that_does_not_resolve_fails_at_once_and_says_what_to_set(
    notes: Path,
) -> None:
    code, _, err = _cli(
        notes,
        "smoke-test",
        "--env",
        "local",
        "--url",
        "api=http://notes-api.invalid:8000",
        "--url",
        "web=http://notes-web.invalid:8080",
        "--timeout",
        "300",
    )
    assert code == 3
    assert "the host name 'notes-api.invalid' does not resolve" in err
    assert "set smoke.urls.api (or pass --url api=URL)" in err
    assert "(3 tries)" in err, "given up after three answers, not at the 300 s deadline"


def test_diff_exit_code_tells_a_failed_diff_from_changes(notes: Path) -> None:
    code, _, err = _cli(notes, "diff", "--env", "nosuch", "--exit-code")
    assert code == 2, err


def test_a_conflict_with_argo_rollouts_on_the_container_list_says_why() -> None:
    conflict = ApplyConflict(
        ObjectRef("argoproj.io/v1alpha1", "Rollout", "notes", "api"),
        [(".spec.template.spec.containers", "rollouts-controller")],
    )
    assert "initialDelaySeconds: 0" in str(conflict)
    assert "--force-conflicts" in str(conflict)


def test_a_pod_waiting_on_its_claim_is_described_without_a_python_none() -> None:
    """The API server sends `message: null` in conditions and events; the diagnosis of a task
    whose pod cannot be scheduled (its claim unbound) said `None`."""
    from autodevhub_cli.core.targets.readiness import pod_problem

    pod = {
        "status": {
            "phase": "Pending",
            "message": None,
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": None,
                }
            ],
        }
    }
    assert pod_problem(pod) == ("Unschedulable", "", None)
    pod["status"]["conditions"] = []
    assert pod_problem(pod) == ("Pending", "", None)
