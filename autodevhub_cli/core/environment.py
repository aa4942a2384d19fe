"""The typed value model of one environment: everything a template may use, nothing more."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CRON = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4}\S+)$")
_MEMORY_FACTORS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def _matches(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


DnsLabel = Annotated[str, _matches(_DNS_LABEL, "DNS label (lower-case letters, digits, '-')")]
DnsName = Annotated[str, _matches(_DNS_SUBDOMAIN, "DNS name (lower-case letters, digits, -, .)")]
Hostname = Annotated[str, _matches(_HOSTNAME, "host name such as app.example.com")]
CpuQuantity = Annotated[str, _matches(_CPU, "CPU quantity such as 250m or 0.5")]
MemoryQuantity = Annotated[str, _matches(_MEMORY, "memory quantity such as 256Mi or 1Gi")]
Duration = Annotated[str, _matches(_DURATION, "duration such as 30s or 5m")]
EnvName = Annotated[str, _matches(_ENV_NAME, "environment variable name")]
SecretKey = Annotated[str, _matches(_SECRET_KEY, "Secret key (letters, digits, '-', '_', '.')")]
CronSchedule = Annotated[str, _matches(_CRON, "cron schedule such as '0 2 * * *'")]
Port = Annotated[int, Field(ge=1, le=65535)]


def cpu_millis(quantity: str) -> float:
    """CPU quantity in millicores."""
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def memory_bytes(quantity: str) -> float:
    """Memory quantity in bytes."""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", quantity)
    assert match is not None
    return float(match.group(1)) * _MEMORY_FACTORS[match.group(2)]


def _count_or_percent(value: Any) -> Any:
    # The API server takes an int-or-string here only as a count or as "N%": "0" is refused.
    return int(value) if isinstance(value, str) and value.isdigit() else value


IntOrPercent = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^[0-9]+%$")],
    BeforeValidator(_count_or_percent),
]


class Model(BaseModel):
    """Base of every value model: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)


class Amounts(Model):
    """CPU and memory amounts for requests or limits."""

    cpu: CpuQuantity
    memory: MemoryQuantity


class Resources(Model):
    """Container resource requests and limits."""

    requests: Amounts
    limits: Amounts

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        if cpu_millis(self.requests.cpu) > cpu_millis(self.limits.cpu):
            raise ValueError(
                f"requests.cpu {self.requests.cpu} is above limits.cpu {self.limits.cpu}"
            )
        if memory_bytes(self.requests.memory) > memory_bytes(self.limits.memory):
            raise ValueError(
                f"requests.memory {self.requests.memory} is above limits.memory "
                f"{self.limits.memory}"
            )
        return self


class Probe(Model):
    """An HTTP probe (Kubernetes) or health check (Compose)."""

    path: str = Field("/healthz", pattern=r"^/")
    initial_delay_seconds: int = Field(0, ge=0)
    period_seconds: int = Field(10, ge=1)
    timeout_seconds: int = Field(2, ge=1)
    failure_threshold: int = Field(3, ge=1)


class Probes(Model):
    """Liveness and readiness probes of a container."""

    liveness: Probe
    readiness: Probe


class Autoscaling(Model):
    """Horizontal pod autoscaling bounds and utilisation targets."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(1, ge=1)
    cpu_utilization: int | None = Field(None, ge=1, le=100)
    memory_utilization: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        if self.enabled and self.cpu_utilization is None and self.memory_utilization is None:
            raise ValueError(
                "set cpu_utilization or memory_utilization when autoscaling is enabled"
            )
        return self


class SecretRef(Model):
    """A reference to one key of a Secret, by name: values never live in environment files."""

    secret: DnsName
    key: SecretKey


class Image(Model):
    """An image repository under the environment's registry, with a tag and an optional digest."""

    repository: str = Field(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    tag: str = Field("latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")


class DisruptionBudget(Model):
    """A PodDisruptionBudget for a component."""

    enabled: bool = True
    min_available: int = Field(1, ge=0)


class ImageBuild(Model):
    """How a component's image is built: its Dockerfile and the files its build context holds."""

    dockerfile: str = Field(pattern=r"^[^/].*")
    context: list[str] = Field(min_length=1, description="Glob patterns, relative to the project.")
    exclude: list[str] = ["**/__pycache__/**", "**/*.pyc", "**/node_modules/**", "**/dist/**"]
    wheelhouse: str | None = Field(
        None,
        description="A pinned requirements file; its wheels are fetched on the host into the "
        "build context (as wheelhouse/), so the build needs no network.",
    )


class Component(Model):
    """One deployable part of the application (backend or frontend)."""

    image: Image
    build: ImageBuild | None = None
    replicas: int = Field(1, ge=0)
    port: Port
    resources: Resources
    probes: Probes
    autoscaling: Autoscaling = Autoscaling()
    disruption_budget: DisruptionBudget = DisruptionBudget()
    env: dict[EnvName, str] = {}
    secret_env: dict[EnvName, SecretRef] = {}
    healthcheck: list[str] = Field(
        default_factory=list,
        description="Compose health check command; empty means derived from the readiness probe.",
    )
    run_as_user: int = Field(10001, ge=1)


class Components(Model):
    """The application's components."""

    backend: Component
    frontend: Component


class Registry(Model):
    """Where images are pushed and pulled from."""

    url: str = Field(pattern=r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$")
    pull_secret: DnsName | None = None


class BaseImages(Model):
    """Base images for the multi-stage builds, passed as build args."""

    python: str = "python:3.11-slim"
    node: str = "node:20-alpine"
    nginx: str = "nginx:alpine"


class Build(Model):
    """How the images are built."""

    base_images: BaseImages = BaseImages()
    backend_workers: int = Field(2, ge=1)
    push_retries: int = Field(3, ge=1, le=10)
    # buildkit: the engine's BuildKit through the Compose binary (parallel stages, incremental
    # context); classic: the engine's legacy builder through the API (engines without BuildKit).
    builder: Literal["buildkit", "classic"] = "buildkit"


class Tls(Model):
    """TLS for the Ingress, issued by cert-manager."""

    enabled: bool = True
    issuer: DnsName = "letsencrypt-prod"
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    secret_name: DnsName


class Ingress(Model):
    """The public entry point: hosts, TLS, ingress class."""

    enabled: bool = True
    class_name: str = "nginx"
    hosts: list[Hostname] = Field(min_length=1)
    tls: Tls
    ssl_redirect: bool = True
    max_body_size: str = Field("1m", pattern=r"^[0-9]+[kmgKMG]?$")


class Rollout(Model):
    """How a new version replaces the old one."""

    strategy: Literal["rolling", "blue-green"] = "rolling"
    auto_promotion: bool = False
    scale_down_delay_seconds: int = Field(30, ge=0)
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = 0


class NetworkPolicies(Model):
    """Who may talk to the pods."""

    enabled: bool = True
    ingress_controller_namespace: DnsLabel = "ingress-nginx"


class Monitoring(Model):
    """Prometheus scraping of the backend."""

    enabled: bool = True
    path: str = Field("/metrics", pattern=r"^/")
    interval: Duration = "30s"
    prometheus_namespace: DnsLabel = "monitoring"
    service_monitor_labels: dict[str, str] = {}
    dashboards: bool = True
    dashboard_labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels the Grafana sidecar looks for on dashboard ConfigMaps.",
    )
    alerts: bool = True
    rule_labels: dict[str, str] = {}
    availability_objective: float = Field(0.999, gt=0.9, lt=1)
    latency_objective_ms: float = Field(200, gt=0)


class Backups(Model):
    """The daily database backup job."""

    enabled: bool = True
    schedule: CronSchedule = "0 2 * * *"
    retention_days: int = Field(30, ge=1)
    storage_size: MemoryQuantity = "10Gi"
    storage_class: str | None = None
    image: str = "postgres:16-alpine"
    run_as_user: int = Field(70, ge=1)
    database_url: SecretRef


class ComposeSettings(Model):
    """Compose-only settings: where ports are published on the host."""

    project_name: DnsLabel | None = None
    bind_address: str = Field("127.0.0.1", pattern=r"^[0-9.]+$|^::1$")
    frontend_port: Port = 8080
    backend_port: Port | None = 8000
    data_volume: DnsLabel = "backend-data"
    health_start_period_seconds: int = Field(
        60,
        ge=0,
        description="Failed health checks in this first period do not count; a pass does.",
    )
    database_url: str = "sqlite:////data/autodevhub.db"
    secrets_dir: str = Field(
        "~/.config/autodevhub/secrets",
        description="Where `autodevhub secrets set` keeps Compose secret files (0600), outside "
        "the repository.",
    )


class KubernetesSettings(Model):
    """Kubernetes-only settings: the API version validated against and the context used."""

    version: str = Field("1.33", pattern=r"^1\.(3[0-7])$")

    @field_validator("version", mode="before")
    @classmethod
    def _quoted_version(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError(
                'write the version in quotes, such as "1.30" or "1.33" (YAML reads 1.30 as '
                "the number 1.3)"
            )
        return value

    context: str | None = None
    kubeconfig: str | None = None


class HttpCheck(Model):
    """A project's own smoke check: one HTTP request and what its answer must be."""

    name: str = Field(min_length=1)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    target: Literal["frontend", "backend"] = "frontend"
    status: int = Field(200, ge=100, le=599)
    contains: str | None = None
    json_body: dict[str, Any] | None = None


class Smoke(Model):
    """Smoke checks run after every deploy and by `autodevhub smoke-test`."""

    base_url: str | None = Field(
        None, description="The frontend's URL; Compose default: http://<bind>:<frontend_port>."
    )
    backend_url: str | None = Field(
        None, description="The backend's URL; Compose default: http://<bind>:<backend_port>."
    )
    timeout_seconds: float = Field(60, gt=0, description="Deadline for retries while settling.")
    round_trip: bool = True
    round_trip_timeout_seconds: float = Field(60, gt=0)
    latency_budget_ms: float = Field(200, gt=0)
    latency_samples: int = Field(20, ge=1, le=1000)
    api_key_env: str | None = Field(
        "SMOKE_API_KEY", description="Environment variable with a bearer key for write calls."
    )
    port_forward: bool = Field(
        False,
        description="Kubernetes: reach the Services through `kubectl port-forward` (when the "
        "runner cannot reach the Ingress).",
    )
    preview_backend_url: str | None = Field(
        None,
        description="Blue-green: the preview backend (backend-preview Service) as the runner "
        "reaches it; API checks run there before promotion.",
    )
    checks: list[HttpCheck] = []


class Migrations(Model):
    """The database migration step a deploy runs before switching versions."""

    enabled: bool = True
    component: Literal["backend", "frontend"] = "backend"
    command: list[str] = Field(default_factory=lambda: ["python3", "-m", "service", "migrate"])
    inputs: list[str] = Field(
        default_factory=list,
        description="Globs of the migration files. When set, the step is skipped while they are "
        "unchanged since the serving release and its workloads run (the database is at head).",
    )


class Environment(Model):
    """All values of one environment, merged from its file, its base, env vars and --set."""

    name: DnsLabel
    app: DnsLabel = "autodevhub"
    target: Literal["compose", "kubernetes"]
    namespace: DnsLabel
    registry: Registry
    build: Build = Build()
    components: Components
    ingress: Ingress
    rollout: Rollout = Rollout()
    network_policies: NetworkPolicies = NetworkPolicies()
    monitoring: Monitoring = Monitoring()
    backups: Backups
    compose: ComposeSettings = ComposeSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    smoke: Smoke = Smoke()
    migrations: Migrations = Migrations()
    labels: dict[str, str] = {}

    @model_validator(mode="after")
    def _pinned_images(self) -> Environment:
        if self.target == "kubernetes":
            for name in ("backend", "frontend"):
                image: Image = getattr(self.components, name).image
                if image.tag == "latest" and image.digest is None:
                    raise ValueError(
                        f"components.{name}.image.tag is 'latest' for a Kubernetes environment; "
                        "pin a tag or a digest (autodevhub build records them)"
                    )
        return self

    def smoke_urls(self) -> tuple[str | None, str | None]:
        """The frontend and backend URLs smoke checks use (Compose: the published ports)."""
        base, backend = self.smoke.base_url, self.smoke.backend_url
        if self.target == "kubernetes" and base is None and self.ingress.enabled:
            scheme = "https" if self.ingress.tls.enabled else "http"
            base = f"{scheme}://{self.ingress.hosts[0]}"
        if self.target == "compose":
            host = self.compose.bind_address
            host = f"[{host}]" if ":" in host else host
            base = base or f"http://{host}:{self.compose.frontend_port}"
            if backend is None and self.compose.backend_port:
                backend = f"http://{host}:{self.compose.backend_port}"
        return base, backend

    def compose_secret_file(self, ref: SecretRef) -> str:
        """The file a Compose secret is read from: <secrets_dir>/<project>/<secret>/<key>."""
        import os

        base = os.path.expanduser(self.compose.secrets_dir)
        return os.path.join(base, self.compose_project(), ref.secret, ref.key)

    def compose_project(self) -> str:
        """The Compose project name: compose.project_name, else <app>-<environment>."""
        return self.compose.project_name or f"{self.app}-{self.name}"

    def secret_refs(self) -> list[SecretRef]:
        """Every Secret key a component uses, once each, sorted."""
        found = {
            (ref.secret, ref.key): ref
            for name in ("backend", "frontend")
            for ref in getattr(self.components, name).secret_env.values()
        }
        return [found[k] for k in sorted(found)]

    def image_ref(self, component: str) -> str:
        """The full reference of a component's image: registry/repository:tag[@digest]."""
        image: Image = getattr(self.components, component).image
        ref = f"{self.registry.url}/{image.repository}:{image.tag}"
        return f"{ref}@{image.digest}" if image.digest else ref
