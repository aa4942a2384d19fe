"""Building and pushing the images of an environment: content-tagged, reused when unchanged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import AutodevhubError, BuildError
from autodevhub_cli.core.images import ImagePlan, context_tar, plan_images, stage_context
from autodevhub_cli.core.project import Project, find_project
from autodevhub_cli.core.records import read_json, write_json

if TYPE_CHECKING:
    from docker import DockerClient

    from autodevhub_cli.core.wheelhouse import ImagePython

log = logging.getLogger("autodevhub.build")
Reporter = Callable[[str, str], None]


@dataclass(kw_only=True)
class BuildRequest:
    """Options of `autodevhub build`."""

    environment: str
    project_dir: str | Path | None = None
    sets: Sequence[str] = ()
    push: bool = False
    only: Sequence[str] = ()
    no_cache: bool = False
    record: bool = True
    # The environment as the command already loaded it with these `sets` (deploy): not read
    # and validated again.
    loaded: Environment | None = None


@dataclass
class BuiltImage:
    """One image's outcome: its reference, digest (after a push), what was done, and the base
    images it was built from (reference, field, registry digest, image ID, pinned reference)."""

    name: str
    repository: str
    tag: str
    action: str  # built | reused | shared with <component>
    pushed: bool
    digest: str | None
    seconds: float
    size_bytes: int | None = None
    bases: list[dict[str, str | None]] = field(default_factory=list)
    inputs: str | None = None  # the hash of its files and build args (a stale record shows)

    @property
    def ref(self) -> str:
        """`repository:tag`, with `@digest` when pushed."""
        base = f"{self.repository}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base


@dataclass
class BuildResult:
    """The images of one build, recorded in `.autodevhub/builds/<env>.json`."""

    environment: str
    commit: str
    images: list[BuiltImage] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "environment": self.environment,
            "commit": self.commit,
            "seconds": round(self.seconds, 3),
            "images": [
                {**asdict(i), "ref": i.ref, "seconds": round(i.seconds, 3)} for i in self.images
            ],
        }


class _BuildOptions(TypedDict):
    """What both builders (the classic one and BuildKit) build an image with, besides its
    context."""

    image: str
    dockerfile: str
    tag: str
    buildargs: dict[str, str]
    labels: dict[str, str]
    stage: str | None
    nocache: bool
    on_line: Callable[[str], None]


def record_path(project: Project, environment: str) -> Path:
    """Where the last build of `environment` is recorded."""
    return project.state_dir / "builds" / f"{environment}.json"


def last_build(project: Project, environment: str) -> dict[str, Any] | None:
    """The recorded last build of `environment`, if any."""
    data = read_json(record_path(project, environment))
    return data if isinstance(data, dict) else None


def git_commit(root: Path) -> str:
    """The project's git commit, or `unknown` outside a git checkout."""
    from autodevhub_cli.core.adapters import process
    from autodevhub_cli.core.errors import ToolError

    try:
        proc = process.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], what="git rev-parse", check=False
        )
    except ToolError:
        return "unknown"  # no git here
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def build_images(request: BuildRequest, report: Reporter | None = None) -> BuildResult:
    """Build (and push) the environment's images; skip any whose content tag already exists."""
    started = time.perf_counter()
    project = find_project(request.project_dir)
    environment = request.loaded or load_environment(project, request.environment, request.sets)
    plans = plan_images(project, environment, list(request.only) or None)
    commit = git_commit(project.root)
    say = report or (lambda _image, _message: None)
    builder = _Builder(project, environment, commit, request.push, say, request.no_cache)
    plans = builder.resolve_bases(plans)
    with ThreadPoolExecutor(max_workers=len(plans) or 1) as pool:
        futures = [pool.submit(builder.run, plan) for plan in plans]
        results, errors = [], []
        for future in futures:
            try:
                results.append(future.result())
            except AutodevhubError as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    results += _sharing(environment, results)
    result = BuildResult(environment.name, commit, results, time.perf_counter() - started)
    if request.record:
        write_json(record_path(project, environment.name), result.to_dict())
    return result


def _sharing(environment: Environment, built: list[BuiltImage]) -> list[BuiltImage]:
    """Components that run an image another component builds (same repository, no build of
    their own) get the same tag and digest in the record."""
    out = []
    for name, component in environment.components.items():
        if component.build is not None or component.image is None or not component.image.repository:
            continue
        repository = f"{environment.registry.url}/{component.image.repository}"
        source = next((b for b in built if b.repository == repository), None)
        if source is not None:
            out.append(replace(source, name=name, action=f"shared with {source.name}", seconds=0.0))
    return out


class _Builder:
    """Builds one plan at a time; shared engine connection and wheelhouse per build run."""

    def __init__(
        self,
        project: Project,
        environment: Environment,
        commit: str,
        push: bool,
        say: Reporter,
        no_cache: bool = False,
    ) -> None:
        self.no_cache = no_cache
        self.project = project
        self.environment = environment
        self.commit = commit
        self.push = push
        self.say = say
        self._client: DockerClient | None = None

    def client(self) -> DockerClient:
        from autodevhub_cli.core.adapters import docker_engine

        if self._client is None:
            self._client = docker_engine.connect()
        return self._client

    def run(self, plan: ImagePlan) -> BuiltImage:
        from autodevhub_cli.core.adapters import docker_engine, registry

        started = time.perf_counter()
        host, _ = registry.split_repository(plan.repository)
        auth = registry.credentials(host)
        if self.push and not self.no_cache:
            digest = registry.manifest_digest(plan.repository, plan.content_tag, auth)
            if digest:
                self.say(plan.component, f"{plan.ref()} already in the registry: reused")
                return BuiltImage(
                    plan.component,
                    plan.repository,
                    plan.content_tag,
                    "reused",
                    False,
                    digest,
                    time.perf_counter() - started,
                    bases=[b.to_dict() for b in plan.bases],
                    inputs=plan.inputs_digest,
                )
        client = self.client()
        action = "reused"
        if not self.no_cache and docker_engine.image_exists(client, plan.ref()):
            self.say(plan.component, f"{plan.ref()} already built: reused")
        else:
            self._build(client, plan)
            action = "built"
        digest = None
        if self.push:
            self.say(plan.component, f"pushing {plan.ref()}")
            digest = docker_engine.push(
                client,
                repository=plan.repository,
                tag=plan.content_tag,
                auth=auth,
                attempts=self.environment.build.push_retries,
            )
            self.say(plan.component, f"pushed {plan.ref()}@{digest}")
        return BuiltImage(
            plan.component,
            plan.repository,
            plan.content_tag,
            action,
            self.push,
            digest,
            time.perf_counter() - started,
            docker_engine.image_size(client, plan.ref()),
            bases=[b.to_dict() for b in plan.bases],
            inputs=plan.inputs_digest,
        )

    def resolve_bases(self, plans: list[ImagePlan]) -> list[ImagePlan]:
        """The plans with their base images resolved on the engine (pulled when missing) and
        their content tags: one inspection per distinct base."""
        from autodevhub_cli.core import bases
        from autodevhub_cli.core.images import base_image_field, base_images, with_bases

        inspected: dict[str, dict[str, Any]] = {}
        out = []
        for plan in plans:
            resolved = []
            for reference, build_arg in base_images(self.project.root, plan):
                field = base_image_field(plan, build_arg, self.environment)
                if reference not in inspected:
                    inspected[reference] = self._inspect_base(plan, reference, field)
                resolved.append(bases.resolve(reference, field, inspected[reference]))
            out.append(with_bases(plan, resolved))
        return out

    def _inspect_base(self, plan: ImagePlan, reference: str, field: str) -> dict[str, Any]:
        from autodevhub_cli.core.adapters import docker_engine

        client = self.client()
        attrs = docker_engine.inspect_image(client, reference)
        if attrs is not None:
            return attrs
        self.say(plan.component, f"pulling base image {reference}")
        problem = docker_engine.pull(client, reference)
        attrs = None if problem else docker_engine.inspect_image(client, reference)
        if attrs is None:
            raise BuildError(
                f"The {plan.component} image starts from {reference} ({field}), which this "
                f"Docker engine does not have and could not pull: "
                f"{problem or 'the pulled image is not found under that name'}.",
                hint=f"Pull, load or import {reference} into the engine, or set {field} in "
                "the environment file to an image the engine has.",
            )
        return attrs

    def _python(self, client: DockerClient, plan: ImagePlan) -> ImagePython:
        """The Python the wheelhouse is installed with: that of the base image(s) of the
        stage(s) that read it."""
        from autodevhub_cli.core import wheelhouse
        from autodevhub_cli.core.images import wheelhouse_bases

        found: dict[str, ImagePython] = {}
        for reference, _build_arg in wheelhouse_bases(self.project.root, plan):
            base = plan.base(reference)
            found[f"{reference} ({base.field})"] = wheelhouse.image_python(
                client, base.image_id, reference, base.field
            )
        if not found:
            raise BuildError(
                f"The {plan.component} image has a wheelhouse "
                f"(components.{plan.component}.build.wheelhouse), but {plan.dockerfile} starts "
                "from no image whose Python could install it.",
                hint="Start the stage that copies wheelhouse/ from a Python image, or drop "
                "build.wheelhouse.",
            )
        if len(set(found.values())) > 1:
            said = "; ".join(f"{where}: {python.describe()}" for where, python in found.items())
            raise BuildError(
                f"The stages of {plan.dockerfile} that install the {plan.component} image's "
                f"wheelhouse start from images with different Pythons ({said}); one wheelhouse "
                "fits one Python.",
                hint="Set those fields to images with the same Python.",
            )
        return next(iter(found.values()))

    def _build(self, client: DockerClient, plan: ImagePlan) -> None:
        from autodevhub_cli.core import wheelhouse
        from autodevhub_cli.core.adapters import docker_engine
        from autodevhub_cli.core.images import final_base

        wheels = None
        if plan.wheelhouse_requirements:
            python = self._python(client, plan)
            self.say(plan.component, f"preparing the wheelhouse for {python.describe()}")
            wheels = wheelhouse.prepare(
                self.project.root / plan.wheelhouse_requirements,
                wheelhouse.cache_root(),
                python=python,
            )
        self.say(plan.component, f"building {plan.ref()}")
        labels = {
            "org.opencontainers.image.revision": self.commit,
            "org.opencontainers.image.title": plan.component,
            "io.autodevhub.content-tag": plan.content_tag,
        }
        final = final_base(self.project.root, plan)
        if final is not None:
            base = plan.base(final[0])
            labels["org.opencontainers.image.base.name"] = base.reference
            labels["org.opencontainers.image.base.digest"] = base.identity
        common: _BuildOptions = {
            "image": plan.component,
            "dockerfile": plan.dockerfile,
            "tag": plan.ref(),
            "buildargs": plan.pinned_buildargs(self.project.root),
            "labels": labels,
            "stage": plan.stage,
            "nocache": self.no_cache,
            "on_line": lambda line: self.say(plan.component, "  " + line),
        }
        if self.environment.build.builder == "classic":
            context = context_tar(self.project.root, plan, wheels)
            docker_engine.build(client, context=context, **common)
        else:
            import fcntl

            from autodevhub_cli.core.adapters import buildkit

            staging = self.project.state_dir / "build"
            staging.mkdir(parents=True, exist_ok=True)
            # One staging folder per image, kept between builds so BuildKit sends only what
            # changed; a second build of the same project waits for it instead of clobbering it.
            with open(staging / f".{plan.component}.lock", "w") as held:
                fcntl.flock(held, fcntl.LOCK_EX)
                folder = stage_context(self.project.root, plan, wheels, staging)
                buildkit.build(context_dir=folder, **common)
        self.say(plan.component, f"built {plan.ref()}")
