"""The typed value model of one environment: everything a template may use, nothing more."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
_PROJECT_PATH = re.compile(r"^(?!/)(?!(.*/)?\.\.(/|$))[^\0]+$")
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
ProjectPath = Annotated[
    str, _matches(_PROJECT_PATH, "path inside the project folder (relative, without '..')")
]


def _bool_text(value: object) -> object:
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


def _count_or_percent(value: object) -> object:
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
    """An amount of CPU and memory, as resource requests or limits."""

    cpu: CpuQuantity = Field(description="CPU in cores (0.5) or millicores (250m).")
    memory: MemoryQuantity = Field(
        description="Memory in bytes, with an optional unit such as Mi or Gi (256Mi, 1Gi)."
    )


class Resources(Model):
    """The CPU and memory a component's containers (and its tasks) reserve and may use."""

    requests: Amounts = Field(
        description="CPU and memory reserved for each container (Kubernetes requests, Compose "
        "reservations)."
    )
    limits: Amounts = Field(
        description="The most CPU and memory each container may use; no request may be above "
        "its limit."
    )

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

    path: str = Field(
        "/healthz", pattern=r"^/", description="The HTTP path the probe requests (a GET)."
    )
    port: PortName | None = Field(
        None, description="The name of the port to probe; default: the component's first port."
    )
    initial_delay_seconds: int = Field(
        0,
        ge=0,
        le=INT32_MAX,
        description="Seconds after the container starts before the first probe (Compose: the "
        "start period, at least compose.health_start_period_seconds).",
    )
    period_seconds: int = Field(10, ge=1, le=INT32_MAX, description="Seconds between two probes.")
    timeout_seconds: int = Field(
        2, ge=1, le=INT32_MAX, description="Seconds a probe may take before it counts as failed."
    )
    failure_threshold: int = Field(
        3,
        ge=1,
        le=INT32_MAX,
        description="Failed probes in a row before the container counts as failed (restarted, "
        "taken out of rotation or unhealthy).",
    )


class Probes(Model):
    """The liveness and readiness probes of a component's container."""

    liveness: Probe | None = Field(
        None,
        description="Kubernetes: the container is restarted when this probe keeps failing; "
        "none when unset.",
    )
    readiness: Probe | None = Field(
        None,
        description="Kubernetes: a pod gets traffic only while this probe passes. Compose: the "
        "health check, unless the component sets healthcheck.",
    )


class Autoscaling(Model):
    """Kubernetes: a HorizontalPodAutoscaler for the component, with its replica bounds and
    utilisation targets."""

    enabled: bool = Field(False, description="Create the HorizontalPodAutoscaler.")
    min_replicas: int = Field(
        1, ge=1, le=INT32_MAX, description="The fewest pods the autoscaler keeps running."
    )
    max_replicas: int = Field(
        1, ge=1, le=INT32_MAX, description="The most pods the autoscaler may run."
    )
    cpu_utilization: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Target average CPU use, in percent of the CPU request; unset: CPU does not "
        "drive scaling.",
    )
    memory_utilization: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Target average memory use, in percent of the memory request; unset: memory "
        "does not drive scaling.",
    )

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

    secret: DnsName = Field(
        description="The Secret's name; on Compose, the folder under compose.secrets_dir (per "
        "project) that holds its keys as files."
    )
    key: SecretKey = Field(description="The key within that Secret whose value is used.")


class Image(Model):
    """A component's image: a repository under the environment's registry (built or pushed by
    this project) with a tag and an optional digest, or an existing image by full reference."""

    repository: str | None = Field(
        None,
        pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$",
        description="The image's repository under registry.url, such as myapp/api.",
    )
    tag: str = Field(
        "latest",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="The tag of the repository's image; Kubernetes refuses latest without a "
        "digest (--images sets the built tag).",
    )
    digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Pins the repository's image to this digest (rendered as "
        "repository:tag@digest).",
    )
    ref: str | None = Field(
        None,
        pattern=r"^[a-z0-9][-a-z0-9._:/]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
        r"(@sha256:[0-9a-f]{64})?$",
        description="An existing image by full reference, such as redis:7.2@sha256:...; not "
        "built here (instead of repository).",
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
    """Kubernetes: a PodDisruptionBudget that keeps some of a component's pods up during voluntary
    disruptions such as node drains."""

    enabled: bool = Field(
        True,
        description="Create the budget, when the (minimum) replicas are above min_available.",
    )
    min_available: int = Field(
        1, ge=0, le=INT32_MAX, description="Pods that must stay available during a disruption."
    )


class ImageBuild(Model):
    """How a component's image is built: its Dockerfile and the files its build context holds."""

    dockerfile: str = Field(
        pattern=r"^[^/].*", description="The Dockerfile, relative to the project folder."
    )
    context: list[str] = Field(
        min_length=1,
        description="Glob patterns, relative to the project, of the files in the build context.",
    )
    exclude: list[str] = Field(
        ["**/__pycache__/**", "**/*.pyc", "**/node_modules/**", "**/dist/**"],
        description="Glob patterns of files left out of the build context.",
    )
    target: str | None = Field(
        None, description="The Dockerfile stage to build; default: the last one."
    )
    args: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Build args of this image; they win over the environment's build.args.",
    )
    wheelhouse: str | None = Field(
        None,
        description="A pinned requirements file; its wheels are fetched on the host into the "
        "build context (as wheelhouse/), so the build needs no network.",
    )


class Volume(Model):
    """A volume a component mounts; components that name the same volume share it. Its storage
    is set under the environment's `volumes` (a default claim when not)."""

    path: str = Field(pattern=r"^/", description="Where the volume is mounted in the container.")
    read_only: bool = Field(False, description="Mount the volume read-only.")


class VolumeClaim(Model):
    """The storage behind a volume: on Kubernetes a PersistentVolumeClaim of the volume's name,
    on Compose a named volume of the project."""

    size: MemoryQuantity = Field(
        "1Gi", description="Kubernetes: the storage the claim requests, such as 1Gi."
    )
    storage_class: str | None = Field(
        None, description="Kubernetes: the claim's storage class; default: the cluster's default."
    )
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = Field(
        "ReadWriteOnce", description="Kubernetes: the claim's access mode."
    )


class IngressPath(Model):
    """Kubernetes: a path prefix of the Ingress hosts routed to this component."""

    path: str = Field(
        pattern=r"^/", description="The URL path prefix, on every Ingress host, such as /api."
    )
    port: PortName | None = Field(
        None, description="The name of the port it goes to; default: the component's first port."
    )


class Exposure(Model):
    """How a component is reached from outside: Ingress paths, published Compose ports."""

    ingress: list[IngressPath] = Field(
        default_factory=list,
        description="Kubernetes: the path prefixes of the Ingress hosts routed to this component.",
    )
    compose: dict[PortName, Port] = Field(
        default_factory=dict,
        description="Compose: host port per named port, published on compose.bind_address.",
    )


class Metrics(Model):
    """Kubernetes: where Prometheus scrapes a component (when monitoring is enabled)."""

    port: PortName | None = Field(
        None, description="The name of the port to scrape; default: the component's first port."
    )
    path: str = Field("/metrics", pattern=r"^/", description="The HTTP path Prometheus scrapes.")


class Task(Model):
    """A one-off command run in the component's new image before the workloads switch (such as
    a database migration); the deploy stops, with nothing switched, when it fails."""

    enabled: bool = Field(True, description="Run the task on deploy; false skips it.")
    command: list[str] = Field(
        min_length=1,
        description="The command to run, replacing the image's entrypoint; it must exit 0.",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="Globs of the files the task depends on. When set, the task is skipped while "
        "they are unchanged since the serving release and its workloads run.",
    )


class DevelopSync(Model):
    """A folder or file of the project that `autodevhub dev` mounts into the running container."""

    path: ProjectPath = Field(
        description="The folder or file, relative to the project folder (such as `src`)."
    )
    target: str = Field(
        pattern=r"^/", description="Where it appears in the container (such as /app/src)."
    )


class Develop(Model):
    """How `autodevhub dev` brings an edit into the running component (Compose)."""

    sync: list[DevelopSync] = Field(
        default_factory=list,
        description="Project paths mounted read-only into the container while `autodevhub dev` "
        "runs: an edit is in the container at once, with no build.",
    )
    restart: bool = Field(
        False,
        description="Restart the container after a synced file changes (for a process that "
        "reads its code only when it starts).",
    )
    exec: list[str] | None = Field(
        None,
        min_length=1,
        description="A command run in the container after a synced file changes, instead of a "
        "restart (one that makes the process reload).",
    )
    rebuild: list[str] = Field(
        default_factory=list,
        description="Globs of project files whose change rebuilds the image and redeploys the "
        "component (a lock file, the Dockerfile). A change to the build context outside the "
        "synced paths rebuilds too.",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="Globs of project files whose change does nothing to this component.",
    )

    @model_validator(mode="after")
    def _one_reload(self) -> Develop:
        if self.restart and self.exec:
            raise ValueError("set restart or exec, not both: each is how the process reloads")
        return self


class Component(Model):
    """One deployable part of the project, named by its key under `components`."""

    image: Image | None = Field(
        None, description="The image the component runs: built by this project, or existing."
    )
    build: ImageBuild | None = Field(
        None,
        description="How this project builds the image; unset when it is built elsewhere or by "
        "another component.",
    )
    command: list[str] | None = Field(
        None, description="Replaces the image's entrypoint; default: the image's own."
    )
    args: list[str] | None = Field(
        None, description="Replaces the image's command (the entrypoint's arguments)."
    )
    ports: dict[PortName, Port] = Field(
        default_factory=dict,
        description="Named TCP ports the container listens on, such as {http: 8000}; the first "
        "one is the default where a port is not named.",
    )
    replicas: int = Field(
        1,
        ge=0,
        le=INT32_MAX,
        description="How many copies run: Kubernetes pods (with autoscaling, an existing "
        "workload's count is left to the autoscaler), or Compose containers (one, for a "
        "component that publishes a port on the host).",
    )
    strategy: Literal["rolling", "blue-green"] = Field(
        "rolling",
        description="Kubernetes: rolling updates a Deployment; blue-green uses an Argo Rollouts "
        "Rollout whose new version waits as a preview until promoted.",
    )
    resources: Resources = Field(
        description="CPU and memory requests and limits of the container and of its tasks."
    )
    probes: Probes = Field(
        default_factory=Probes, description="HTTP liveness and readiness probes of the container."
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling,
        description="Kubernetes: horizontal pod autoscaling; off by default.",
    )
    disruption_budget: DisruptionBudget = Field(
        default_factory=DisruptionBudget,
        description="Kubernetes: the PodDisruptionBudget that limits voluntary evictions.",
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Environment variables of the container and its tasks, as text; put "
        "secrets in secret_env.",
    )
    secret_env: dict[EnvName, SecretRef] = Field(
        default_factory=dict,
        description="Variable name -> Secret key, mounted read-only as the file "
        "/run/secrets/<name in lower case>, never as an environment variable.",
    )
    volumes: dict[DnsLabel, Volume] = Field(
        default_factory=dict,
        description="Volumes mounted in the container, by volume name; components that name "
        "the same volume share it.",
    )
    expose: Exposure = Field(
        default_factory=Exposure,
        description="How it is reached from outside: Ingress paths and published Compose ports.",
    )
    metrics: Metrics | None = Field(
        None, description="Kubernetes: where Prometheus scrapes it; unset: it is not scraped."
    )
    depends_on: list[DnsLabel] = Field(
        default_factory=list,
        description="Components this one calls. Compose: they must be healthy before it "
        "starts. Kubernetes: the network policies let it reach them.",
    )
    tasks: dict[DnsLabel, Task] = Field(
        default_factory=dict,
        description="One-off commands by name, such as a migration, run in the new image "
        "before the workloads switch.",
    )
    healthcheck: list[str] = Field(
        default_factory=list,
        description="Compose: the health check command (a Docker test, such as [CMD, ...]); "
        "empty: a request to the readiness probe's path.",
    )
    run_as_user: int = Field(
        10001,
        ge=1,
        le=INT32_MAX,
        description="The user and group id the container and its tasks run as (never root).",
    )
    develop: Develop = Field(
        default_factory=Develop,
        description="`autodevhub dev`: which edits are synced into the running container (and "
        "how it reloads), which rebuild it, which do nothing.",
    )

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
    """The container registry this project's images are pushed to and pulled from."""

    url: str = Field(
        pattern=r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$",
        description="The registry's host, optional port and path, such as localhost:5000; "
        "image repositories go under it.",
    )
    pull_secret: DnsName | None = Field(
        None,
        description="Kubernetes: the Secret the pods pull images with (imagePullSecrets); "
        "none when unset.",
    )


class Build(Model):
    """How this project's images are built and pushed."""

    args: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Build args for every image whose Dockerfile declares them (base images, "
        "versions); a component's build.args win.",
    )
    push_retries: int = Field(
        3, ge=1, le=10, description="Attempts at pushing an image before the build fails."
    )
    # buildkit: the engine's BuildKit through the Compose binary (parallel stages, incremental
    # context); classic: the engine's legacy builder through the API (engines without BuildKit).
    builder: Literal["buildkit", "classic"] = Field(
        "buildkit",
        description="buildkit: the engine's BuildKit (parallel stages); classic: the engine's "
        "legacy builder, for engines without BuildKit.",
    )


class Tls(Model):
    """Kubernetes: TLS for the Ingress hosts, with a certificate issued by cert-manager."""

    enabled: bool = Field(True, description="Serve the Ingress hosts over HTTPS.")
    issuer: DnsName = Field(
        "letsencrypt-prod", description="The cert-manager issuer that signs the certificate."
    )
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field(
        "ClusterIssuer",
        description="Whether issuer is a ClusterIssuer or an Issuer in the namespace.",
    )
    secret_name: DnsName = Field(
        description="The Secret cert-manager stores the certificate and its key in."
    )


class Ingress(Model):
    """Kubernetes: the public entry point, an Ingress with its hosts, TLS and ingress class."""

    enabled: bool = Field(
        True, description="Create the Ingress for the components' expose.ingress paths."
    )
    class_name: str = Field(
        "nginx", description="The ingress class that serves it (ingressClassName)."
    )
    hosts: list[Hostname] = Field(
        min_length=1,
        description="The host names it serves; smoke checks use the first one.",
    )
    tls: Tls = Field(description="TLS for the hosts, with a certificate from cert-manager.")
    ssl_redirect: bool = Field(
        True, description="Redirect HTTP requests to HTTPS (when TLS is enabled)."
    )
    max_body_size: str = Field(
        "1m",
        pattern=r"^[0-9]+[kmgKMG]?$",
        description="The largest request body nginx accepts, such as 1m or 10m (proxy-body-size).",
    )


class Rollout(Model):
    """Kubernetes: how a new version replaces the old one (a component's `strategy` picks rolling
    or blue-green)."""

    auto_promotion: bool = Field(
        False,
        description="Blue-green: promote the new version as soon as it is ready; false: it "
        "waits as the preview for `autodevhub promote`.",
    )
    scale_down_delay_seconds: int = Field(
        30,
        ge=0,
        le=INT32_MAX,
        description="Blue-green: seconds the old version keeps running after a promotion.",
    )
    max_surge: IntOrPercent = Field(
        "25%",
        description="Rolling: pods (a count, or a percentage of replicas) allowed above the "
        "desired number during an update.",
    )
    max_unavailable: IntOrPercent = Field(
        0,
        description="Rolling: pods (a count, or a percentage of replicas) that may be "
        "unavailable during an update.",
    )


class EgressRule(Model):
    """Destinations a component's pods may open connections to."""

    cidrs: list[str] = Field(
        min_length=1, description="IP ranges the pods may connect to, such as 10.0.0.0/8."
    )
    except_cidrs: list[str] = Field(
        default_factory=list,
        description="Ranges within cidrs the pods may not connect to, such as private networks.",
    )
    ports: list[Port] = Field(
        min_length=1, description="The TCP ports the pods may connect to on those ranges."
    )


class NetworkPolicies(Model):
    """Kubernetes: NetworkPolicies that say who may talk to the pods, and where some pods may
    connect."""

    enabled: bool = Field(
        True,
        description="Deny traffic to the pods except from the ingress controller, the components "
        "that depend on them and Prometheus.",
    )
    ingress_controller_namespace: DnsLabel = Field(
        "ingress-nginx",
        description="The ingress controller's namespace, allowed to reach components with "
        "Ingress paths.",
    )
    egress: dict[DnsLabel, list[EgressRule]] = Field(
        default_factory=dict,
        description="Per component: the only destinations its pods may reach (DNS is always "
        "allowed). A component not listed may reach anything.",
    )


class Monitoring(Model):
    """Kubernetes: Prometheus scraping of the components that declare `metrics`, and the dashboard
    and alerts the templates render."""

    enabled: bool = Field(
        True,
        description="Create a ServiceMonitor for each component that declares metrics; false "
        "also turns off the dashboard and alerts.",
    )
    interval: Duration = Field(
        "30s", description="How often Prometheus scrapes, such as 30s or 1m."
    )
    prometheus_namespace: DnsLabel = Field(
        "monitoring",
        description="Prometheus's namespace, allowed by the network policies to reach the "
        "metrics ports.",
    )
    service_monitor_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to each ServiceMonitor, such as the one Prometheus selects "
        "them by.",
    )
    dashboards: bool = Field(True, description="Render the Grafana dashboard as a ConfigMap.")
    dashboard_labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels the Grafana sidecar looks for on dashboard ConfigMaps.",
    )
    alerts: bool = Field(True, description="Render the alerting rules as a PrometheusRule.")
    rule_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to the PrometheusRule, such as the one Prometheus selects "
        "rules by.",
    )


class Backups(Model):
    """Kubernetes: the scheduled database backup, a CronJob that runs pg_dump into a volume of its
    own."""

    enabled: bool = Field(
        True, description="Create the backup CronJob and its volume; needs database_url."
    )
    schedule: CronSchedule = Field(
        "0 2 * * *", description="When the backup runs, as a cron schedule such as '0 2 * * *'."
    )
    retention_days: int = Field(
        30,
        ge=1,
        le=36500,
        description="Days a backup is kept; each run deletes older ones.",
    )
    storage_size: MemoryQuantity = Field(
        "10Gi", description="The size of the volume the backups are written to, such as 10Gi."
    )
    storage_class: str | None = Field(
        None, description="The backup volume's storage class; default: the cluster's default."
    )
    image: str = Field(
        "postgres:16-alpine",
        description="The image the job runs pg_dump from; pin it by digest.",
    )
    run_as_user: int = Field(
        10070, ge=1, le=INT32_MAX, description="The user and group id the backup job runs as."
    )
    database_url: SecretRef | None = Field(
        None,
        description="Kubernetes: the Secret key holding the PostgreSQL URL of the database the "
        "backup CronJob dumps.",
    )
    component: str | None = Field(
        None,
        description="The component whose database `autodevhub db backup` and `db restore` "
        "work on when no --database-url is given: on Compose, the SQLite file that the "
        "component's `url_env` variable names, read from the volume it lies on.",
    )
    url_env: EnvName | None = Field(
        None,
        description="The variable of `component`'s env that holds its database URL, such as "
        "DATABASE_URL.",
    )

    @model_validator(mode="after")
    def _has_database(self) -> Backups:
        if self.enabled and self.database_url is None:
            raise ValueError(
                "set database_url (the Secret key holding the database URL), or enabled: false"
            )
        if (self.component is None) != (self.url_env is None):
            raise ValueError(
                "set both component and url_env (the component whose database it is, and the "
                "env variable holding its URL), or neither"
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

    project_name: DnsLabel | None = Field(
        None, description="The Compose project name; default: <app>-<environment name>."
    )
    bind_address: str = Field(
        "127.0.0.1",
        pattern=r"^[0-9.]+$|^::1$",
        description="The host address published ports listen on; 127.0.0.1 keeps them local.",
    )
    health_start_period_seconds: int = Field(
        60,
        ge=0,
        description="Seconds after a container starts in which failed health checks do not "
        "count; a pass does.",
    )
    secrets_dir: str = Field(
        "~/.config/autodevhub/secrets",
        description="Where `autodevhub secrets set` keeps Compose secret files (0600), outside "
        "the repository.",
    )
    develop_from: str | None = Field(
        None,
        pattern=r"^/",
        description="Set by `autodevhub dev`, not in environment files: the project folder whose "
        "`develop.sync` paths are mounted into the containers.",
    )


class KubernetesSettings(Model):
    """Kubernetes-only settings: the API version validated against and the cluster used."""

    version: str = Field(
        "1.33",
        pattern=r"^1\.(3[0-7])$",
        description="The Kubernetes version the rendered objects are validated against, in "
        'quotes, such as "1.33".',
    )

    @field_validator("version", mode="before")
    @classmethod
    def _quoted_version(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError(
                'write the version in quotes, such as "1.30" or "1.33" (YAML reads 1.30 as '
                "the number 1.3)"
            )
        return value

    context: str | None = Field(
        None, description="The kube context to use; default: the current one (--context wins)."
    )
    kubeconfig: str | None = Field(
        None,
        description="The kubeconfig file; default: $KUBECONFIG, else ~/.kube/config "
        "(--kubeconfig wins).",
    )
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

    status: int = Field(200, ge=100, le=599, description="The HTTP status the answer must have.")
    contains: str | None = Field(None, description="Text the body must contain.")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="JSON fields (dotted paths) and their expected values."
    )
    not_empty: list[str] = Field(
        default_factory=list, description="JSON fields (dotted paths) that must be non-empty."
    )


class Poll(Model):
    """Repeat a request until a JSON field says the work is done."""

    until: dict[str, Any] = Field(
        min_length=1,
        description="Dotted JSON paths and the values that mean done; the request repeats "
        "until the answer has them.",
    )
    fail_when: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted JSON paths and the values that mean the work failed; the check "
        "fails at once.",
    )
    interval_seconds: float = Field(
        0.2,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds between two requests.",
    )
    timeout_seconds: float = Field(
        60,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds the polling may take; the check's deadline grows by as much.",
    )


Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class Step(Model):
    """One request of a smoke check, what its answer must be, and the values it captures."""

    method: Method = Field("GET", description="The HTTP method of the request.")
    path: str = Field(
        pattern=r"^/",
        description="The path requested on the component's URL; may hold ${name} and ${env:NAME}.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers of this request, over smoke.headers; values may hold ${name} and "
        "${env:NAME}.",
    )
    body: Any = Field(None, description="Sent as JSON (a mapping or list) or as text.")
    expect: Expect = Field(
        default_factory=Expect, description="What the answer must be; default: status 200."
    )
    poll: Poll | None = Field(
        None, description="Repeat the request until a JSON field says the work is done."
    )
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


def _strings(value: object, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}.{i}")]
    return []


class Latency(Model):
    """A latency budget: the check's request is sent N times, and a percentile of their durations
    must be within the budget."""

    samples: int = Field(20, ge=1, le=1000, description="The number of requests sent.")
    percentile: int = Field(
        95,
        ge=1,
        le=100,
        description="The percentile of the durations held to the budget, such as 95.",
    )
    budget_ms: float = Field(
        gt=0, allow_inf_nan=False, description="The most that percentile may take, in milliseconds."
    )


class SmokeCheck(Model):
    """A project's smoke check against one component: one request (`path`, optionally with a
    latency budget), or a sequence of `steps` that pass values from one answer to the next."""

    name: str = Field(min_length=1, description="The check's name, shown in the results.")
    component: DnsLabel = Field(description="The component the requests go to.")
    method: Method = Field("GET", description="The HTTP method of the one request (path).")
    path: str | None = Field(
        None,
        pattern=r"^/",
        description="The path of a one-request check, on the component's URL; give it or steps.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers of the one request, over smoke.headers; values may hold ${env:NAME}.",
    )
    body: Any = Field(None, description="The one request's body: JSON (a mapping or list) or text.")
    expect: Expect = Field(
        default_factory=Expect,
        description="What the one request's answer must be; default: status 200.",
    )
    latency: Latency | None = Field(
        None, description="Send the one request N times and hold a percentile to a budget."
    )
    steps: list[Step] = Field(
        default_factory=list,
        description="A sequence of requests, each able to use values earlier ones captured; "
        "give it or path.",
    )

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
        60,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds the checks may retry while a new release settles (--timeout wins).",
    )
    confirm_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="The same wrong answer (a 500, a wrong body) this many times in a row fails "
        "a check at once; refused connections and 502/503/504 count as settling.",
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
    checks: list[SmokeCheck] = Field(
        default_factory=list, description="The project's own checks, run after the probe paths."
    )


Problem = tuple[tuple[str, ...], str]


class Environment(Model):
    """All values of one environment, merged from its file, its base, env vars and --set."""

    name: DnsLabel = Field(
        description="The environment's name, which is its file's name in environments/."
    )
    app: DnsLabel = Field(
        "autodevhub",
        description="The application's name, used in labels, object names and the Compose "
        "project name.",
    )
    target: Literal["compose", "kubernetes"] = Field(
        description="Where the environment runs: Docker Compose or Kubernetes."
    )
    namespace: DnsLabel = Field(
        description="Kubernetes: the namespace of the objects, the release history and the "
        "deploy lock."
    )
    registry: Registry = Field(description="The registry the images are pushed to and pulled from.")
    build: Build = Field(
        default_factory=Build, description="How this project's images are built and pushed."
    )
    components: dict[DnsLabel, Component] = Field(
        min_length=1, description="What the project runs, by component name (at least one)."
    )
    ingress: Ingress = Field(
        description="Kubernetes: the public entry point (hosts, TLS, ingress class)."
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        description="Kubernetes: how a new version replaces the old one.",
    )
    network_policies: NetworkPolicies = Field(
        default_factory=NetworkPolicies,
        description="Kubernetes: who may talk to the pods, and where they may connect.",
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="Kubernetes: Prometheus scraping, the Grafana dashboard and alerts.",
    )
    backups: Backups = Field(
        default_factory=lambda: Backups(enabled=False),
        description="Kubernetes: the scheduled database backup; off unless set.",
    )
    compose: ComposeSettings = Field(
        default_factory=ComposeSettings, description="Settings used only by Compose targets."
    )
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings,
        description="Settings used only by Kubernetes targets.",
    )
    smoke: Smoke = Field(
        default_factory=Smoke,
        description="Checks run after every deploy and by `autodevhub smoke-test`.",
    )
    releases: ReleaseHistory = Field(
        default_factory=ReleaseHistory, description="How many past releases are kept."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every Kubernetes object rendered."
    )
    volumes: dict[DnsLabel, VolumeClaim] = Field(
        default_factory=dict,
        description="The storage of each volume the components mount (by the volume's name); "
        "a mounted volume not listed here gets the defaults.",
    )
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="The project's own free-form values, read by templates as `env.values`; "
        "checked against environments/values.schema.json when that file exists.",
    )

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
            if self.target == "compose" and c.replicas > 1 and c.expose.compose:
                found.append(
                    (
                        (*at, "replicas"),
                        f"{c.replicas} replicas of a component that publishes host ports "
                        f"(components.{cname}.expose.compose) cannot all bind them on Compose; "
                        "run one, or publish no port",
                    )
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
        if self.backups.component is not None:
            ref(("backups", "component"), self.backups.component)
        mounted = self.volume_names()
        for volume in self.volumes:
            if volume not in mounted:
                found.append(
                    (
                        ("volumes", volume),
                        f"no component mounts a volume named {volume!r} (mounted: "
                        f"{', '.join(mounted) or 'none'}); mount it under components.<name>."
                        "volumes, or remove it",
                    )
                )
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

    def secret_refs(self, components: Iterable[str] | None = None) -> list[SecretRef]:
        """Every Secret key a component uses (of `components`, default all), once each, sorted."""
        names = self.components if components is None else components
        found = {
            (ref.secret, ref.key): ref
            for name in names
            for ref in self.components[name].secret_env.values()
        }
        return [found[k] for k in sorted(found)]

    def volume_names(self) -> list[str]:
        """Every volume a component mounts, once each, in declaration order."""
        return list(dict.fromkeys(v for c in self.components.values() for v in c.volumes))

    def volume_claim(self, volume: str) -> VolumeClaim:
        """The storage of a mounted volume: as set under `volumes`, else the defaults."""
        return self.volumes.get(volume) or VolumeClaim()

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


MISSING: object = object()


def _unwrap(annotation: object) -> object:
    """The type under Annotated[...] and Optional[...] (the first non-None member of a union)."""
    import types
    import typing

    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if args else annotation
    return annotation


def annotation_at(path: tuple[str, ...]) -> object:
    """The type the environment model has at a dotted path (field names matched without case;
    a segment under a dict or list is a key or an index); `MISSING` when the model has none
    there, `Any` under the free-form `values`."""
    import typing

    current: object = Environment
    for segment in path:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if current is Any:
            return Any
        if origin is dict:
            current = typing.get_args(current)[1]
        elif origin is list:
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            fields = {n.lower(): f for n, f in current.model_fields.items()}
            info = fields.get(segment.lower())
            if info is None:
                return MISSING
            current = info.annotation
        else:
            return MISSING
    return _unwrap(current)


def fields_at(path: tuple[str, ...]) -> list[str]:
    """The field names valid at a dotted path (empty when it is not a model)."""
    found = annotation_at(path)
    if isinstance(found, type) and issubclass(found, BaseModel):
        return list(found.model_fields)
    return []
