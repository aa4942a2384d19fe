"""The typed value model of one environment: everything a template may use, nothing more."""

from __future__ import annotations

import re
from collections.abc import Mapping
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


DnsLabel = Annotated[
    str, _matches(_DNS_LABEL, "DNS label (1 to 63 lower-case letters, digits or '-')")
]
DnsName = Annotated[
    str, _matches(_DNS_SUBDOMAIN, "DNS name (at most 253 lower-case letters, digits, -, .)")
]
Hostname = Annotated[str, _matches(_HOSTNAME, "host name such as app.example.com")]
CpuQuantity = Annotated[str, _matches(_CPU, "CPU quantity such as 250m or 0.5")]
MemoryQuantity = Annotated[str, _matches(_MEMORY, "memory quantity such as 256Mi or 1Gi")]
Duration = Annotated[str, _matches(_DURATION, "duration such as 30s or 5m")]
EnvName = Annotated[str, _matches(_ENV_NAME, "environment variable name")]
SecretKey = Annotated[str, _matches(_SECRET_KEY, "Secret key (letters, digits, '-', '_', '.')")]
CronSchedule = Annotated[str, _matches(_CRON, "cron schedule such as '0 2 * * *'")]


def _bool_text(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


# An environment variable's or build arg's value: text. A number or a YAML `true`/`false`
# written without quotes is the text it stands for (`DEBUG: true` is "true").
EnvValue = Annotated[str, BeforeValidator(_bool_text)]
# Kubernetes counts, seconds and ids are int32: a larger value is refused by the API server.
INT32_MAX = 2**31 - 1
Port = Annotated[int, Field(ge=1, le=65535)]
# A Kubernetes port name (IANA_SVC_NAME): at most 15 characters, a letter somewhere.
PortName = Annotated[
    str,
    Field(max_length=15, pattern=r"^[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"),
]


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
    Annotated[int, Field(ge=0, le=INT32_MAX)] | Annotated[str, Field(pattern=r"^[0-9]+%$")],
    BeforeValidator(_count_or_percent),
]


class Model(BaseModel):
    """Base of every value model: unknown fields are errors, never silently ignored."""

    # defer_build: a model's validator is built when it first validates on its own; the
    # Environment's covers every nested model, so a render builds one validator, not 34.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, defer_build=True
    )


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
    """An HTTP probe (Kubernetes) or health check (Compose) on one of the component's ports."""

    path: str = Field("/healthz", pattern=r"^/")
    port: PortName | None = Field(None, description="A named port; default: the first one.")
    initial_delay_seconds: int = Field(0, ge=0, le=INT32_MAX)
    period_seconds: int = Field(10, ge=1, le=INT32_MAX)
    timeout_seconds: int = Field(2, ge=1, le=INT32_MAX)
    failure_threshold: int = Field(3, ge=1, le=INT32_MAX)


class Probes(Model):
    """Liveness and readiness probes of a container."""

    liveness: Probe | None = None
    readiness: Probe | None = None


class Autoscaling(Model):
    """Horizontal pod autoscaling bounds and utilisation targets."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=1, le=INT32_MAX)
    max_replicas: int = Field(1, ge=1, le=INT32_MAX)
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
    """A component's image: a repository under the environment's registry (built or pushed by
    this project) with a tag and an optional digest, or an existing image by full reference."""

    repository: str | None = Field(None, pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    tag: str = Field("latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    ref: str | None = Field(
        None,
        pattern=r"^[a-z0-9][-a-z0-9._:/]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
        r"(@sha256:[0-9a-f]{64})?$",
        description="An existing image, such as redis:7.2@sha256:...; not built here.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Image:
        if (self.repository is None) == (self.ref is None):
            raise ValueError(
                "set either repository (an image of this project, under the registry) or ref "
                "(an existing image such as redis:7.2@sha256:...), not both and not neither"
            )
        return self

    @property
    def pinned(self) -> bool:
        """Whether the reference names one image for good (a digest, or a tag other than latest)."""
        if self.ref is not None:
            if "@sha256:" in self.ref:
                return True
            last = self.ref.rsplit("/", 1)[-1]
            return ":" in last and not last.endswith(":latest")
        return self.digest is not None or self.tag != "latest"


class DisruptionBudget(Model):
    """A PodDisruptionBudget for a component."""

    enabled: bool = True
    min_available: int = Field(1, ge=0, le=INT32_MAX)


class ImageBuild(Model):
    """How a component's image is built: its Dockerfile and the files its build context holds."""

    dockerfile: str = Field(pattern=r"^[^/].*")
    context: list[str] = Field(min_length=1, description="Glob patterns, relative to the project.")
    exclude: list[str] = ["**/__pycache__/**", "**/*.pyc", "**/node_modules/**", "**/dist/**"]
    target: str | None = Field(None, description="The Dockerfile stage to build (default: last).")
    args: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="Build args of this image (over build.args)."
    )
    wheelhouse: str | None = Field(
        None,
        description="A pinned requirements file; its wheels are fetched on the host into the "
        "build context (as wheelhouse/), so the build needs no network.",
    )


class Volume(Model):
    """A volume a component mounts; components that name the same volume share it."""

    path: str = Field(pattern=r"^/")
    read_only: bool = False


class IngressPath(Model):
    """A path prefix of the Ingress hosts routed to this component."""

    path: str = Field(pattern=r"^/")
    port: PortName | None = Field(None, description="A named port; default: the first one.")


class Exposure(Model):
    """How a component is reached from outside: Ingress paths, published Compose ports."""

    ingress: list[IngressPath] = []
    compose: dict[PortName, Port] = Field(
        default_factory=dict,
        description="Compose: host port per named port, published on compose.bind_address.",
    )


class Metrics(Model):
    """Where Prometheus scrapes a component."""

    port: PortName | None = Field(None, description="A named port; default: the first one.")
    path: str = Field("/metrics", pattern=r"^/")


class Task(Model):
    """A one-off command run in the component's new image before the workloads switch (such as
    a database migration); the deploy stops, with nothing switched, when it fails."""

    enabled: bool = True
    command: list[str] = Field(min_length=1)
    inputs: list[str] = Field(
        default_factory=list,
        description="Globs of the files the task depends on. When set, the task is skipped while "
        "they are unchanged since the serving release and its workloads run.",
    )


class Component(Model):
    """One deployable part of the project, named by its key under `components`."""

    image: Image | None = None
    build: ImageBuild | None = None
    command: list[str] | None = Field(None, description="Replaces the image's entrypoint.")
    args: list[str] | None = Field(None, description="Replaces the image's command.")
    ports: dict[PortName, Port] = {}
    replicas: int = Field(1, ge=0, le=INT32_MAX)
    strategy: Literal["rolling", "blue-green"] = Field(
        "rolling", description="Kubernetes: blue-green is an Argo Rollouts Rollout."
    )
    resources: Resources
    probes: Probes = Field(default_factory=Probes)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
    env: dict[EnvName, EnvValue] = {}
    secret_env: dict[EnvName, SecretRef] = {}
    volumes: dict[DnsLabel, Volume] = {}
    expose: Exposure = Field(default_factory=Exposure)
    metrics: Metrics | None = None
    depends_on: list[DnsLabel] = Field(
        default_factory=list, description="Components that must be healthy before this one starts."
    )
    tasks: dict[DnsLabel, Task] = {}
    healthcheck: list[str] = Field(
        default_factory=list,
        description="Compose health check command; empty means derived from the readiness probe.",
    )
    run_as_user: int = Field(10001, ge=1, le=INT32_MAX)

    @model_validator(mode="after")
    def _consistent(self) -> Component:
        if self.image is None:
            needs = f"its tasks ({', '.join(self.tasks)}) run in it and " if self.tasks else ""
            raise ValueError(
                f"the component has no image: {needs}every component runs one; set "
                "image.repository (built by this project) or image.ref (an existing image)"
            )
        if self.build is not None and self.image.repository is None:
            raise ValueError(
                "build: a built image is pushed under the registry; set image.repository "
                "instead of image.ref"
            )
        names = list(self.ports)
        used = [
            (f"probes.{kind}.port", probe.port)
            for kind, probe in (
                ("liveness", self.probes.liveness),
                ("readiness", self.probes.readiness),
            )
            if probe is not None
        ]
        used += [(f"expose.ingress[{i}].port", p.port) for i, p in enumerate(self.expose.ingress)]
        used += [(f"expose.compose.{p}", p) for p in self.expose.compose]
        if self.metrics is not None:
            used.append(("metrics.port", self.metrics.port))
        for where, port in used:
            if not names:
                raise ValueError(f"{where}: the component declares no ports; add `ports:`")
            if port is not None and port not in self.ports:
                raise ValueError(f"{where}: no port named {port!r} (ports: {', '.join(names)})")
        return self

    def port_of(self, name: str | None = None) -> int:
        """The number of a named port (default: the first port)."""
        return self.ports[name] if name else next(iter(self.ports.values()))

    def port_name(self, name: str | None = None) -> str:
        """A port's name (default: the first port's)."""
        return name or next(iter(self.ports))

    def probe_list(self) -> list[tuple[str, Probe]]:
        """(kind, probe) of the probes it declares, liveness first."""
        pairs = (("liveness", self.probes.liveness), ("readiness", self.probes.readiness))
        return [(kind, probe) for kind, probe in pairs if probe is not None]


class Registry(Model):
    """Where images are pushed and pulled from."""

    url: str = Field(pattern=r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$")
    pull_secret: DnsName | None = None


class Build(Model):
    """How the images are built."""

    args: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Build args for every image whose Dockerfile declares them (base images, "
        "versions); a component's build.args win.",
    )
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
    """How a new version replaces the old one (a component's `strategy` picks which)."""

    auto_promotion: bool = False
    scale_down_delay_seconds: int = Field(30, ge=0, le=INT32_MAX)
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = 0


class EgressRule(Model):
    """Destinations a component's pods may open connections to."""

    cidrs: list[str] = Field(min_length=1, description="Such as 10.0.0.0/8 or 0.0.0.0/0.")
    except_cidrs: list[str] = []
    ports: list[Port] = Field(min_length=1)


class NetworkPolicies(Model):
    """Who may talk to the pods."""

    enabled: bool = True
    ingress_controller_namespace: DnsLabel = "ingress-nginx"
    egress: dict[DnsLabel, list[EgressRule]] = Field(
        default_factory=dict,
        description="Per component: the only destinations its pods may reach (DNS is always "
        "allowed). A component not listed may reach anything.",
    )


class Monitoring(Model):
    """Prometheus scraping of the components that declare `metrics`."""

    enabled: bool = True
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
    retention_days: int = Field(30, ge=1, le=36500)
    storage_size: MemoryQuantity = "10Gi"
    storage_class: str | None = None
    image: str = "postgres:16-alpine"
    run_as_user: int = Field(10070, ge=1, le=INT32_MAX)
    database_url: SecretRef | None = None

    @model_validator(mode="after")
    def _has_database(self) -> Backups:
        if self.enabled and self.database_url is None:
            raise ValueError(
                "set database_url (the Secret key holding the database URL), or enabled: false"
            )
        return self


class ReleaseHistory(Model):
    """The release history, kept in the target: Secrets in the namespace on Kubernetes, volumes
    on the Docker host for Compose."""

    keep: int = Field(
        10,
        ge=1,
        le=1000,
        description="Releases kept; older ones are deleted, never the one serving, the last "
        "good one or a preview waiting for promotion.",
    )


class ComposeSettings(Model):
    """Compose-only settings: the project name and where ports are published on the host."""

    project_name: DnsLabel | None = None
    bind_address: str = Field("127.0.0.1", pattern=r"^[0-9.]+$|^::1$")
    health_start_period_seconds: int = Field(
        60,
        ge=0,
        description="Failed health checks in this first period do not count; a pass does.",
    )
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
    require_image_digests: bool = Field(
        False,
        description="A deploy refuses to apply a container image that is not pinned by digest "
        "(name@sha256:...): a tag can be moved to other contents, a digest cannot.",
    )


_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_CAPTURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def placeholders(text: str) -> list[str]:
    """The `${...}` names in a smoke request value (`env:NAME` reads the runner's environment)."""
    return _PLACEHOLDER.findall(text)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with each `${name}` replaced from `values` (every name must be there)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


class Expect(Model):
    """What a smoke request's answer must be."""

    status: int = Field(200, ge=100, le=599)
    contains: str | None = Field(None, description="Text the body must contain.")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="JSON fields (dotted paths) and their expected values."
    )
    not_empty: list[str] = Field(
        default_factory=list, description="JSON fields (dotted paths) that must be non-empty."
    )


class Poll(Model):
    """Repeat a request until a JSON field says the work is done."""

    until: dict[str, Any] = Field(min_length=1, description="Dotted JSON path -> value.")
    fail_when: dict[str, Any] = Field(default_factory=dict, description="Stop early on these.")
    interval_seconds: float = Field(0.2, gt=0, le=86400, allow_inf_nan=False)
    timeout_seconds: float = Field(60, gt=0, le=86400, allow_inf_nan=False)


Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class Step(Model):
    """One request of a smoke check, what its answer must be, and the values it captures."""

    method: Method = "GET"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = {}
    body: Any = Field(None, description="Sent as JSON (a mapping or list) or as text.")
    expect: Expect = Field(default_factory=Expect)
    poll: Poll | None = None
    capture: dict[str, str] = Field(
        default_factory=dict,
        description="Name -> dotted JSON path of the answer; later steps use it as ${name}.",
    )

    def texts(self) -> list[tuple[str, str]]:
        """(field, text) of every value that may hold ${...} placeholders."""
        found = [("path", self.path)]
        found += [(f"headers.{k}", v) for k, v in self.headers.items()]
        found += [(f"body{where}", text) for where, text in _strings(self.body)]
        return found


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}.{i}")]
    return []


class Latency(Model):
    """A latency budget: a percentile over N requests."""

    samples: int = Field(20, ge=1, le=1000)
    percentile: int = Field(95, ge=1, le=100)
    budget_ms: float = Field(gt=0, allow_inf_nan=False)


class SmokeCheck(Model):
    """A project's smoke check against one component: one request (`path`, optionally with a
    latency budget), or a sequence of `steps` that pass values from one answer to the next."""

    name: str = Field(min_length=1)
    component: DnsLabel
    method: Method = "GET"
    path: str | None = Field(None, pattern=r"^/")
    headers: dict[str, str] = {}
    body: Any = None
    expect: Expect = Field(default_factory=Expect)
    latency: Latency | None = None
    steps: list[Step] = []

    @model_validator(mode="after")
    def _one_form(self) -> SmokeCheck:
        if (self.path is None) == (not self.steps):
            raise ValueError("give either path (one request) or steps (a sequence), not both")
        if self.latency is not None and self.steps:
            raise ValueError("latency applies to a one-request check (path), not to steps")
        return self

    def requests(self) -> list[Step]:
        """The check's requests in order (a one-request check is a one-step sequence)."""
        if self.steps:
            return self.steps
        assert self.path is not None
        return [
            Step(
                method=self.method,
                path=self.path,
                headers=self.headers,
                body=self.body,
                expect=self.expect,
            )
        ]


class Smoke(Model):
    """Smoke checks run after every deploy and by `autodevhub smoke-test`."""

    timeout_seconds: float = Field(
        60, gt=0, le=86400, allow_inf_nan=False, description="Deadline for retries while settling."
    )
    confirm_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="A check whose target answers, but answers the same wrong thing (a 500, a "
        "wrong body) this many times in a row, fails at once instead of waiting for the "
        "deadline; refused connections and 502/503/504 count as settling.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request; a header whose ${env:NAME} is unset is not sent.",
    )
    probes: bool = Field(
        True,
        description="Also GET each reachable component's liveness and readiness probe paths.",
    )
    port_forward: bool = Field(
        False,
        description="Kubernetes: reach each component through `kubectl port-forward` to the "
        "Service named after it (when the runner cannot reach the Ingress).",
    )
    urls: dict[DnsLabel, str] = Field(
        default_factory=dict,
        description="Component -> URL the runner reaches it at (over the derived one).",
    )
    preview_urls: dict[DnsLabel, str] = Field(
        default_factory=dict,
        description="Blue-green: component -> URL of its preview, checked before promotion.",
    )
    checks: list[SmokeCheck] = []


Problem = tuple[tuple[str, ...], str]


class Environment(Model):
    """All values of one environment, merged from its file, its base, env vars and --set."""

    name: DnsLabel
    app: DnsLabel = "autodevhub"
    target: Literal["compose", "kubernetes"]
    namespace: DnsLabel
    registry: Registry
    build: Build = Field(default_factory=Build)
    components: dict[DnsLabel, Component] = Field(min_length=1)
    ingress: Ingress
    rollout: Rollout = Field(default_factory=Rollout)
    network_policies: NetworkPolicies = Field(default_factory=NetworkPolicies)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    backups: Backups = Field(default_factory=lambda: Backups(enabled=False))
    compose: ComposeSettings = Field(default_factory=ComposeSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    smoke: Smoke = Field(default_factory=Smoke)
    releases: ReleaseHistory = Field(default_factory=ReleaseHistory)
    labels: dict[str, str] = {}

    def problems(self) -> list[Problem]:
        """Cross-field errors (references between components, checks and settings), each with
        the dotted path it is about."""
        found: list[Problem] = []
        known = ", ".join(self.components)

        def ref(path: tuple[str, ...], name: str) -> None:
            if name not in self.components:
                found.append((path, f"no component named {name!r} (components: {known})"))

        at: tuple[str, ...]
        for cname, c in self.components.items():
            at = ("components", cname)
            for i, dep in enumerate(c.depends_on):
                ref((*at, "depends_on", str(i)), dep)
                if dep == cname:
                    found.append(
                        ((*at, "depends_on", str(i)), "a component cannot depend on itself")
                    )
            assert c.image is not None
            if self.target == "kubernetes" and not c.image.pinned:
                field = "ref" if c.image.ref else "tag"
                found.append(
                    (
                        (*at, "image", field),
                        f"components.{cname}.image.{field} is 'latest' for a Kubernetes "
                        "environment; pin a tag or a digest (autodevhub build records them)",
                    )
                )
        for cname in self.network_policies.egress:
            ref(("network_policies", "egress", cname), cname)
        for field in ("urls", "preview_urls"):
            for cname in getattr(self.smoke, field):
                ref(("smoke", field, cname), cname)
        for i, check in enumerate(self.smoke.checks):
            at = ("smoke", "checks", str(i))
            if check.component not in self.components:
                ref((*at, "component"), check.component)
            elif not self.reachable(check.component):
                found.append(
                    (
                        (*at, "component"),
                        f"check {check.name!r} goes to component {check.component!r}, which the "
                        f"runner cannot reach on {self.target}: "
                        + (
                            f"publish a port (components.{check.component}.expose.compose)"
                            if self.target == "compose"
                            else f"add an ingress path (components.{check.component}.expose."
                            "ingress), turn on smoke.port_forward"
                        )
                        + f", or set smoke.urls.{check.component}",
                    )
                )
            found += _capture_problems(at, check)
        return found

    def reachable(self, name: str) -> bool:
        """Whether smoke checks can reach a component without a URL given on the command line."""
        c = self.components[name]
        if name in self.smoke.urls:
            return True
        if self.target == "compose":
            return bool(c.expose.compose)
        if self.smoke.port_forward:
            return bool(c.ports)
        return self.ingress.enabled and bool(c.expose.ingress)

    def blue_green(self) -> list[str]:
        """The components deployed blue-green."""
        return [n for n, c in self.components.items() if c.strategy == "blue-green"]

    def built(self) -> list[str]:
        """The components whose image this project builds."""
        return [n for n, c in self.components.items() if c.build is not None]

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
            for component in self.components.values()
            for ref in component.secret_env.values()
        }
        return [found[k] for k in sorted(found)]

    def volume_names(self) -> list[str]:
        """Every volume a component mounts, once each, in declaration order."""
        return list(dict.fromkeys(v for c in self.components.values() for v in c.volumes))

    def image_ref(self, component: str) -> str:
        """The full reference of a component's image: registry/repository:tag[@digest], or its
        `ref` for an existing image."""
        image = self.components[component].image
        assert image is not None
        if image.ref is not None:
            return image.ref
        ref = f"{self.registry.url}/{image.repository}:{image.tag}"
        return f"{ref}@{image.digest}" if image.digest else ref


def _capture_problems(at: tuple[str, ...], check: SmokeCheck) -> list[Problem]:
    """Placeholders a step uses that no earlier step of the check captures."""
    found: list[Problem] = []
    captured: set[str] = set()
    for n, step in enumerate(check.requests()):
        here = (*at, "steps", str(n)) if check.steps else at
        for field, text in step.texts():
            for name in placeholders(text):
                if name.startswith("env:") and _ENV_NAME.match(name[4:]):
                    continue
                if name not in captured:
                    so_far = (
                        f" (captured so far: {', '.join(sorted(captured))})" if captured else ""
                    )
                    found.append(
                        (
                            (*here, *field.split(".")),
                            f"${{{name}}} is not captured by an earlier step of check "
                            f"{check.name!r}{so_far}; capture it with `capture:`, or write "
                            "${env:NAME} for an environment variable",
                        )
                    )
        for name in step.capture:
            if not _CAPTURE_NAME.match(name):
                found.append(((*here, "capture", name), "a capture name is a word such as id"))
            captured.add(name)
    return found
