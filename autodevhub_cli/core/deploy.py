"""The deploy pipeline, target-neutral: lock -> build and push -> render and validate ->
components' tasks (such as a migration) -> apply and wait -> smoke checks -> record; on a
failed wait or check, roll back to the last good release, check it again, and report what
failed and what was restored.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core import releases as states
from autodevhub_cli.core.bases import is_pinned
from autodevhub_cli.core.build import BuildRequest, build_images, git_commit, record_path
from autodevhub_cli.core.context import (
    ENVIRONMENT_FILE,
    IMAGES_FILE,
    DeployContext,
    Reporter,
    check,
    open_context,
    prune_after,
    rollback_to,
)
from autodevhub_cli.core.environment import Environment, Task
from autodevhub_cli.core.errors import (
    AutodevhubError,
    ConfigError,
    RecordingError,
    RolloutError,
    SmokeCheckError,
    signal_name,
)
from autodevhub_cli.core.lock import LockLostError
from autodevhub_cli.core.pipeline import RenderOutcome, RenderRequest, render_environment
from autodevhub_cli.core.releases import Release
from autodevhub_cli.core.secrets import require_secrets
from autodevhub_cli.core.smoke import SmokeResult
from autodevhub_cli.core.targets import TargetOptions, TaskRef

if TYPE_CHECKING:
    from autodevhub_cli.core.render import RenderedManifest
log = logging.getLogger("autodevhub.deploy")


@dataclass(kw_only=True)
class DeployRequest:
    """Options of `autodevhub deploy`."""

    environment: str
    project_dir: str | Path | None = None
    sets: Sequence[str] = ()
    skip_build: bool = False
    dry_run: bool = False
    timeout: float = 300.0
    promote: bool = False
    options: TargetOptions = field(default_factory=TargetOptions)
    # A first release that fails is stopped (no good one to go back to) unless kept to debug.
    keep_failed: bool = False
    # A build's record (`build --output json`): deploy exactly those images, build nothing.
    images: Path | None = None


@dataclass
class DeployOutcome:
    """What a deploy did: the release, what was restored, the checks, or the dry-run diff."""

    environment: str
    release: Release | None
    restored: Release | None = None
    smoke: SmokeResult | None = None
    dry_run: bool = False
    diff: str = ""
    plan: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "environment": self.environment,
            "dry_run": self.dry_run,
            "release": self.release.to_dict() if self.release else None,
            "restored": self.restored.id if self.restored else None,
            "smoke": self.smoke.to_dict() if self.smoke else None,
            "plan": self.plan,
            "diff": self.diff,
            "notes": self.notes,
        }


class DeployFailed(AutodevhubError):
    """A deploy failed; says what failed and which release serves now."""

    def __init__(self, message: str, *, exit_code: int, outcome: DeployOutcome) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.outcome = outcome


class DeployInterrupted(KeyboardInterrupt):
    """A deploy stopped by SIGINT or SIGTERM: says during which step, what serves now and what
    to do. Still a KeyboardInterrupt, so no `except Exception` on the way up swallows it; its
    args are (signal name, message), as the CLI reads every interruption."""

    def __init__(self, signal_name: str, message: str, *, outcome: DeployOutcome) -> None:
        super().__init__(signal_name, message)
        self.message = message
        self.outcome = outcome


@dataclass
class _Steps:
    """The deploy's reporter, remembering the steps it announced: the last one is where a
    signal stopped it, and once `apply` was announced the release has begun to switch."""

    report: Reporter
    seen: list[str] = field(default_factory=list)

    def __call__(self, step: str, message: str) -> None:
        if not self.seen or self.seen[-1] != step:
            self.seen.append(step)
        self.report(step, message)

    @property
    def current(self) -> str:
        """The step running now."""
        return self.seen[-1] if self.seen else "start"

    @property
    def switched(self) -> bool:
        """Whether the release has begun to replace the previous one."""
        return "apply" in self.seen


def deploy(request: DeployRequest, report: Reporter | None = None) -> DeployOutcome:
    """Deploy an environment end to end, rolling back when the new release is not healthy."""
    ctx = open_context(
        request.environment, request.project_dir, request.sets, report, request.options
    )
    if request.dry_run:
        return preview_changes(ctx, request)
    with ctx.target.lock("deploy"):
        _import_local_records(ctx)
        for old in ctx.store.recover():
            ctx.say("recover", f"release {old.id} was left unfinished; marked aborted")
        previous = ctx.store.current()
        serving = [] if previous is not None else _serving_unknown(ctx)
        release = ctx.store.new(ctx.target.name, git_commit(ctx.project.root), request.sets)
        _trim(ctx, release)
        steps = ctx.say = _Steps(ctx.say)
        try:
            return _run(ctx, request, release, previous, serving)
        except KeyboardInterrupt as exc:
            raise _interrupted(ctx, request, release, previous, steps, exc) from None
        except DeployFailed:
            raise
        except RecordingError:
            if release.status in (states.DEPLOYED, states.PREVIEW):
                raise  # it runs: its record must not say failed (the error says it runs)
            release.status = states.FAILED
            release.error = "its record could not be written"
            _save_best_effort(ctx, release)
            raise
        except Exception as exc:
            release.status = states.FAILED
            release.error = f"{type(exc).__name__}: {exc}"
            ctx.store.save(release)
            raise


def _recorded_build(ctx: DeployContext, serving: Release | None) -> tuple[Path | None, str]:
    """The build to reuse: this machine's last build record, else the one the serving release
    ran (from the history in the target: a fresh clone reuses what serves). Says which."""
    local = record_path(ctx.project, ctx.environment.name)
    if local.exists():
        return local, "the recorded build"
    if serving is not None:
        kept = ctx.store.path(serving, IMAGES_FILE)
        if kept is not None:
            return kept, f"the images of release {serving.id}, which serves"
    return None, ""


def stale_images(ctx: DeployContext, record: Path) -> list[str]:
    """The components of a recorded build whose sources (files, build args) changed since it
    was built: deploying it would not run what the project holds now."""
    from autodevhub_cli.core.images import plan_images

    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        recorded = {i["name"]: i.get("inputs") for i in data.get("images") or []}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    try:
        plans = plan_images(ctx.project, ctx.environment)
    except AutodevhubError:
        return []
    return [
        p.component
        for p in plans
        if recorded.get(p.component) and recorded[p.component] != p.inputs_digest
    ]


def _stale_note(ctx: DeployContext, record: Path, source: str) -> str | None:
    stale = stale_images(ctx, record)
    if not stale:
        return None
    return (
        f"{source} is stale: the sources of {', '.join(stale)} changed since it was built, so "
        "it does not run what the project holds now (build again, or drop --skip-build)"
    )


def _import_local_records(ctx: DeployContext) -> None:
    """Records an earlier autodevhub kept under `.autodevhub/releases/<env>/` go into the
    target's store the first time a deploy finds that store empty."""
    folder = ctx.project.state_dir / "releases" / ctx.environment.name
    if not folder.is_dir():
        return
    imported = ctx.store.import_local(folder)
    if imported:
        ctx.say(
            "history",
            f"imported {len(imported)} release record(s) from {folder} into "
            f"{ctx.store.driver.describe()}",
        )


def _serving_unknown(ctx: DeployContext) -> list[str]:
    """What of the environment runs although its history has no good release (deployed by
    another tool, or its records lost): never to be deleted by this deploy."""
    try:
        live = ctx.target.live()
    except AutodevhubError as exc:
        # Cannot tell: treat the environment as serving, so that nothing is deleted.
        return [f"(could not be listed: {exc.message})"]
    return sorted({str(w.get("workload")) for w in live})


def _trim(ctx: DeployContext, release: Release) -> None:
    """Keep the history within releases.keep; a failure to delete old records costs nothing
    but space, so it is said and the deploy goes on."""
    try:
        deleted = ctx.store.trim(release)
    except RecordingError as exc:
        ctx.say("history", f"could not delete old release records: {exc.message}")
        return
    if deleted:
        ctx.say(
            "history",
            f"deleted {len(deleted)} release record(s) beyond releases.keep "
            f"({ctx.store.keep}): {', '.join(deleted)}",
        )


def task_fingerprints(root: Path, environment: Environment) -> dict[str, str]:
    """`component.task` -> a hash of what the task runs with: its command, its component's env,
    secret references and volumes, and the bytes of its input files; for each enabled task that
    names its inputs (only those can be skipped: the inputs say which of the image's files
    matter to it)."""
    import hashlib
    import json

    from autodevhub_cli.core.images import _expand

    found = {}
    for ref, task in _tasks(environment):
        if not task.inputs:
            continue
        component = environment.components[ref.component]
        identity = {
            "command": task.command,
            "env": component.model_dump(mode="json", include={"env", "secret_env", "volumes"}),
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        for rel in sorted({f for pattern in task.inputs for f in _expand(root, pattern)}):
            digest.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
        found[str(ref)] = digest.hexdigest()
    return found


def _tasks(environment: Environment) -> list[tuple[TaskRef, Task]]:
    """Every enabled task, in the order the components and their tasks are declared."""
    return [
        (TaskRef(name, task_name), task)
        for name, component in environment.components.items()
        for task_name, task in component.tasks.items()
        if task.enabled
    ]


def _tasks_to_run(
    ctx: DeployContext, release: Release, previous: Release | None
) -> tuple[list[TaskRef], list[str]]:
    """The tasks this release runs, and why the others are skipped."""
    tasks = [ref for ref, _ in _tasks(ctx.environment)]
    unchanged = [
        ref
        for ref in tasks
        if previous is not None
        and str(ref) in release.tasks
        and previous.tasks.get(str(ref)) == release.tasks[str(ref)]
    ]
    if not unchanged or previous is None or not _running(ctx):
        return tasks, []
    reasons = [
        f"{ref} skipped: its inputs are unchanged since release {previous.id}, which is running"
        for ref in unchanged
    ]
    return [ref for ref in tasks if ref not in unchanged], reasons


def _running(ctx: DeployContext) -> bool:
    """Whether anything of the environment runs now (read from the target)."""
    try:
        return any(w.get("state") in ("running", "ready") for w in ctx.target.live())
    except AutodevhubError:
        return False


def _timed(release: Release, step: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return action()
    finally:
        release.timings[step] = round(time.perf_counter() - started, 3)


@dataclass(kw_only=True)
class _Attempt:
    """One deploy's state as its steps hand it on."""

    ctx: DeployContext
    request: DeployRequest
    release: Release
    previous: Release | None
    outcome: DeployOutcome
    images: Path | None = None
    pusher: _BackgroundPush | None = None
    rendered: RenderOutcome | None = None  # the release's output and the values behind it
    path: Path | None = None  # the rendered output, as the release keeps it
    switched: bool = False  # apply has begun: a failure from here on rolls back
    blue_green: bool = False  # a preview waits for promotion

    @property
    def name(self) -> str:
        return self.ctx.environment.name


def _run(
    ctx: DeployContext,
    request: DeployRequest,
    release: Release,
    previous: Release | None,
    serving: list[str],
) -> DeployOutcome:
    """The deploy pipeline, one function per step; a failure after the switch rolls back."""
    run = _Attempt(
        ctx=ctx,
        request=request,
        release=release,
        previous=previous,
        outcome=DeployOutcome(ctx.environment.name, release),
    )
    if serving:
        _keep_what_serves(ctx, serving)
    try:
        if ctx.environment.target == "compose":
            # A missing value would fail as a task's or a container's error: name it first.
            require_secrets(ctx.environment, ctx.target)
        _build_step(run)
        _render_step(run)
        _tasks_step(run)
        _apply_step(run)
        _check_step(run)
        if run.blue_green and not request.promote:
            return _leave_as_preview(run)
        _promote_step(run)
        _push_step(run)
    except LockLostError as exc:
        # Another deploy may be running: change nothing more, roll nothing back.
        release.status = states.FAILED
        release.error = str(exc)
        ctx.store.save(release)
        raise DeployFailed(str(exc), exit_code=exc.exit_code, outcome=run.outcome) from None
    except (RolloutError, SmokeCheckError) as exc:
        return _roll_back(ctx, request, release, previous, serving, exc, run.outcome)
    except AutodevhubError as exc:
        if run.switched:
            return _roll_back(ctx, request, release, previous, serving, exc, run.outcome)
        release.status = states.FAILED
        release.error = str(exc)
        ctx.store.save(release)
        still = f" Release {previous.id} still serves." if previous else ""
        raise DeployFailed(
            f"Deploy of {run.name!r} failed before switching: {exc}{still}",
            exit_code=exc.exit_code,
            outcome=run.outcome,
        ) from None
    release.status = states.DEPLOYED
    ctx.store.save(release)
    if _timed(release, "prune", lambda: prune_after(ctx, release, previous)):
        _save_best_effort(ctx, release)  # what it deleted took time: the record says how much
    ctx.say("done", f"release {release.id} deployed")
    return run.outcome


def _keep_what_serves(ctx: DeployContext, serving: list[str]) -> None:
    """Objects of the environment run, but no recorded release knows them: apply over them,
    delete nothing of theirs."""
    ctx.target.prune_enabled = False
    ctx.say(
        "history",
        f"no good release in {ctx.store.driver.describe()}, but {', '.join(serving)} "
        "already run: nothing will be pruned or removed",
    )


def _build_step(run: _Attempt) -> None:
    """The images the release runs: a build record given (--images), the recorded build
    (--skip-build), or a build. Compose runs the images from the local engine, so their push
    to the registry overlaps the tasks, the apply and the checks; it must succeed before the
    release counts."""
    ctx, request, release = run.ctx, run.request, run.release
    if request.images is not None:
        run.images = request.images
        ctx.say("build", f"skipped: deploying the images recorded in {run.images}")
        return
    if request.skip_build:
        reused, source = _recorded_build(ctx, run.previous)
        if reused is None:
            raise ConfigError(
                f"--skip-build: environment {run.name!r} has no recorded build here and no "
                "release serving whose images could be reused.",
                hint=f"Run `autodevhub build --env {run.name} --push` first, pass the build's "
                "record with --images FILE, or drop --skip-build.",
            )
        run.images = reused
        ctx.say("build", f"skipped: using {source}")
        note = _stale_note(ctx, reused, source)
        if note:
            ctx.say("build", "warning: " + note)
        return
    overlap_push = ctx.target.runs_local_images
    ctx.say("build", "building images" + ("" if overlap_push else " and pushing them"))
    built = _timed(
        release,
        "build",
        lambda: build_images(
            BuildRequest(
                environment=run.name,
                project_dir=ctx.project.root,
                sets=request.sets,
                push=not overlap_push,
                record=not overlap_push,
                loaded=ctx.environment,
            ),
            report=lambda image, message: ctx.say(
                "build",
                ("  " if message.startswith("  ") else "") + f"{image}: {message.strip()}",
            ),
        ),
    )
    # The release keeps the images it runs; the build record is written once they are pushed
    # (by the background push when it overlaps), so it only names pushed images.
    run.images = ctx.store.attach(
        release, IMAGES_FILE, json.dumps(built.to_dict(), indent=2) + "\n"
    )
    ctx.say("build", ", ".join(f"{i.name} {i.action}" for i in built.images))
    if overlap_push:
        run.pusher = _BackgroundPush(ctx, request.sets)


def _render_step(run: _Attempt) -> None:
    """Render and validate with the images; the release keeps its output, the values behind
    it and its build record."""
    ctx, release = run.ctx, run.release
    ctx.target.check_lock()
    ctx.say("render", "rendering and validating")
    rendered = _timed(
        release,
        "render",
        lambda: render_environment(
            RenderRequest(
                environment=run.name,
                project_dir=ctx.project.root,
                sets=run.request.sets,
                images=run.images,
                loaded=ctx.environment,
            )
        ),
    )
    assert run.images is not None
    if ctx.store.text(release, IMAGES_FILE) is None:
        # The build it runs, kept with it: a later `--skip-build` from any clone reuses it.
        ctx.store.attach(release, IMAGES_FILE, run.images.read_text(encoding="utf-8"))
    if ctx.environment.kubernetes.require_image_digests and not ctx.target.runs_local_images:
        require_digests(rendered.result.manifests, run.name)
    release.images = [
        {"name": c, "ref": rendered.environment.image_ref(c)}
        for c in rendered.environment.components
    ]
    run.path = ctx.store.attach(release, ctx.target.rendered_filename, _rendered_text(rendered))
    # The values behind it: a rollback to this release checks it with its own smoke checks and
    # probes, not with those of the release that failed.
    ctx.store.attach(release, ENVIRONMENT_FILE, rendered.environment.model_dump_json())
    ctx.store.save(release)
    run.rendered = rendered


def _tasks_step(run: _Attempt) -> None:
    """The components' tasks whose inputs changed (a migration), before anything switches."""
    ctx, release = run.ctx, run.release
    release.tasks = task_fingerprints(ctx.project.root, ctx.environment)
    tasks, skipped = _tasks_to_run(ctx, release, run.previous)
    for reason in skipped:
        ctx.say("tasks", reason)
    ctx.target.check_lock()
    if tasks:
        path = run.path
        assert path is not None
        ctx.say("tasks", "running " + ", ".join(str(t) for t in tasks))
        _timed(release, "tasks", lambda: ctx.target.run_tasks(path, run.request.timeout, tasks))


def _apply_step(run: _Attempt) -> None:
    """Apply and wait until healthy; from here on a failure rolls back."""
    ctx, path = run.ctx, run.path
    assert path is not None
    ctx.target.check_lock()
    ctx.say("apply", "applying and waiting until healthy")
    run.switched = True
    _timed(run.release, "apply", lambda: ctx.target.apply(path, run.request.timeout))
    run.blue_green = ctx.target.blue_green and ctx.target.preview_waiting(path)
    if ctx.target.blue_green and not run.blue_green:
        ctx.say("apply", "the blue-green workloads are unchanged: no preview to promote")


def _check_step(run: _Attempt) -> None:
    """The smoke checks, against the preview of a blue-green release."""
    ctx, release = run.ctx, run.release
    ctx.target.check_lock()
    ctx.say("smoke", "running smoke checks" + (" against the preview" if run.blue_green else ""))
    assert run.rendered is not None
    environment = run.rendered.environment
    smoke = _timed(release, "smoke", lambda: check(ctx, environment, preview=run.blue_green))
    run.outcome.smoke = smoke
    release.smoke = smoke.to_dict()
    if not smoke.ok:
        raise SmokeCheckError(f"smoke checks failed: {smoke.summary()}")


def _leave_as_preview(run: _Attempt) -> DeployOutcome:
    """A checked blue-green preview, left for `autodevhub promote`."""
    run.release.status = states.PREVIEW
    run.ctx.store.save(run.release)
    run.ctx.say(
        "done",
        f"release {run.release.id} is up as the preview; promote it with "
        f"`autodevhub promote --env {run.name}`",
    )
    return run.outcome


def _promote_step(run: _Attempt) -> None:
    """A blue-green release (with --promote): the preview made active, then checked again."""
    ctx, release, path = run.ctx, run.release, run.path
    ctx.target.check_lock()
    if not run.blue_green:
        return
    assert path is not None
    _timed(release, "promote", lambda: _promote(ctx, path, run.request.timeout))
    assert run.rendered is not None
    release.smoke = check(ctx, run.rendered.environment).to_dict()


def _push_step(run: _Attempt) -> None:
    """Compose: wait for the push that overlapped the release; it counts only once pushed."""
    if run.pusher is None:
        return
    run.ctx.say("push", "waiting for the push to the registry")
    pushed = _timed(run.release, "push", run.pusher.result)
    # The pushed digests, for the components this project builds; the others keep the
    # existing image they run.
    refs = {i.name: i.ref for i in pushed.images}
    run.release.images = [{**i, "ref": refs.get(i["name"], i["ref"])} for i in run.release.images]


class _BackgroundPush:
    """`build --push` of the images just built, in a thread (it finds them built and pushes)."""

    def __init__(self, ctx: DeployContext, sets: Sequence[str]) -> None:
        import threading

        self._result: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._result = build_images(
                    BuildRequest(
                        environment=ctx.environment.name,
                        project_dir=ctx.project.root,
                        sets=sets,
                        push=True,
                        loaded=ctx.environment,
                    ),
                    report=lambda image, message: (
                        None if message.startswith("  ") else ctx.say("push", f"{image}: {message}")
                    ),
                )
            except BaseException as exc:  # handed to the deploy, which reports it
                self._error = exc

        self._thread = threading.Thread(target=run, name="push", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        """The build result with digests, or the push's error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _roll_back(
    ctx: DeployContext,
    request: DeployRequest,
    release: Release,
    previous: Release | None,
    serving: list[str],
    cause: AutodevhubError,
    outcome: DeployOutcome,
) -> DeployOutcome:
    release.status = states.FAILED
    release.error = str(cause)
    # Recording the failure must not stand between it and the rollback (a full disk): the
    # rollback runs, and the message says what could not be recorded.
    unrecorded = _save_best_effort(ctx, release)
    code = cause.exit_code
    name = ctx.environment.name
    if previous is None:
        left = (
            _unknown_release_failed(ctx, release, serving)
            if serving
            else _first_release_failed(ctx, request, release)
        )
        raise DeployFailed(
            f"Deploy of {name!r} failed: {cause} {left}" + unrecorded,
            exit_code=code,
            outcome=outcome,
        )
    if ctx.target.blue_green:
        rendered = ctx.store.path(release, ctx.target.rendered_filename)
        if rendered is not None:
            ctx.say("rollback", "aborting the rollout: the active version keeps serving")
            ctx.target.abort(rendered)
    ctx.say("rollback", f"rolling back to release {previous.id}")
    try:
        restored_smoke = rollback_to(ctx, previous, request.timeout, replacing=release)
    except AutodevhubError as exc:
        raise DeployFailed(
            f"Deploy of {name!r} failed: {cause} The rollback to release {previous.id} failed "
            f"too: {exc}" + unrecorded,
            exit_code=code,
            outcome=outcome,
        ) from None
    release.restored = previous.id
    unrecorded = _save_best_effort(ctx, release) or unrecorded
    outcome.restored = previous
    verdict = "passes its smoke checks" if restored_smoke.ok else "FAILS its smoke checks too"
    raise DeployFailed(
        f"Deploy of {name!r} failed: {cause} Rolled back to release {previous.id} "
        f"({', '.join(i['ref'].split('/')[-1] for i in previous.images)}), which {verdict}."
        + unrecorded,
        exit_code=code,
        outcome=outcome,
    )


def _save_best_effort(ctx: DeployContext, release: Release) -> str:
    """Save `release`; if its record cannot be written, say so (for the message) instead."""
    try:
        ctx.store.save(release)
    except RecordingError as exc:
        return (
            f" The record of release {release.id} could not be updated ({exc.message}); it may "
            "still say pending."
        )
    return ""


def _interrupted(
    ctx: DeployContext,
    request: DeployRequest,
    release: Release,
    previous: Release | None,
    steps: _Steps,
    signalled: KeyboardInterrupt,
) -> DeployInterrupted:
    """Record where a signal stopped the deploy and leave the cluster in a known state: before
    the switch nothing that serves was touched; once apply has begun, roll back to the previous
    release as a failed check does (a second signal stops that as well). Says which."""
    name = ctx.environment.name
    by = signal_name(signalled)
    step = steps.current
    stopped = f"stopped by {by} during {step}"
    release.status = states.INTERRUPTED
    release.error = f"{release.error}; then {stopped}" if release.error else stopped
    ctx.store.save(release)
    redo = f"`autodevhub rollback --env {name}" + (f" --to {previous.id}`" if previous else "`")
    if not steps.switched:
        serving = f"release {previous.id} still serves" if previous else "nothing was deployed"
        state = f"before anything switched: {serving}."
        if "tasks" in steps.seen:
            state += " A task Job it started may still run to its end in the cluster."
    elif previous is None:
        state = (
            "with no earlier release to roll back to, so what it applied stays "
            f"(`autodevhub status --env {name}` shows it, `autodevhub down --env {name}` "
            "removes it)."
        )
    elif step == "rollback":
        state = f"so the cluster may run parts of both releases: roll back with {redo}."
    else:
        state = _roll_back_interrupted(ctx, request, release, previous, stopped, redo)
    message = (
        f"Deploy of {name!r} was {stopped}, {state} Release {release.id} is recorded as "
        "interrupted; the next deploy marks it aborted. Deploy again when ready."
    )
    return DeployInterrupted(by, message, outcome=DeployOutcome(name, release))


def _roll_back_interrupted(
    ctx: DeployContext,
    request: DeployRequest,
    release: Release,
    previous: Release,
    stopped: str,
    redo: str,
) -> str:
    """Roll an interrupted release back to the previous one; how that went, for the message."""
    ctx.say("rollback", f"{stopped}: rolling back to release {previous.id}")
    try:
        rendered = ctx.store.path(release, ctx.target.rendered_filename)
        if ctx.target.blue_green and rendered is not None:
            ctx.target.abort(rendered)
        smoke = rollback_to(ctx, previous, request.timeout, replacing=release)
    except KeyboardInterrupt as again:
        release.error = f"{release.error}; the rollback was stopped by {signal_name(again)} too"
        ctx.store.save(release)
        return (
            f"and {signal_name(again)} stopped its rollback to release {previous.id} too, so "
            f"the cluster may run parts of both releases: roll back with {redo}."
        )
    except AutodevhubError as exc:
        release.error = f"{release.error}; the rollback failed: {exc}"
        ctx.store.save(release)
        return f"and its rollback to release {previous.id} failed: {exc} Roll back with {redo}."
    release.restored = previous.id
    release.error = f"{release.error}; rolled back to release {previous.id}"
    ctx.store.save(release)
    verdict = "passes its smoke checks" if smoke.ok else "FAILS its smoke checks too"
    return f"so it rolled back to release {previous.id}, which {verdict}."


def _unknown_release_failed(ctx: DeployContext, release: Release, serving: list[str]) -> str:
    """No good release in the history, but the environment already ran before this deploy:
    delete nothing of what served. Says so, for the error message."""
    name = ctx.environment.name
    return (
        f"The history ({ctx.store.driver.describe()}) has no good release to roll back to, "
        f"but {', '.join(serving)} already ran before this deploy (deployed by another tool, or "
        f"with its records lost), so nothing was deleted or pruned: what served keeps its "
        f"objects, and release {release.id}'s changes to them stay applied (a rolling update "
        "keeps the old pods serving while the new ones are not ready). Fix the cause and deploy "
        f"again; `autodevhub status --env {name}` shows what runs."
    )


def _first_release_failed(ctx: DeployContext, request: DeployRequest, release: Release) -> str:
    """No good release to go back to: stop the failed one (volumes kept), or keep it as asked.
    Says which, for the error message."""
    name = ctx.environment.name
    if request.keep_failed:
        return (
            f"There is no earlier good release to roll back to; the failed release {release.id} "
            f"is left running, as --keep-failed asked (`autodevhub status --env {name}`, "
            f"`autodevhub down --env {name}`)."
        )
    rendered = ctx.store.path(release, ctx.target.rendered_filename)
    ctx.say("rollback", f"no earlier good release: stopping the failed release {release.id}")
    try:
        if rendered is None:
            raise ConfigError(f"release {release.id} recorded no rendered output to stop")
        ctx.target.remove(rendered, volumes=False)
    except AutodevhubError as exc:
        return (
            f"There is no earlier good release to roll back to, and stopping the failed release "
            f"{release.id} failed too: {exc} Stop it with `autodevhub down --env {name}`."
        )
    return (
        f"There is no earlier good release to roll back to, so the failed release {release.id} "
        "was stopped (its volumes are kept). To leave a failed first release running for "
        "debugging, deploy with --keep-failed."
    )


def _promote(ctx: DeployContext, rendered: Path, timeout: float) -> None:
    ctx.say("promote", "promoting the preview to active")
    ctx.target.promote(rendered, timeout)


def promote(
    environment: str,
    project_dir: Any = None,
    timeout: float = 300.0,
    options: TargetOptions | None = None,
    report: Reporter | None = None,
) -> tuple[Release, bool]:
    """Promote the release waiting as the blue-green preview, then check the active version.
    Returns the release and whether it was promoted: when the newest release is already the
    active one (a first blue-green deploy, or one that changed no Rollout, makes no preview),
    there is nothing to promote, and that is not an error (a pipeline's promote step after
    such a deploy passes)."""
    ctx = open_context(environment, project_dir, (), report, options)
    with ctx.target.lock("promote"):
        releases = ctx.store.all()
        waiting = [r for r in releases if r.status == states.PREVIEW]
        path = ctx.store.path(waiting[-1], ctx.target.rendered_filename) if waiting else None
        if path is None:
            newest = releases[-1] if releases else None
            if newest is not None and newest.status == states.DEPLOYED:
                ctx.say("promote", f"release {newest.id} is already active: nothing to promote")
                return newest, False
            raise ConfigError(
                f"Environment {ctx.environment.name!r} has no release waiting as a preview "
                f"in {ctx.store.driver.describe()}.",
                hint=f"Deploy first: `autodevhub deploy --env {ctx.environment.name}`.",
            )
        release = waiting[-1]
        replaced = ctx.store.current()
        _timed(release, "promote", lambda: _promote(ctx, path, timeout))
        smoke = check(ctx, ctx.environment)
        release.smoke = smoke.to_dict()
        release.status = states.DEPLOYED if smoke.ok else states.FAILED
        if not smoke.ok:
            release.error = f"after promotion: {smoke.summary()}"
        ctx.store.save(release)
        if smoke.ok:
            prune_after(ctx, release, replaced)
        if not smoke.ok:
            raise SmokeCheckError(
                f"Release {release.id} was promoted but its smoke checks fail: {smoke.summary()}",
                hint=f"Roll back with `autodevhub rollback --env {ctx.environment.name}`.",
            )
        return release, True


def require_digests(manifests: Sequence[RenderedManifest], environment: str) -> None:
    """Refuse, before anything is applied, a container image that is not pinned by digest."""
    unpinned = [
        f"{m.kind}/{m.name} container {container or '?'}: {image}"
        for m in manifests
        for container, image in m.container_images()
        if not is_pinned(image)
    ]
    if unpinned:
        raise ConfigError(
            f"Environment {environment} sets kubernetes.require_image_digests, and "
            f"{len(unpinned)} image(s) it would apply are not pinned by digest: "
            f"{'; '.join(unpinned)}. A tag can be moved to other contents; a digest cannot.",
            hint="Pin each image the environment file names as name:tag@sha256:<digest> (its "
            "registry's index digest). The images this project builds are pinned by the digest "
            "of their push: deploy without --skip-build, or after a `build --push` whose record "
            "has digests.",
        )


def _rendered_text(outcome: Any) -> str:
    return str(outcome.result.to_yaml())


def preview_changes(ctx: DeployContext, request: DeployRequest) -> DeployOutcome:
    """What a deploy would change (`deploy --dry-run`, `diff`); changes nothing."""
    import tempfile

    name = ctx.environment.name
    current = ctx.store.current()
    images = request.images
    notes = []
    with tempfile.TemporaryDirectory() as folder:
        if images is None:
            images, source = _recorded_build(ctx, current)
            note = _stale_note(ctx, images, source) if images is not None else None
            if note:
                notes.append(note)
            if images is not None and ctx.target.runs_local_images:
                # What a Compose deploy renders: its images from the local engine, by content
                # tag (the digest a push adds names the same image).
                images = _without_digests(images, Path(folder) / "images.json")
        rendered = render_environment(
            RenderRequest(
                environment=name,
                project_dir=ctx.project.root,
                sets=request.sets,
                images=images,
                loaded=ctx.environment,
            )
        )
        new_text = _rendered_text(rendered)
        staged = Path(folder) / ctx.target.rendered_filename
        staged.write_text(new_text)
        before = (
            ctx.store.path(current, ctx.target.rendered_filename) if current is not None else None
        )
        diff_text = ctx.target.diff(staged, before)
    if diff_text is not None:
        return DeployOutcome(
            name, None, dry_run=True, diff=diff_text, plan=_plan(ctx, request), notes=notes
        )
    old_text = ""
    if current is not None:
        old_text = ctx.store.text(current, ctx.target.rendered_filename) or ""
    diff = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"current ({current.id})" if current else "current (nothing deployed)",
            tofile="new",
        )
    )
    return DeployOutcome(name, None, dry_run=True, diff=diff, plan=_plan(ctx, request), notes=notes)


def _without_digests(record: Path, copy: Path) -> Path:
    """`copy`: the build record without the pushed digests."""
    data = json.loads(record.read_text(encoding="utf-8"))
    for image in data.get("images") or []:
        image["digest"] = None
        image.pop("ref", None)
    copy.write_text(json.dumps(data), encoding="utf-8")
    return copy


def _plan(ctx: DeployContext, request: DeployRequest) -> list[str]:
    tasks = [f"{ref} ({' '.join(task.command)})" for ref, task in _tasks(ctx.environment)]
    steps = [
        "build and push images"
        if not (request.skip_build or request.images)
        else f"deploy the images in {request.images}"
        if request.images
        else "reuse the recorded build",
        f"run the tasks {', '.join(tasks)}" if tasks else "no tasks",
        f"apply to {ctx.target.name} and wait up to {request.timeout:.0f}s",
        "run smoke checks; roll back on failure",
    ]
    if ctx.target.blue_green:
        steps.append("promote the preview" if request.promote else "leave it as the preview")
    return steps
