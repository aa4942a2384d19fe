"""The Docker Compose target: one Compose project per environment, health-gated `up --wait`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core.adapters import compose
from autodevhub_cli.core.adapters.docker_engine import (
    ENGINE_RETURN_SECONDS,
    call,
    connect,
    wait_for_engine,
)
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ApplyError, ConfigError, RolloutError, ToolError
from autodevhub_cli.core.smoke import Endpoint, Endpoints, configured_endpoints
from autodevhub_cli.core.targets import TaskRef, Workload
from autodevhub_cli.core.targets.engine_state import EngineLock, EngineReleaseDriver

if TYPE_CHECKING:
    from docker import DockerClient

PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"

log = logging.getLogger("autodevhub.compose")


def _through_engine_restart(what: str, action: Callable[[], object], budget: float) -> None:
    """Run an idempotent Compose step; if the engine stops answering, wait for it to come back
    (up to `budget` seconds) and run the step once more."""
    try:
        action()
        return
    except ToolError as exc:
        if not compose.engine_unreachable(exc):
            raise
        log.warning("%s: the Docker engine stopped answering; waiting for it", what)
    started = time.monotonic()
    if not wait_for_engine(budget):
        raise ApplyError(
            f"The Docker engine stopped answering during {what} and did not come back within "
            f"{budget:.0f}s.",
            hint="Start the engine (`sudo systemctl start docker`, or `dockerd &` as root), then "
            "run the deploy again: containers with a restart policy come back with the engine, "
            "and the release records say which release served.",
        )
    log.warning(
        "%s: the engine is back after %.1fs; running it again", what, time.monotonic() - started
    )
    action()


class ComposeTarget:
    """Applies a rendered compose.yaml with the real Compose v2 binary."""

    name = "compose"
    rendered_filename = "compose.yaml"
    runs_local_images = True

    def __init__(self, environment: Environment, prune: bool = True) -> None:
        self.environment = environment
        # `up --remove-orphans`: stop the services the new file no longer has.
        self.prune_enabled = prune
        self._client: DockerClient | None = None
        self._lock: EngineLock | None = None

    @property
    def client(self) -> DockerClient:
        """The Docker engine the environment runs on (DOCKER_HOST), connected on first use."""
        if self._client is None:
            self._client = connect()
        return self._client

    def release_driver(self) -> EngineReleaseDriver:
        """The release records, as volumes on the environment's Docker host."""
        env = self.environment
        return EngineReleaseDriver(self.client, env.compose_project(), env.name)

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """A named container on the environment's Docker host: one deploy at a time for every
        machine that uses this engine."""
        lock = EngineLock(self.client, self.environment.compose_project())
        with lock.hold(command):
            self._lock = lock
            try:
                yield
            finally:
                self._lock = None

    def check_lock(self) -> None:
        """Raise LockLostError when the lock container is no longer this deploy's."""
        if self._lock is not None:
            self._lock.check()

    def run_tasks(self, rendered: Path, timeout: float, tasks: list[TaskRef]) -> None:
        """`compose run --rm` each task's command in its component's new image, in order,
        before anything switches."""
        for ref in tasks:
            command = self.environment.components[ref.component].tasks[ref.task].command
            try:
                compose.run(
                    rendered,
                    "run",
                    "--rm",
                    "--no-deps",
                    "-T",
                    "--entrypoint",
                    command[0],
                    ref.component,
                    *command[1:],
                    timeout=timeout,
                    what=f"Task {ref} ({' '.join(command)})",
                )
            except ToolError as exc:
                raise ApplyError(
                    f"{exc}",
                    hint="The previous release still serves (nothing was switched). Fix the "
                    f"task (components.{ref.component}.tasks.{ref.task}) and deploy again.",
                ) from None

    def apply(self, rendered: Path, timeout: float) -> None:
        """`compose up -d --wait --remove-orphans`; on failure, say which container and why. An
        engine restarted under it is waited for and the (idempotent) `up` run again."""
        try:
            _through_engine_restart(
                "docker compose up",
                lambda: compose.run(
                    rendered,
                    "up",
                    "--detach",
                    "--wait",
                    "--wait-timeout",
                    str(max(1, int(timeout))),
                    *(["--remove-orphans"] if self.prune_enabled else []),
                    timeout=timeout + 60,
                    what="docker compose up",
                ),
                min(ENGINE_RETURN_SECONDS, timeout),
            )
        except ToolError as exc:
            said = exc.output_tail.splitlines()[-1] if exc.output_tail else exc.message
            raise RolloutError(
                f"The release did not become healthy (waited up to {timeout:.0f}s): "
                f"{self._diagnosis(rendered)}.",
                hint=f"compose said: {said}",
            ) from None

    def _diagnosis(self, rendered: Path) -> str:
        try:
            running = compose.containers(rendered)
        except ToolError:
            return "(the containers could not be listed)"
        bad = [
            c
            for c in running
            if c.get("Health") not in ("", None, "healthy") or c.get("State") != "running"
        ]
        if not bad:
            return "every container reports healthy now (it took too long)"
        parts = []
        for container in bad:
            name = container.get("Service", "?")
            state = f"{container.get('State')}/{container.get('Health') or 'no health check'}"
            logs = compose.run(
                rendered, "logs", "--no-color", "--tail", "8", name, check=False
            ).stdout.strip()
            tail = " | ".join(
                line.split("|", 1)[-1].strip()[:200] for line in logs.splitlines()[-3:]
            )
            parts.append(f"{name} is {state}" + (f" (last log lines: {tail})" if tail else ""))
        return "; ".join(parts)

    def live(self) -> list[Workload]:
        """What runs now: every container of the Compose project on the engine (one-off task
        containers left out), with its image, state and health."""
        project = self.environment.compose_project()
        found = call(
            f"list the containers of Compose project {project}",
            lambda: self.client.api.containers(
                all=True, filters={"label": f"{PROJECT_LABEL}={project}"}
            ),
        )
        rows: list[Workload] = []
        for c in found or []:
            labels = c.get("Labels") or {}
            if labels.get(ONEOFF_LABEL) == "True":
                continue
            status = str(c.get("Status") or "")
            rows.append(
                {
                    "name": (c.get("Names") or ["?"])[0].lstrip("/"),
                    "workload": labels.get(COMPOSE_SERVICE_LABEL, "?"),
                    "image": c.get("Image"),
                    "state": c.get("State"),
                    "health": _health(status),
                    "status": status,
                }
            )
        return sorted(rows, key=lambda r: (r["workload"], r["name"]))

    def remove(self, rendered: Path, volumes: bool) -> None:
        """`compose down --remove-orphans` (with `--volumes` only when asked)."""
        args = ["down", "--remove-orphans", "--timeout", "10"]
        if volumes:
            args.append("--volumes")
        _through_engine_restart(
            "docker compose down",
            lambda: compose.run(rendered, *args, timeout=180, what="docker compose down"),
            ENGINE_RETURN_SECONDS,
        )

    @property
    def blue_green(self) -> bool:
        """Every Compose deploy switches at once."""
        return False

    def promote(self, rendered: Path, timeout: float) -> None:
        """Compose has no preview to promote."""
        raise ConfigError(
            f"Environment {self.environment.name!r} deploys with Docker Compose, which has no "
            "blue-green preview to promote.",
            hint="Every Compose deploy switches at once; use `autodevhub rollback` to go back.",
        )

    def preview_waiting(self, rendered: Path) -> bool:
        """No preview on Compose."""
        return False

    def abort(self, rendered: Path) -> None:
        """No preview: nothing to abort."""

    def diff(self, rendered: Path, before: Path | None = None) -> str | None:
        """No server-side dry run: the deploy diffs the rendered files."""
        return None

    def prune(self, rendered: Path, before: Path) -> list[str]:
        """Nothing left to delete: `up --remove-orphans` stopped the services the new file no
        longer has, and volumes stay (`down --volumes` removes them)."""
        return []

    @contextmanager
    def smoke_endpoints(self, environment: Environment, preview: bool) -> Iterator[Endpoints]:
        """Each component's first published port on the bind address; `smoke.urls` win."""
        host = environment.compose.bind_address
        host = f"[{host}]" if ":" in host else host
        found = {
            name: Endpoint(f"http://{host}:{next(iter(c.expose.compose.values()))}")
            for name, c in environment.components.items()
            if c.expose.compose
        }
        yield {**found, **configured_endpoints(environment, preview)}


def _health(status: str) -> str | None:
    """The health in an engine's container status (`Up 3 minutes (healthy)`), if it has one."""
    for health in ("unhealthy", "healthy", "health: starting"):
        if f"({health})" in status:
            return health.removeprefix("health: ")
    return None
