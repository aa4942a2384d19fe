"""Projects other than this one, on the same CLI: what `autodevhub init` writes, and the `shop`
fixture (tests/fixtures/shop) with components of its own. Each renders for both targets,
validates, and deploys with the real Docker Compose, engine and registry."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import free_port
from tests.helpers import REPO, documents, find, run_cli
from tests.images.conftest import BASE_IMAGES, REGISTRY, _engine_problem

STARTER_TEMPLATES = REPO / "autodevhub_cli" / "starter" / "templates"


def _cli(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_cli(*args, "--project-dir", str(root), env=env)


def _compose_env(name: str, ports: dict[str, tuple[str, int]]) -> dict[str, str]:
    """A throwaway Compose project: its own name, registry path, host ports and base image."""
    env = {
        "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
        "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
        "AUTODEVHUB__BUILD__ARGS__BASE_IMAGE": BASE_IMAGES["PYTHON"],
    }
    for component, (port, host_port) in ports.items():
        env[f"AUTODEVHUB__COMPONENTS__{component.upper()}__EXPOSE__COMPOSE__{port.upper()}"] = str(
            host_port
        )
    return env


@pytest.fixture()
def engine() -> None:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)


def test_init_writes_a_project_that_renders_for_both_targets(tmp_path: Path) -> None:
    root = tmp_path / "Hello World"
    code, out, err = run_cli("init", str(root))
    assert code == 0, err
    assert "wrote    environments/dev.yaml" in out and "Project 'hello-world' is ready" in out
    assert (root / ".gitignore").read_text().strip().endswith(".autodevhub/")
    code, out, err = _cli(root, "render", "--env", "dev")
    assert code == 0, err
    compose = documents(out)[0]
    assert compose["name"] == "hello-world-dev"
    assert compose["services"]["web"]["ports"] == ["127.0.0.1:8080:8080"]
    code, out, err = _cli(root, "validate", "--env", "prod")
    assert code == 0, err
    assert "valid against Kubernetes 1.33" in out
    code, out, err = _cli(root, "render", "--env", "prod")
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents(out))
    assert kinds == [
        "Deployment/web",
        "HorizontalPodAutoscaler/web",
        "Ingress/hello-world",
        "Namespace/hello-world",
        "NetworkPolicy/default-deny-ingress",
        "NetworkPolicy/web",
        "PodDisruptionBudget/web",
        "Service/web",
    ]


def test_the_starter_mounts_secrets_as_files(tmp_path: Path) -> None:
    """A secret a user adds to the starter's component is a read-only file under both targets,
    never an environment variable."""
    root = tmp_path / "withsecret"
    assert run_cli("init", str(root))[0] == 0
    sets = (
        "--set",
        "components.web.secret_env.API_TOKEN.secret=withsecret-secrets",
        "--set",
        "components.web.secret_env.API_TOKEN.key=api-token",
    )
    code, out, err = _cli(root, "validate", "--env", "prod", *sets)
    assert code == 0, err
    code, out, err = _cli(root, "render", "--env", "prod", *sets)
    assert code == 0, err
    pod = find(documents(out), "Deployment", "web")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert not [e for e in container.get("env", []) if "valueFrom" in e]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in container[
        "volumeMounts"
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert volume["projected"]["sources"] == [
        {
            "secret": {
                "name": "withsecret-secrets",
                "items": [{"key": "api-token", "path": "api_token"}],
            }
        }
    ]
    code, out, err = _cli(root, "render", "--env", "dev", *sets)
    assert code == 0, err
    web = documents(out)[0]["services"]["web"]
    assert web["secrets"] == [{"source": "withsecret-secrets-api-token", "target": "api_token"}]
    assert "API_TOKEN" not in (web.get("environment") or {})


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    root = tmp_path / "app"
    assert run_cli("init", str(root))[0] == 0
    mine = root / "environments" / "dev.yaml"
    mine.write_text("# my own\n")
    (root / "notes.txt").write_text("kept")
    code, _, err = run_cli("init", str(root))
    assert code == 2
    assert "already has" in err and "environments/dev.yaml" in err and "--force" in err
    assert mine.read_text() == "# my own\n", "nothing is written when a file is in the way"
    code, out, err = run_cli("init", str(root), "--force")
    assert code == 0, err
    assert "replaced environments/dev.yaml" in out
    assert "extends: _base" in mine.read_text()
    assert (root / "notes.txt").read_text() == "kept"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--name", "Bad_Name"], ["'Bad_Name' cannot name a project", "--name"]),
        (["--name", "9lives"], ["'9lives' cannot name a project"]),
    ],
)
def test_init_bad_name(tmp_path: Path, args: list[str], words: list[str]) -> None:
    code, _, err = run_cli("init", str(tmp_path / "x"), *args)
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "x").exists()


def test_init_into_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    code, _, err = run_cli("init", str(tmp_path / "f"))
    assert code == 2 and "exists and is not a folder" in err


@pytest.fixture()
def started(engine: None) -> Iterator[list[tuple[Path, str, dict[str, str]]]]:
    """Projects a test deployed, taken down (with their volumes) afterwards."""
    deployed: list[tuple[Path, str, dict[str, str]]] = []
    yield deployed
    for root, env_name, env in deployed:
        _cli(root, "down", "--env", env_name, "--volumes", env=env)


@pytest.mark.docker
@pytest.mark.compose
def test_init_then_deploy_on_compose(tmp_path: Path, started: list) -> None:
    root = tmp_path / "starter"
    assert run_cli("init", str(root), "--name", "starter")[0] == 0
    port = free_port()
    env = _compose_env(f"adhinit{uuid.uuid4().hex[:6]}", {"web": ("http", port)})
    started.append((root, "dev", env))
    code, out, err = _cli(root, "deploy", "--env", "dev", "--output", "json", env=env)
    assert code == 0, err
    result = json.loads(out)
    assert [c["name"] for c in result["smoke"]["checks"]] == ["web liveness /healthz", "home page"]
    assert result["smoke"]["ok"]
    page = httpx.get(f"http://127.0.0.1:{port}/")
    assert "Hello from starter" in page.text


def _shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(REPO / "tests" / "fixtures" / "shop", root)
    shutil.copytree(STARTER_TEMPLATES, root / "templates")
    return root


def test_shop_renders_and_validates_for_kubernetes(tmp_path: Path) -> None:
    root = _shop(tmp_path)
    code, _, err = _cli(root, "validate", "--env", "live")
    assert code == 0, err
    docs = documents(_cli(root, "render", "--env", "live")[1])
    kinds = {f"{d['kind']}/{d['metadata']['name']}" for d in docs}
    assert {"Rollout/storefront", "Deployment/catalog", "Service/storefront-preview"} <= kinds
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["labels"]["autodevhub.io/step"] == "seed"
    # The storefront depends on the catalog: only it (and no other pod) may call the catalog.
    policy = next(
        d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "catalog"
    )
    callers = policy["spec"]["ingress"][0]["from"]
    assert callers == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "shop",
                    "app.kubernetes.io/instance": "shop-live",
                    "app.kubernetes.io/component": "storefront",
                }
            }
        }
    ]


@pytest.mark.docker
@pytest.mark.compose
def test_shop_deploys_on_compose_with_its_own_checks(tmp_path: Path, started: list) -> None:
    root = _shop(tmp_path)
    ports = {"catalog": ("api", free_port()), "storefront": ("web", free_port())}
    env = _compose_env(f"adhshop{uuid.uuid4().hex[:6]}", ports)
    # The storefront is an existing image: here, the stand-in Python base image.
    env["AUTODEVHUB__COMPONENTS__STOREFRONT__IMAGE__REF"] = BASE_IMAGES["PYTHON"]
    env["AUTODEVHUB__COMPONENTS__STOREFRONT__COMMAND"] = (
        "[python3, -m, http.server, '8081', --bind, 0.0.0.0, --directory, /usr/lib]"
    )
    started.append((root, "local", env))
    code, out, err = _cli(root, "deploy", "--env", "local", "--output", "json", env=env)
    assert code == 0, err
    assert "tasks: running catalog.seed" in err
    result = json.loads(out)
    checks = {c["name"]: c for c in result["smoke"]["checks"]}
    assert list(checks) == [
        "catalog liveness /health.json",
        "storefront readiness /",
        "storefront listing",
        "first item",
        "catalog latency",
    ]
    assert all(c["ok"] for c in checks.values()), checks
    assert "/items/42.json 200" in checks["first item"]["detail"]
    images = {i["name"]: i["ref"] for i in result["release"]["images"]}
    assert images["storefront"] == BASE_IMAGES["PYTHON"]
    assert "@sha256:" in images["catalog"]
    # A second deploy with unchanged catalog data skips the seed task.
    code, _, err = _cli(root, "deploy", "--env", "local", "--skip-build", env=env)
    assert code == 0, err
    assert "catalog.seed skipped: its inputs are unchanged" in err
