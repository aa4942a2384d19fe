"""Every bad input: exit code 2, the words the user must see, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import copy_project, run_cli


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def _fails(project: Path, *args: str, words: list[str], code: int = 2) -> str:
    exit_code, out, err = run_cli(*args, "--project-dir", str(project))
    assert exit_code == code, (out, err)
    assert "Traceback" not in err + out
    for word in words:
        assert word in err, f"{word!r} not in: {err}"
    return err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_unknown_environment(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "qa",
        words=["Unknown environment 'qa'", "environments/qa.yaml", "dev, prod, staging"],
    )


def test_not_a_project(tmp_path: Path) -> None:
    _fails(
        tmp_path, "render", "--env", "prod", words=["is not an autodevhub project", "--project-dir"]
    )


def test_missing_base_file(project: Path) -> None:
    (project / "environments" / "_base.yaml").unlink()
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["environments/prod.yaml", "extends '_base'", "does not exist"],
    )


def test_unreadable_file(project: Path) -> None:
    (project / "environments" / "qa.yaml").mkdir()  # a folder where a file should be
    _fails(project, "render", "--env", "qa", words=["environments/qa.yaml cannot be read"])


def test_yaml_syntax_error_names_file_and_line(project: Path) -> None:
    _edit(project / "environments" / "prod.yaml", "namespace: autodevhub", "namespace: [autodevhub")
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["environments/prod.yaml line", "YAML syntax error"],
    )


def test_top_level_not_a_mapping(project: Path) -> None:
    (project / "environments" / "qa.yaml").write_text("- a\n- b\n")
    _fails(project, "render", "--env", "qa", words=["qa.yaml", "top level must be a mapping"])


def test_unknown_field_names_dotted_path_and_line(project: Path) -> None:
    _edit(
        project / "environments" / "prod.yaml",
        "    replicas: 2\n",
        "    replicas: 2\n    replica: 3\n",
    )
    err = _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["components.backend.replica", "unknown field", "environments/prod.yaml line"],
    )
    assert "1 invalid field" in err


def test_wrong_type_names_dotted_path(project: Path) -> None:
    _edit(
        project / "environments" / "prod.yaml", "      max_replicas: 10", "      max_replicas: many"
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["components.backend.autoscaling.max_replicas", "valid integer", "prod.yaml line"],
    )


def test_wrong_value_in_base_file_points_at_base(project: Path) -> None:
    _edit(
        project / "environments" / "_base.yaml", "cpu: 50m, memory: 64Mi", "cpu: lots, memory: 64Mi"
    )
    _fails(
        project,
        "render",
        "--env",
        "dev",
        words=["components.frontend.resources.requests.cpu", "CPU quantity", "_base.yaml line"],
    )


def test_requests_above_limits(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.backend.resources.requests.memory=2Gi",
        words=["components.backend.resources", "requests.memory 2Gi is above limits.memory"],
    )


def test_latest_tag_refused_for_kubernetes(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.backend.image.tag=latest",
        words=["components.backend.image.tag is 'latest'", "pin a tag"],
    )


@pytest.mark.parametrize("expression", ["replicas", "=3", "components..replicas=1", "a b=1"])
def test_invalid_set_expression(project: Path, expression: str) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        expression,
        words=["Invalid --set expression", "KEY=VALUE"],
    )


def test_set_with_wrong_type_names_the_flag(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.frontend.replicas=three",
        words=["components.frontend.replicas", "--set components.frontend.replicas=three"],
    )


def test_set_unknown_field(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "ingress.hostz=[a.example.com]",
        words=["ingress.hostz", "unknown field"],
    )


def test_set_through_a_scalar(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "namespace.name=x",
        words=["namespace is a str", "not a mapping"],
    )


def test_environment_variable_override_with_wrong_type(project: Path) -> None:
    code, _, err = run_cli(
        "render",
        "--env",
        "prod",
        "--project-dir",
        str(project),
        env={"AUTODEVHUB__COMPONENTS__FRONTEND__REPLICAS": "x"},
    )
    assert code == 2
    assert "environment variable AUTODEVHUB__COMPONENTS__FRONTEND__REPLICAS" in err


def test_undefined_template_value_names_template_and_line(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        "{{ k.ingress() }}",
        "{{ k.ingress() if env.ingress.service_type }}",
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["templates/kubernetes/app.yaml.j2 line 15", "service_type"],
    )


def test_an_error_inside_the_template_library_names_the_library_and_the_caller(
    project: Path,
) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        '{{ k.services("frontend") }}',
        '{{ k.services("nosuch") }}',
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["autodevhub/kubernetes.j2 line", "called from templates/kubernetes/app.yaml.j2"],
    )


def test_a_library_name_that_does_not_exist_lists_the_library(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        '"autodevhub/kubernetes.j2"',
        '"autodevhub/k8s.j2"',
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["no 'autodevhub/k8s.j2'", "autodevhub/kubernetes.j2", "autodevhub/compose.j2"],
    )


def test_template_syntax_error(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        "{{ k.ingress() }}",
        "{% if k %}{{ k.ingress() }}",
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["templates/kubernetes/app.yaml.j2", "syntax error"],
    )


def test_schema_failure_names_kind_name_and_field(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        '{{ k.services("frontend") }}',
        '{{ k.services("frontend") | replace("type: ClusterIP", "type: ClusterIP\n  loadBalancerClas: x") }}',
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["Service frontend", "app.yaml.j2", "spec", "loadBalancerClas"],
    )


def test_schema_failure_in_a_crd(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        "{{ k.service_monitors() }}",
        '{{ k.service_monitors() | replace("scheme: http", "scheme: gopher") }}',
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["ServiceMonitor backend", "spec.endpoints.0.scheme"],
    )


def test_schema_failure_in_a_rollout_pod_template(project: Path) -> None:
    _edit(
        project / "templates" / "kubernetes" / "app.yaml.j2",
        "{{ k.workloads(runtime_envs) }}",
        "{{ k.workloads(runtime_envs) | replace('imagePullPolicy: IfNotPresent', "
        "'imagePullPolicy: IfNotPresent\n          restartPolicyy: Always') }}",
    )
    _fails(
        project,
        "render",
        "--env",
        "prod",
        words=["Rollout backend", "spec.template.spec.containers.0", "restartPolicyy"],
    )


def test_model_bounds(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.backend.ports.http=70000",
        words=["components.backend.ports.http", "less than or equal to 65535"],
    )


def test_invalid_compose_output(project: Path) -> None:
    _edit(
        project / "templates" / "compose" / "compose.yaml.j2",
        "| indent(2) }}",
        "| replace('init: true', 'init: true\n  initt: 1') | indent(2) }}",
    )
    _fails(project, "render", "--env", "dev", words=["Compose file", "initt"])


def test_unsupported_kube_version(project: Path) -> None:
    _fails(
        project,
        "validate",
        "--env",
        "prod",
        "--kube-version",
        "1.24",
        words=["Kubernetes version '1.24' is not supported", "1.30"],
    )


def test_unknown_target(project: Path) -> None:
    _fails(
        project, "render", "--env", "prod", "--target", "nomad", words=["Unknown target 'nomad'"]
    )


def test_nothing_written_on_error(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    code, _, _ = run_cli(
        "render", "--env", "prod", "--out", str(out), "--project-dir", str(project)
    )
    assert code == 0
    before = {p.name: p.read_text() for p in out.iterdir()}
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--out",
        str(out),
        "--set",
        "components.frontend.replicas=-1",
        words=["components.frontend.replicas"],
    )
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifests", "project"], "no temp left"


def test_out_refuses_a_folder_with_other_files(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _fails(project, "render", "--env", "prod", "--out", str(out), words=["notes.txt", "refuses"])
    assert (out / "notes.txt").read_text() == "mine"


def test_an_env_name_the_template_sets_too_is_refused_at_render(
    project: Path, tmp_path: Path
) -> None:
    """A real API server refuses two env entries of one name; render says so first, naming it."""
    out = tmp_path / "out"
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--out",
        str(out),
        "--set",
        "components.backend.env.PORT=9000",
        words=[
            "Rollout backend (templates/kubernetes/app.yaml.j2)",
            'spec.template.spec.containers[0].env[6]: duplicate entries for key [name="PORT"]',
        ],
    )
    assert not out.exists()


def test_a_rolling_update_bound_that_is_neither_a_count_nor_a_percent(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "staging",
        "--set",
        "rollout.max_unavailable=half",
        words=["rollout.max_unavailable", "--set rollout.max_unavailable=half", "'^[0-9]+%$'"],
    )
