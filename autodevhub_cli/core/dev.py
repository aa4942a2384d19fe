"""`autodevhub dev`: deploy once, then watch the project and bring each edit into the running
environment, the components it touches only, each as it declares (`develop`):

- a synced file (`develop.sync`, mounted read-only into the container for as long as `dev`
  runs) is there at once: the container is restarted (`develop.restart`), a command is run in
  it (`develop.exec`), or nothing (a process that reloads by itself);
- a file that needs a rebuild (`develop.rebuild`, or the build context outside the synced
  paths: a lock file, a Dockerfile, sources built into the image) is built and deployed by the
  deploy pipeline (a release in the history, rolled back when its checks fail);
- an ignored file (`develop.ignore`) does nothing.

After each change the affected components' smoke checks run, and one status line says what
changed, what was done, how long it took and how the checks went. Compose only: mounts of the
working tree, restarts and `exec` are what a local engine gives. An interrupted `dev` leaves the
environment as the last completed step left it (an engine restart or exec completes on its own;
a deploy interrupted rolls back, as any deploy does).

Files are watched by polling their modification times (no daemon, no dependency): the watched
folders are the ones the components' sync paths, rebuild globs and build contexts name."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core.errors import AutodevhubError, ConfigError
from autodevhub_cli.core.images import glob_match

if TYPE_CHECKING:
    from autodevhub_cli.core.context import Reporter
    from autodevhub_cli.core.deploy import DeployRequest
    from autodevhub_cli.core.environment import Component, Environment
    from autodevhub_cli.core.logs import LogLine
    from autodevhub_cli.core.smoke import Endpoint, SmokeResult
    from autodevhub_cli.core.targets import Target

# How often the watched folders are read, and how long a burst of writes (an editor saving
# several files, a `git checkout`) is waited for before acting on it.
POLL_SECONDS = 0.15
SETTLE_SECONDS = 0.1
# Folders never watched: version control, dependencies, caches, autodevhub's own state.
SKIPPED = frozenset(
    {
        ".git",
        ".hg",
        "node_modules",
        "__pycache__",
        ".autodevhub",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "dist",
        "build",
    }
)
_GLOB_CHARS = set("*?[")


@dataclass
class Plan:
    """What a set of changed files does: components to rebuild and deploy, components whose
    synced files changed (to restart, exec in, or leave to reload), files nobody uses."""

    files: list[str]
    rebuild: list[str] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def plan_for(environment: Environment, files: Sequence[str]) -> Plan:
    """Classify changed project files (relative POSIX paths) per component: an ignore glob wins,
    then a rebuild glob, then a synced path, then the build context (its Dockerfile included)."""
    plan = Plan(sorted(files))
    used: set[str] = set()
    for name, component in environment.components.items():
        action = None
        for path in plan.files:
            found = _action(component, path)
            if found is not None:
                used.add(path)
                action = "rebuild" if "rebuild" in (action, found) else found
        if action == "rebuild":
            plan.rebuild.append(name)
        elif action == "sync":
            plan.reload.append(name)
    plan.unused = [f for f in plan.files if f not in used]
    return plan


def _action(component: Component, path: str) -> str | None:
    develop = component.develop
    if any(glob_match(path, pattern) for pattern in develop.ignore):
        return None
    if any(glob_match(path, pattern) for pattern in develop.rebuild):
        return "rebuild"
    if any(_within(path, sync.path) for sync in develop.sync):
        return "sync"
    build = component.build
    if build is not None and (
        path == build.dockerfile
        or (
            any(glob_match(path, pattern) for pattern in build.context)
            and not any(glob_match(path, pattern) for pattern in build.exclude)
        )
    ):
        return "rebuild"
    return None


def _within(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return folder in (".", "") or path == folder or path.startswith(folder + "/")


def watched_roots(environment: Environment) -> list[str]:
    """The project folders (or files) whose changes can matter: the static start of every sync
    path, rebuild glob, build context glob and Dockerfile; "." when one starts with a glob."""
    found: set[str] = set()
    for component in environment.components.values():
        develop, build = component.develop, component.build
        patterns = [s.path for s in develop.sync] + list(develop.rebuild)
        if build is not None:
            patterns += [*build.context, build.dockerfile]
        for pattern in patterns:
            parts = []
            for part in pattern.split("/"):
                if _GLOB_CHARS & set(part):
                    break
                parts.append(part)
            found.add("/".join(parts) or ".")
    if "." in found:
        return ["."]
    # A root inside another one is read with it.
    return sorted(r for r in found if not any(r != o and _within(r, o) for o in found))


Snapshot = dict[str, tuple[int, int]]


def snapshot(root: Path, roots: Sequence[str]) -> Snapshot:
    """Relative path -> (modification time in ns, size) of every file under `roots`."""
    files: Snapshot = {}
    for start in roots:
        top = root / start
        try:
            if top.is_file():
                stat = top.stat()
                files[start] = (stat.st_mtime_ns, stat.st_size)
                continue
        except OSError:
            continue
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:  # removed while read
                continue
            for entry in entries:
                if entry.name in SKIPPED:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        rel = Path(entry.path).relative_to(root).as_posix()
                        files[rel] = (stat.st_mtime_ns, stat.st_size)
                except OSError:
                    continue
    return files


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def watch(
    root: Path, roots: Sequence[str], stop: Callable[[], bool] = lambda: False
) -> Iterator[list[str]]:
    """Each burst of changes under `roots`, once it has settled, until `stop()`."""
    before = snapshot(root, roots)
    while not stop():
        time.sleep(POLL_SECONDS)
        now = snapshot(root, roots)
        if now == before:
            continue
        while True:  # a burst of writes: wait until a read finds nothing new
            time.sleep(SETTLE_SECONDS)
            settled = snapshot(root, roots)
            if settled == now:
                break
            now = settled
        files = changed(before, now)
        before = now
        if files:
            yield files


def shown(files: Sequence[str]) -> str:
    """Changed files for a status line, the first three by name."""
    more = len(files) - 3
    return ", ".join(files[:3]) + (f" and {more} more" if more > 0 else "")


def _counts(result: SmokeResult | None) -> tuple[int, int] | None:
    """(passed, run) of a smoke result, for a status line."""
    if result is None:
        return None
    return len(result.checks) - len(result.failed), len(result.checks)


@dataclass
class Step:
    """What one change did, for its status line."""

    files: list[str]
    done: str
    seconds: float
    checks: tuple[int, int] | None = None  # passed, run
    error: str = ""

    def line(self) -> str:
        """The status line: what changed, what was done, seconds, checks, what failed."""
        parts = [f"{shown(self.files)} changed: {self.done}", f"{self.seconds:.1f}s"]
        if self.checks is not None:
            passed, run = self.checks
            parts.append(f"checks {passed}/{run} passed")
        if self.error:
            parts.append(f"FAILED: {self.error}")
        return " · ".join(parts)


def sync_targets_exist(root: Path, environment: Environment) -> None:
    """Every synced path exists in the project (a mount of a missing folder would make an empty
    one on the engine's host)."""
    for name, component in environment.components.items():
        for i, sync in enumerate(component.develop.sync):
            if not (root / sync.path).exists():
                raise ConfigError(
                    f"components.{name}.develop.sync[{i}].path: {sync.path!r} does not exist in "
                    f"the project folder {root}.",
                    hint="Name a folder or file of the project, relative to its root.",
                )


def require_compose(environment: Environment) -> None:
    """`dev` needs a Compose environment: it mounts the working tree and restarts containers."""
    if environment.target != "compose":
        raise ConfigError(
            f"`autodevhub dev` runs Compose environments; {environment.name!r} is a "
            f"{environment.target} environment.",
            hint="Run it with a Compose environment (such as --env dev); for this one, "
            "`autodevhub deploy` after each change, and `autodevhub logs --follow`.",
        )


def reload_components(
    restart: Callable[[str], None],
    execute: Callable[[str, list[str]], None],
    environment: Environment,
    names: Sequence[str],
) -> str:
    """Restart or exec in each component whose synced files changed, side by side; what was
    done, in words (the first failure is raised once all have ended)."""
    from concurrent.futures import ThreadPoolExecutor

    done: list[str] = []
    actions: list[Callable[[], None]] = []
    for name in names:
        develop = environment.components[name].develop
        if develop.restart:
            actions.append(functools.partial(restart, name))
            done.append(f"restarted {name}")
        elif develop.exec:
            actions.append(functools.partial(execute, name, list(develop.exec)))
            done.append(f"ran {' '.join(develop.exec)} in {name}")
        else:
            done.append(f"synced {name}")
    if actions:
        with ThreadPoolExecutor(max_workers=len(actions)) as pool:
            futures = [pool.submit(action) for action in actions]
        for future in futures:
            future.result()
    return ", ".join(done)


def one_line(exc: AutodevhubError) -> str:
    """An error's message on one line, for a status line."""
    return " ".join(exc.message.split())


def sets_for(root: Path, sets: Sequence[str]) -> list[str]:
    """The command's `--set` values and the one that turns on the mounts of the working tree."""
    return [*sets, f"compose.develop_from={root.resolve()}"]


def checks_of(environment: Environment, names: Sequence[str]) -> Environment:
    """The environment with only the smoke checks of these components."""
    smoke = environment.smoke.model_copy(
        update={"checks": [c for c in environment.smoke.checks if c.component in names]}
    )
    return environment.model_copy(update={"smoke": smoke})


def endpoints_of(endpoints: Mapping[str, Endpoint], names: Sequence[str]) -> dict[str, Endpoint]:
    """Where the smoke checks reach these components."""
    return {k: v for k, v in endpoints.items() if k in names}


@dataclass(kw_only=True)
class DevRequest:
    """Options of `autodevhub dev`."""

    environment: str = "dev"
    project_dir: str | Path | None = None
    sets: Sequence[str] = ()
    timeout: float = 300.0


# Files whose change is a change of what is rendered: every component is deployed again.
CONFIG_FOLDERS = ("environments", "templates")


def run_dev(
    request: DevRequest,
    status: Callable[[str], None],
    show_log: Callable[[LogLine], None],
    report: Reporter | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Deploy the environment with its synced paths mounted, then bring each change in (see the
    module's docstring) until `stop()` or Ctrl-C; its components' logs go to `show_log` from the
    first deploy on, a status line per change to `status`."""
    import threading

    from autodevhub_cli.core.context import open_context
    from autodevhub_cli.core.deploy import DeployRequest, deploy
    from autodevhub_cli.core.logs import LogQuery, read_logs
    from autodevhub_cli.core.project import find_project

    project = find_project(request.project_dir)
    sets = sets_for(project.root, request.sets)
    ctx = open_context(request.environment, project.root, sets, report)
    require_compose(ctx.environment)
    sync_targets_exist(project.root, ctx.environment)
    deploy_request = DeployRequest(
        environment=request.environment,
        project_dir=project.root,
        sets=sets,
        timeout=request.timeout,
    )
    began = time.monotonic()
    outcome = deploy(deploy_request, report)
    roots = sorted({*watched_roots(ctx.environment), *CONFIG_FOLDERS})
    release = outcome.release.id if outcome.release else "?"
    status(
        f"deployed release {release} in {time.monotonic() - began:.1f}s; watching "
        f"{', '.join(roots)} (Ctrl-C stops watching and leaves the environment running)"
    )
    target = ctx.target

    def follow() -> None:
        query = LogQuery(follow=True, since=0.0)
        try:
            for line in read_logs(target, ctx.environment, query, lambda _note: None):
                show_log(line)
        except AutodevhubError as exc:  # the engine went away: the watch goes on without logs
            status(f"logs stopped: {one_line(exc)}")

    threading.Thread(target=follow, daemon=True).start()
    for files in watch(project.root, roots, stop):
        environment = ctx.environment
        plan = plan_for(environment, files)
        config = [f for f in files if f.split("/")[0] in CONFIG_FOLDERS]
        started = time.monotonic()
        if config or plan.rebuild:
            status(f"{shown(files)} changed: building and deploying")
            step = _redeploy(deploy_request, files, plan, bool(config), started)
            try:  # the values may have changed: classify the next edits with the new ones
                ctx = open_context(request.environment, project.root, sets, report)
            except AutodevhubError as exc:
                step.error = step.error or one_line(exc)
        elif plan.reload:
            step = _reload(ctx.target, environment, files, plan, request.timeout, started)
        else:
            step = Step(files, "nothing to do (no component uses them)", 0.0)
        status(step.line())


def _redeploy(
    request: DeployRequest,
    files: list[str],
    plan: Plan,
    config: bool,
    started: float,
) -> Step:
    from autodevhub_cli.core.deploy import DeployFailed, deploy

    done = (
        "deployed again (the configuration changed)"
        if config
        else f"rebuilt and deployed {', '.join(plan.rebuild)}"
    )
    try:
        outcome = deploy(request)  # quiet: its status line says how it went
    except DeployFailed as exc:
        restored = exc.outcome.restored
        back = f"; release {restored.id} serves again" if restored else ""
        return Step(files, done, time.monotonic() - started, error=one_line(exc) + back)
    except AutodevhubError as exc:
        return Step(files, done, time.monotonic() - started, error=one_line(exc))
    return Step(files, done, time.monotonic() - started, _counts(outcome.smoke))


def _reload(
    target: Target,
    environment: Environment,
    files: list[str],
    plan: Plan,
    timeout: float,
    started: float,
) -> Step:
    from autodevhub_cli.core.smoke import run_smoke_checks
    from autodevhub_cli.core.targets.compose import ComposeTarget

    assert isinstance(target, ComposeTarget)
    names = plan.reload
    try:
        done = reload_components(target.restart_component, target.exec_in, environment, names)
        target.wait_healthy(names, timeout)
        with target.smoke_endpoints(environment, False) as endpoints:
            result = run_smoke_checks(checks_of(environment, names), endpoints_of(endpoints, names))
    except AutodevhubError as exc:
        return Step(
            files, f"reloading {', '.join(names)}", time.monotonic() - started, error=one_line(exc)
        )
    error = "" if result.ok else result.summary()
    return Step(files, done, time.monotonic() - started, _counts(result), error)
