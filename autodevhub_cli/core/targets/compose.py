"""The Docker Compose target: one Compose project per environment, health-gated `up --wait`."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core.adapters import compose
from autodevhub_cli.core.adapters.docker_engine import (
    ENGINE_RETURN_SECONDS,
    ContainerLog,
    call,
    connect,
    wait_for_engine,
)
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ApplyError, ConfigError, RolloutError, ToolError
from autodevhub_cli.core.redact import Redactor
from autodevhub_cli.core.smoke import Endpoint, Endpoints, configured_endpoints
from autodevhub_cli.core.targets import Replica, TaskRef, Workload
from autodevhub_cli.core.targets.engine_state import EngineLock, EngineReleaseDriver

if TYPE_CHECKING:
    from docker import DockerClient

PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
CONTAINER_NUMBER_LABEL = "com.docker.compose.container-number"
# How long a container without a health check must run, right after `up`, to count as started
# (a process that exits at once is then seen, as a CrashLoopBackOff is on Kubernetes).
STEADY_SECONDS = 1.0

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
        engine restarted under it is waited for and the (idempotent) `up` run again. A container
        the `up` created that then stops or restarts fails the release too: Compose counts one
        without a health check as up as soon as it runs, even when it exits a moment later."""
        began = time.time()
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
        restarted = self._restarted_since(began)
        if restarted:
            raise RolloutError(
                f"The release did not become healthy: {self._diagnosis(rendered, restarted)}.",
                hint="A container that exits or restarts right after it starts fails the "
                "release; its last log lines are above (`autodevhub logs` shows them all).",
            )

    def _restarted_since(self, began: float) -> dict[str, int]:
        """Containers created since `began` (this apply's) that stopped or restarted: their
        component and restart count. One without a health check must first have run for
        STEADY_SECONDS."""
        from autodevhub_cli.core.logs import parse_time

        def fresh() -> list[dict[str, Any]]:
            ids = [
                str(c["Id"])
                for c in self._containers()
                if float(c.get("Created") or 0) >= began - 1
            ]
            return [self._inspect(i) for i in ids]

        found = fresh()
        unchecked = [
            parse_time(str(c["State"].get("StartedAt") or ""))
            for c in found
            if not (c.get("Config") or {}).get("Healthcheck")
        ]
        starts = [moment.timestamp() for moment in unchecked if moment is not None]
        if starts:
            time.sleep(max(0.0, STEADY_SECONDS - (time.time() - max(starts))))
            found = fresh()
        bad: dict[str, int] = {}
        for c in found:
            state = c.get("State") or {}
            if state.get("Status") != "running" or int(c.get("RestartCount") or 0) > 0:
                component = (c.get("Config") or {}).get("Labels", {}).get(COMPOSE_SERVICE_LABEL)
                bad[str(component)] = int(c.get("RestartCount") or 0)
        return bad

    def _inspect(self, container: str) -> dict[str, Any]:
        return dict(
            call(
                f"inspect container {container[:12]}",
                lambda: self.client.api.inspect_container(container),
            )
        )

    def _diagnosis(self, rendered: Path, restarted: Mapping[str, int] | None = None) -> str:
        try:
            running = compose.containers(rendered)
        except ToolError:
            return "(the containers could not be listed)"
        again = restarted or {}
        bad = [
            c
            for c in running
            if c.get("Health") not in ("", None, "healthy")
            or c.get("State") != "running"
            or c.get("Service") in again
        ]
        if not bad:
            return "every container reports healthy now (it took too long)"
        parts = []
        # What the application printed goes into the message: its secrets stay hidden.
        hide = Redactor(self.secret_values(list(self.environment.components)))
        for container in bad:
            name = container.get("Service", "?")
            state = f"{container.get('State')}/{container.get('Health') or 'no health check'}"
            if again.get(name):
                state += f", restarted {again[name]} time(s)"
            tail = self._last_lines(str(container.get("ID") or ""), hide)
            parts.append(f"{name} is {state}" + (f" (last log lines: {tail})" if tail else ""))
        return "; ".join(parts)

    def _containers(self) -> list[dict[str, Any]]:
        """The containers of the environment's Compose project on the engine, running or not,
        one-off task containers left out (as the engine lists them)."""
        project = self.environment.compose_project()
        found = call(
            f"list the containers of Compose project {project}",
            lambda: self.client.api.containers(
                all=True, filters={"label": f"{PROJECT_LABEL}={project}"}
            ),
        )
        return [c for c in found or [] if (c.get("Labels") or {}).get(ONEOFF_LABEL) != "True"]

    def live(self) -> list[Workload]:
        """What runs now: every container of the Compose project on the engine (one-off task
        containers left out), with its image, state and health."""
        rows: list[Workload] = []
        for c in self._containers():
            labels = c.get("Labels") or {}
            status = str(c.get("Status") or "")
            rows.append(
                {
                    "name": (c.get("Names") or ["?"])[0].lstrip("/"),
                    "workload": labels.get(COMPOSE_SERVICE_LABEL, "?"),
                    "image": str(c.get("Image") or ""),
                    "state": str(c.get("State") or ""),
                    "health": _health(status),
                    "status": status,
                }
            )
        return sorted(rows, key=lambda r: (r["workload"], r["name"]))

    # --- logs -------------------------------------------------------------------------------

    # A container keeps one log across its restarts; one Compose replaced is removed with it.
    keeps_previous_logs = False

    def replicas(self, components: Sequence[str]) -> list[Replica]:
        """The containers of these services in the environment's Compose project, running or
        not (one-off task containers left out), by component and container number."""
        rows: list[Replica] = []
        for c in self._containers():
            labels = c.get("Labels") or {}
            component = labels.get(COMPOSE_SERVICE_LABEL)
            if not isinstance(component, str) or component not in components:
                continue
            name = (c.get("Names") or ["?"])[0].lstrip("/")
            number = labels.get(CONTAINER_NUMBER_LABEL) or name
            running = c.get("State") == "running"
            rows.append(Replica(component, name, number, str(c["Id"]), running))
        order = {name: i for i, name in enumerate(components)}
        return sorted(rows, key=lambda r: (order[r.component], r.short.zfill(6), r.key))

    def read_log(
        self,
        replica: Replica,
        *,
        since: dt.datetime | None,
        tail: int | None,
        previous: bool,
        follow: bool,
    ) -> ContainerLog:
        """The container's log from the engine, with its timestamps."""
        return ContainerLog(
            self.client,
            replica.key,
            f"read the log of container {replica.name}",
            since=since.timestamp() if since is not None else None,
            tail=tail,
            follow=follow,
        )

    # --- dev: restart, exec, wait ----------------------------------------------------------

    def _running(self, component: str, stopped_too: bool = False) -> list[Replica]:
        found = [r for r in self.replicas([component]) if r.running or stopped_too]
        if not found:
            raise ApplyError(
                f"No container of {component} runs in {self.environment.name}.",
                hint=f"`autodevhub deploy --env {self.environment.name}` starts them.",
            )
        return found

    def restart_component(self, component: str) -> None:
        """Restart every container of a component, a stopped or crashed one too (the engine
        completes a restart it began even when this process is interrupted)."""
        from concurrent.futures import ThreadPoolExecutor

        replicas = self._running(component, stopped_too=True)
        with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
            futures = [pool.submit(self._restart, replica) for replica in replicas]
        for future in futures:
            future.result()

    def _restart(self, replica: Replica) -> None:
        call(
            f"restart container {replica.name}",
            lambda: self.client.api.restart(replica.key, timeout=10),
        )

    def exec_in(self, component: str, command: list[str]) -> None:
        """Run a command in every container of a component; ApplyError naming its exit code
        and output when it fails."""
        for replica in self._running(component):
            self._exec(replica, command)

    def _exec(self, replica: Replica, command: list[str]) -> None:
        what = f"run {' '.join(command)} in container {replica.name}"
        api = self.client.api
        created = call(what, lambda: api.exec_create(replica.key, command))
        output = call(what, lambda: api.exec_start(created["Id"]))
        code = call(what, lambda: api.exec_inspect(created["Id"])).get("ExitCode")
        if code != 0:
            tail = " | ".join(bytes(output).decode(errors="replace").strip().splitlines()[-3:])
            raise ApplyError(f"{what} exited {code}" + (f": {tail}" if tail else ""))

    def wait_healthy(self, components: Sequence[str], timeout: float) -> None:
        """Until every container of the components runs and, with a health check, is healthy;
        RolloutError naming those that are not after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = []
            for replica in self.replicas(components):
                state = self._inspect(replica.key).get("State") or {}
                health = (state.get("Health") or {}).get("Status")
                if state.get("Status") in ("exited", "dead", "restarting"):
                    hide = Redactor(self.secret_values([replica.component]))
                    tail = self._last_lines(replica.key, hide)
                    raise RolloutError(
                        f"{replica.name} stopped (exit code {state.get('ExitCode')})"
                        + (f"; last log lines: {tail}" if tail else "")
                        + "."
                    )
                if state.get("Status") != "running" or health not in (None, "healthy"):
                    waiting.append(f"{replica.name} ({state.get('Status')}/{health or '-'})")
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise RolloutError(
                    f"Not healthy after {timeout:.0f}s: {', '.join(waiting)}.",
                    hint="`autodevhub logs --env "
                    f"{self.environment.name}` shows what the containers printed.",
                )
            time.sleep(0.1)

    def _last_lines(self, container: str, hide: Redactor, count: int = 3) -> str:
        """A container's last `count` log lines joined by ` | `, secrets masked ('' when it has
        none or they cannot be read)."""
        try:
            log = ContainerLog(
                self.client,
                container,
                f"read the log of container {container[:12]}",
                since=None,
                tail=count,
                follow=False,
            )
            lines = [text.strip()[:200] for _moment, text in log]
        except ApplyError:
            return ""
        return hide.text(" | ".join(line for line in lines if line))

    def secret_values(self, components: Sequence[str]) -> list[str]:
        """The Compose secret files these components read (those that exist)."""
        env = self.environment
        values = []
        for ref in env.secret_refs(components):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(Path(env.compose_secret_file(ref)).read_text().strip())
        return values

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
