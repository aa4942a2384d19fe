"""Loading environments: bases, precedence of overrides, typed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodevhub_cli.core.config import deep_merge, load_environment, parse_set_expression
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import find_project
from tests.helpers import REPO, copy_project


def test_environments_are_listed_without_bases() -> None:
    assert find_project(REPO).environment_names() == ["dev", "prod", "staging"]


def test_precedence_set_over_env_var_over_file() -> None:
    project = find_project(REPO)
    from_file = load_environment(project, "prod", environ={})
    assert from_file.components["frontend"].replicas == 3
    from_env = load_environment(
        project, "prod", environ={"AUTODEVHUB__COMPONENTS__FRONTEND__REPLICAS": "4"}
    )
    assert from_env.components["frontend"].replicas == 4
    from_set = load_environment(
        project,
        "prod",
        sets=["components.frontend.replicas=5"],
        environ={"AUTODEVHUB__COMPONENTS__FRONTEND__REPLICAS": "4"},
    )
    assert from_set.components["frontend"].replicas == 5


def test_base_values_reach_every_environment() -> None:
    project = find_project(REPO)
    for name in project.environment_names():
        env = load_environment(project, name, environ={})
        assert env.components["backend"].ports == {"http": 8000}
        assert env.name == name


def test_null_removes_a_base_value() -> None:
    dev = load_environment(find_project(REPO), "dev", environ={})
    assert dev.components["backend"].secret_env == {}


def test_set_values_are_yaml_typed() -> None:
    assert parse_set_expression("a.b=3").value == 3
    assert parse_set_expression("a.b=true").value is True
    assert parse_set_expression("a.b=[x, y]").value == ["x", "y"]
    assert parse_set_expression("a.b='3'").value == "3"
    assert parse_set_expression("a.b=").value is None


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}


def test_cycle_in_extends(tmp_path: Path) -> None:
    project_dir = copy_project(tmp_path)
    (project_dir / "environments" / "_base.yaml").write_text("extends: prod\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_environment(find_project(project_dir), "prod", environ={})


def test_name_in_file_must_match(tmp_path: Path) -> None:
    project_dir = copy_project(tmp_path)
    path = project_dir / "environments" / "prod.yaml"
    path.write_text(path.read_text() + "name: production\n")
    with pytest.raises(ConfigError, match="comes from the file name"):
        load_environment(find_project(project_dir), "prod", environ={})


def test_project_dir_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTODEVHUB_PROJECT_DIR", str(REPO))
    monkeypatch.chdir("/")
    assert find_project().root == REPO


def test_backups_name_their_component_and_its_url_variable() -> None:
    """The tool knows no variable name: which component's database `db backup` works on, and
    which env variable holds its URL, are declared (backups.component, backups.url_env)."""
    from autodevhub_cli.core.backup import _sqlite_volume, database_url_for

    project = find_project(REPO)
    dev = load_environment(project, "dev", environ={})
    volume, inside, mount = _sqlite_volume(dev) or ("", Path(), "")
    assert volume == "autodevhub-dev_backend-data" and str(inside).startswith(mount)
    renamed = load_environment(
        project,
        "dev",
        sets=["components.backend.env.DB=sqlite:////data/x.db", "backups.url_env=DB"],
        environ={},
    )
    located = _sqlite_volume(renamed)
    assert located is not None and located[1].name == "x.db", "the variable declared"
    undeclared = load_environment(
        project, "dev", sets=["backups.component=null", "backups.url_env=null"], environ={}
    )
    assert _sqlite_volume(undeclared) is None
    with pytest.raises(ConfigError) as raised:
        database_url_for(undeclared, None)
    assert "backups.component" in (raised.value.hint or "")
    with pytest.raises(ConfigError, match="no component named 'nope'"):
        load_environment(project, "dev", sets=["backups.component=nope"], environ={})
    with pytest.raises(ConfigError, match="set both component and url_env"):
        load_environment(project, "dev", sets=["backups.url_env=null"], environ={})


def test_compose_replicas_render_and_a_published_port_allows_one() -> None:
    """On Compose `replicas` is the number of containers (`deploy.replicas`); a component that
    publishes a host port cannot run two (both would bind it), and the error says what to do."""
    from autodevhub_cli.core.render import render

    project = find_project(REPO)
    two = load_environment(project, "dev", sets=["components.worker.replicas=2"], environ={})
    compose = render(project, two, "compose").manifests[0].document
    assert compose["services"]["worker"]["deploy"]["replicas"] == 2
    assert "replicas" not in compose["services"]["backend"]["deploy"]  # one: Compose's default
    with pytest.raises(ConfigError) as caught:
        load_environment(project, "dev", sets=["components.backend.replicas=2"], environ={})
    said = str(caught.value)
    assert "components.backend.replicas" in said and "publishes host ports" in said, said
    assert "run one, or publish no port" in said
