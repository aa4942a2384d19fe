"""The Docker Compose target: one Compose project per environment, health-gated `up --wait`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autodevhub_cli.core.adapters import compose
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ApplyError, ConfigError, RolloutError, ToolError
from autodevhub_cli.core.lock import DeployLock
from autodevhub_cli.core.project import Project
from autodevhub_cli.core.targets import Endpoints


class ComposeTarget:
    """Applies a rendered compose.yaml with the real Compose v2 binary."""

    name = "compose"
    rendered_filename = "compose.yaml"
    runs_local_images = True

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    @contextmanager
    def lock(self, project: Project, command: str) -> Iterator[None]:
        """An exclusive flock on `.autodevhub/locks/<env>.lock` (this machine's engine)."""
        path = project.state_dir / "locks" / f"{self.environment.name}.lock"
        with DeployLock(path, self.environment.name, command=command):
            yield

    def migrate(self, rendered: Path, timeout: float) -> None:
        """`compose run --rm` the migration command in the new image, before anything switches."""
        step = self.environment.migrations
        if not step.enabled:
            return
        try:
            compose.run(
                rendered,
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "--entrypoint",
                step.command[0],
                step.component,
                *step.command[1:],
                timeout=timeout,
                what=f"The migration step ({' '.join(step.command)})",
            )
        except ToolError as exc:
            raise ApplyError(
                f"{exc}",
                hint="The previous release still serves (nothing was switched). Fix the "
                "migration and deploy again.",
            ) from None

    def apply(self, rendered: Path, timeout: float) -> None:
        """`compose up -d --wait --remove-orphans`; on failure, say which container and why."""
        try:
            compose.run(
                rendered,
                "up",
                "--detach",
                "--wait",
                "--wait-timeout",
                str(max(1, int(timeout))),
                "--remove-orphans",
                timeout=timeout + 60,
                what="docker compose up",
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
            service = container.get("Service", "?")
            state = f"{container.get('State')}/{container.get('Health') or 'no health check'}"
            logs = compose.run(
                rendered, "logs", "--no-color", "--tail", "8", service, check=False
            ).stdout.strip()
            tail = " | ".join(
                line.split("|", 1)[-1].strip()[:200] for line in logs.splitlines()[-3:]
            )
            parts.append(f"{service} is {state}" + (f" (last log lines: {tail})" if tail else ""))
        return "; ".join(parts)

    def workloads(self, rendered: Path) -> list[dict[str, Any]]:
        """Containers of the project with state and health."""
        return [
            {
                "name": c.get("Name"),
                "service": c.get("Service"),
                "image": c.get("Image"),
                "state": c.get("State"),
                "health": c.get("Health") or None,
                "status": c.get("Status"),
            }
            for c in compose.containers(rendered)
        ]

    def remove(self, rendered: Path, volumes: bool) -> None:
        """`compose down --remove-orphans` (with `--volumes` only when asked)."""
        args = ["down", "--remove-orphans", "--timeout", "10"]
        if volumes:
            args.append("--volumes")
        compose.run(rendered, *args, timeout=180, what="docker compose down")

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

    def abort(self, rendered: Path) -> None:
        """No preview: nothing to abort."""

    def diff(self, rendered: Path) -> str | None:
        """No server-side dry run: the deploy diffs the rendered files."""
        return None

    @contextmanager
    def smoke_endpoints(self, environment: Environment, preview: bool) -> Iterator[Endpoints]:
        """The configured URLs (the published ports)."""
        yield None, None, None
