"""Deploy targets: one module per platform, each applying rendered output the same way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, Protocol, TypedDict

if TYPE_CHECKING:  # annotations only: the render path imports targets.readiness through here
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.releases import ReleaseDriver
    from autodevhub_cli.core.smoke import Endpoints


@dataclass(frozen=True)
class TaskRef:
    """One task of one component, as `component.task`."""

    component: str
    task: str

    def __str__(self) -> str:
        return f"{self.component}.{self.task}"


class Workload(TypedDict):
    """One entry of what a target runs now (`Target.live`): a container (Compose) or a
    workload (Kubernetes), with its image, state and health."""

    name: str
    workload: str
    image: str
    state: str
    health: str | None  # None: a container without a health check
    status: str
    # Kubernetes: a blue-green Rollout's preview waiting for promotion, in words ('' if none).
    preview: NotRequired[str]


@dataclass(frozen=True)
class Replica:
    """One copy of a component whose log the target can read: a container (Compose), or one
    container of a pod (Kubernetes)."""

    component: str
    name: str  # as the engine knows it: the container's name, the pod's (pod/container)
    short: str  # as shown after the component: "1", the pod's name without the component's
    key: str  # unique while it exists: the container's id, the pod's uid and container
    running: bool
    restarted: bool = False  # a previous container's log can be read (`--previous`)
    container: str = ""  # the container within the pod (Kubernetes)
    # A blue-green component's pod: "active" (serving), "preview" (the new version waiting
    # for promotion) or "old" (a replaced version scaling down); "" elsewhere.
    role: str = ""


class LogStream(Protocol):
    """One replica's log as (time, text) lines; `close` ends a follow from another thread."""

    def __iter__(self) -> Iterator[tuple[dt.datetime | None, str]]: ...

    def close(self) -> None: ...


class Target(Protocol):
    """What the target-neutral deploy pipeline needs from a platform."""

    name: str
    rendered_filename: str
    # The platform runs the images from this machine's engine, so their push to the registry
    # can overlap the migrate, apply and check steps.
    runs_local_images: bool
    # Delete what the environment ran and the new output no longer has.
    prune_enabled: bool

    @property
    def blue_green(self) -> bool:
        """The new version waits as a preview until promoted (Argo Rollouts blue-green)."""

    def release_driver(self) -> ReleaseDriver:
        """Where the environment's release history lives: in the target, never only on the
        machine that runs the command."""

    def lock(self, command: str) -> AbstractContextManager[None]:
        """Hold the environment's deploy lock, kept in the target, for a block."""

    def check_lock(self) -> None:
        """Raise LockLostError when the lock held by `lock` is no longer this deploy's."""

    def run_tasks(self, rendered: Path, timeout: float, tasks: list[TaskRef]) -> None:
        """Run components' one-off tasks (such as a migration) in the new images, before
        switching; raise ApplyError when one fails."""

    def apply(self, rendered: Path, timeout: float) -> None:
        """Apply the rendered output and wait until it is healthy, or raise RolloutError."""

    def prune(self, rendered: Path, before: Path) -> list[str]:
        """Delete what the output applied before (`before`) had and `rendered` no longer has,
        once `rendered` serves; what was deleted, for messages. ApplyError names what is left."""

    def live(self) -> list[Workload]:
        """What runs now, read from the target (not from any record): one entry per container
        or workload, with its image, state and health (and, for a blue-green one whose preview
        waits for promotion, `preview` saying so)."""

    def remove(self, rendered: Path, volumes: bool) -> None:
        """Remove everything the environment runs."""

    # Whether a replaced container's log can still be read (`logs --previous`).
    keeps_previous_logs: bool

    def replicas(self, components: Sequence[str]) -> list[Replica]:
        """Every replica of these components the target has now, running or not (one-off task
        containers and task pods left out)."""

    def read_log(
        self,
        replica: Replica,
        *,
        since: dt.datetime | None,
        tail: int | None,
        previous: bool,
        follow: bool,
    ) -> LogStream:
        """A replica's log from `since` (its last `tail` lines), with the engine's timestamps;
        with `follow`, open until the replica stops or the stream is closed. ApplyError when it
        cannot be read (the container has not started, it is gone)."""

    def secret_values(self, components: Sequence[str]) -> list[str]:
        """The values of the secrets these components read, as stored in the target (what a
        log must not show); those that cannot be read are left out."""

    def preview_waiting(self, rendered: Path) -> bool:
        """Whether a blue-green workload of the release has a new version waiting as the
        preview (none when its pod template did not change)."""

    def promote(self, rendered: Path, timeout: float) -> None:
        """Make the release waiting as the preview the active one, or refuse."""

    def abort(self, rendered: Path) -> None:
        """Give up a preview; the active version keeps serving (nothing to do without one)."""

    def diff(self, rendered: Path, before: Path | None = None) -> str | None:
        """What applying would change, as the platform sees it (with what prune would delete
        of `before`, the serving release's output); None to diff the files."""

    def smoke_endpoints(
        self, environment: Environment, preview: bool
    ) -> AbstractContextManager[Endpoints]:
        """Component -> where the smoke checks reach it (the preview of blue-green components
        when `preview`); the configured `smoke.urls` win."""


@dataclass(kw_only=True)
class TargetOptions:
    """Flags that reach the target: the kube context and how apply treats other managers."""

    context: str | None = None
    kubeconfig: str | None = None
    force_conflicts: bool = False
    prune: bool = True


def target_for(
    environment: Environment,
    options: TargetOptions | None = None,
    say: Callable[[str, str], None] | None = None,
) -> Target:
    """The deploy target of an environment."""
    chosen = options or TargetOptions()
    if environment.target == "compose":
        from autodevhub_cli.core.targets.compose import ComposeTarget

        return ComposeTarget(environment, prune=chosen.prune)
    from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

    return KubernetesTarget(
        environment,
        context=chosen.context,
        kubeconfig=chosen.kubeconfig,
        force_conflicts=chosen.force_conflicts,
        prune=chosen.prune,
        say=say,
    )
