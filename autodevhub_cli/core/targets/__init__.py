"""Deploy targets: one module per platform, each applying rendered output the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ConfigError


class Target(Protocol):
    """What the target-neutral deploy pipeline needs from a platform."""

    name: str
    rendered_filename: str

    def migrate(self, rendered: Path, timeout: float) -> None:
        """Run the database migration step with the new images, before switching."""

    def apply(self, rendered: Path, timeout: float) -> None:
        """Apply the rendered output and wait until it is healthy, or raise RolloutError."""

    def workloads(self, rendered: Path) -> list[dict[str, Any]]:
        """What runs now: one entry per container or pod, with state and health."""

    def remove(self, rendered: Path, volumes: bool) -> None:
        """Remove everything the environment runs."""


def target_for(environment: Environment) -> Target:
    """The deploy target of an environment."""
    if environment.target == "compose":
        from autodevhub_cli.core.targets.compose import ComposeTarget

        return ComposeTarget(environment)
    raise ConfigError(
        f"Environment {environment.name!r} targets Kubernetes, which `deploy` does not drive "
        "yet in this version.",
        hint=f"Render it with `autodevhub render --env {environment.name} --out DIR` and apply "
        "with `kubectl apply --server-side -f DIR`, or deploy a Compose environment.",
    )
