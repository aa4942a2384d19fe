"""The Docker engine, through docker-py: connect, inspect, build, push. Imported lazily."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

from autodevhub_cli.core.errors import ApplyError, BuildError, PushError

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger("autodevhub.docker")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


# How long a step the engine dropped waits for it to come back (a dockerd restart takes seconds).
ENGINE_RETURN_SECONDS = 60.0
T = TypeVar("T")


class EngineUnavailable(BuildError):
    """No Docker engine answered."""


class EngineError(ApplyError):
    """The Docker engine refused a call: says which call and why."""


class EngineNotFound(EngineError):
    """The object a call names does not exist on the engine."""


class EngineConflict(EngineError):
    """A name is taken on the engine (HTTP 409)."""


def engine_address() -> str:
    """Where the engine is: DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def call(what: str, action: Callable[[], T]) -> T:
    """Run one docker-py call, logged; its errors become EngineError (EngineNotFound,
    EngineConflict) or EngineUnavailable, each naming the call and the engine's reason."""
    from docker.errors import APIError, DockerException, NotFound
    from requests.exceptions import RequestException

    log.info("docker: %s", what)
    try:
        return action()
    except NotFound as exc:
        raise EngineNotFound(f"{what}: {_short(exc)}") from None
    except APIError as exc:
        if exc.status_code == 409:
            raise EngineConflict(f"{what}: {_short(exc)}") from None
        raise EngineError(f"{what} failed: {_short(exc)}") from None
    except (RequestException, DockerException) as exc:
        raise EngineUnavailable(
            f"{what} failed: no Docker engine answers at {engine_address()} ({_short(exc)}).",
            hint="Start the engine (`sudo systemctl start docker`, or `dockerd &` as root) or "
            "point DOCKER_HOST at it, then run the command again.",
        ) from None


def connect(timeout: int = 120) -> DockerClient:
    """A docker-py client for the engine at DOCKER_HOST (or the default socket)."""
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    where = engine_address()
    log.info("docker: connect %s", where)
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (DockerException, RequestException) as exc:
        raise EngineUnavailable(
            f"No Docker engine answers at {where} ({_short(exc)}).",
            hint="Start one (`sudo systemctl start docker`, or `dockerd &` as root) or point "
            "DOCKER_HOST at a running engine, then run the command again.",
        ) from None


def wait_for_engine(seconds: float) -> bool:
    """Whether an engine answers within `seconds` (one ping a half second; e.g. dockerd being
    restarted under a running deploy)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            connect(timeout=2).close()
            return True
        except EngineUnavailable:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def image_exists(client: DockerClient, ref: str) -> bool:
    """Whether the engine holds an image named `ref`."""
    return inspect_image(client, ref) is not None


def inspect_image(client: DockerClient, ref: str) -> dict[str, Any] | None:
    """The engine's inspection of the image named `ref` (Id, RepoDigests, ...), or None."""
    from docker.errors import ImageNotFound

    log.info("docker: inspect %s", ref)
    try:
        return dict(client.api.inspect_image(ref))
    except ImageNotFound:
        return None


@dataclass(frozen=True)
class Run:
    """What a one-off container did: its exit code (None: it never started) and output."""

    exit_code: int | None
    output: str


def run_once(client: DockerClient, image: str, argv: list[str], *, timeout: int = 60) -> Run:
    """Run `argv` in a throwaway container of `image`, without network; always removed."""
    from docker.errors import APIError
    from requests.exceptions import RequestException

    log.info("docker: run %s (no network, removed after): %s", image, argv[0])
    try:
        container = client.containers.create(
            image,
            entrypoint=argv[:1],
            command=argv[1:],
            network_mode="none",
            labels={"io.autodevhub.throwaway": "1"},
        )
    except APIError as exc:
        return Run(None, _short(exc))
    try:
        try:
            container.start()
        except APIError as exc:
            return Run(None, _short(exc))
        status = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return Run(int(status.get("StatusCode", 1)), output)
    except RequestException as exc:
        return Run(None, f"no answer from the container within {timeout} s ({_short(exc)})")
    finally:
        try:
            container.remove(force=True)
        except (APIError, RequestException):
            log.info("docker: could not remove the throwaway container %s", container.id[:12])


def pull(client: DockerClient, ref: str) -> str | None:
    """Pull `ref`; return None on success or a one-line reason it failed."""
    from docker.errors import DockerException

    log.info("docker: pull %s", ref)
    try:
        client.images.pull(ref)
        return None
    except DockerException as exc:
        return _short(exc)


def image_size(client: DockerClient, ref: str) -> int:
    """The image's size in bytes."""
    return int(client.api.inspect_image(ref).get("Size", 0))


@dataclass
class BuildLog:
    """What a build printed, kept for error messages."""

    lines: list[str]
    step: str = ""


def build(
    client: DockerClient,
    *,
    image: str,
    context: IO[bytes],
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    stage: str | None = None,
    nocache: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> BuildLog:
    """Build `tag` from a tar context with the classic builder; fail with the step and log tail."""
    from docker.errors import APIError
    from requests.exceptions import RequestException

    log.info("docker: build %s (dockerfile %s, args %s)", tag, dockerfile, sorted(buildargs))
    record = BuildLog(lines=[])
    try:
        stream: Iterator[dict[str, Any]] = client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            target=stage,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise build_failure(image, record, str(message))
            text = str(chunk.get("stream", "")).rstrip("\n")
            for line in text.splitlines():
                record.lines.append(line)
                if len(record.lines) > 400:
                    del record.lines[:100]
                match = _STEP.match(line)
                if match:
                    record.step = line
                if on_line is not None and line.strip():
                    on_line(line)
    except APIError as exc:
        raise build_failure(image, record, _short(exc)) from None
    except RequestException as exc:
        # The engine went away mid-build (stopped or restarted).
        raise build_failure(
            image, record, f"the Docker engine stopped answering ({_short(exc)})"
        ) from None
    return record


def build_failure(image: str, record: BuildLog, message: str) -> BuildError:
    """The error for a failed build: the image, the step, the message and the last log lines."""
    tail = "\n".join(f"    {line}" for line in record.lines[-12:] if line.strip())
    missing_base = "pull access denied" in message or "not found" in message.lower()
    hint = (
        "The base image is not on this engine and cannot be pulled: build or load it, or set "
        "the build arg that names it (build.args) in the environment file."
        if missing_base and ("FROM" in record.step or "load metadata" in record.step)
        else "Fix the Dockerfile step or the files it uses, then build again (-v shows every "
        "log line)."
    )
    return BuildError(
        f"The {image} image failed to build at {record.step or 'the start'}: {message.strip()}"
        + (f"\n  last log lines:\n{tail}" if tail else ""),
        hint=hint,
    )


def push(
    client: DockerClient,
    *,
    repository: str,
    tag: str,
    auth: dict[str, str] | None,
    attempts: int = 3,
    backoff: float = 1.0,
) -> str:
    """Push `repository:tag`, retrying transient failures with backoff; return the digest. The
    engine going away mid-push (a dockerd restart) is one of them."""
    from docker.errors import APIError
    from requests.exceptions import RequestException

    last = ""
    for attempt in range(1, attempts + 1):
        log.info("docker: push %s:%s (attempt %d/%d)", repository, tag, attempt, attempts)
        try:
            digest = ""
            for chunk in client.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth
            ):
                if "error" in chunk or "errorDetail" in chunk:
                    raise _PushChunkError(
                        str(chunk.get("error") or chunk["errorDetail"].get("message", ""))
                    )
                aux = chunk.get("aux") or {}
                if aux.get("Digest"):
                    digest = str(aux["Digest"])
            if digest:
                return digest
            last = "the engine reported no digest"
        except RequestException as exc:
            last = f"the Docker engine stopped answering ({_short(exc)})"
            if attempt < attempts and wait_for_engine(ENGINE_RETURN_SECONDS):
                continue  # the engine is back: push again (the registry keeps what it got)
        except (_PushChunkError, APIError) as exc:
            last = _short(exc)
            if _is_auth_error(last):
                raise PushError(
                    f"The registry refused the credentials for {repository}:{tag}: {last}.",
                    hint="Log in with `docker login`, or set REGISTRY_USERNAME and "
                    "REGISTRY_PASSWORD, then push again.",
                ) from None
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise PushError(
        f"Pushing {repository}:{tag} failed after {attempts} attempts: {last}.",
        hint="Check that the registry is up and reachable from the Docker engine, then run "
        "`autodevhub build --push` again (built images are reused).",
    )


class _PushChunkError(Exception):
    pass


def _is_auth_error(message: str) -> bool:
    lowered = message.lower()
    # A 401 status, not "401" inside a port or a digest (127.0.0.1:40131 is not a refusal).
    return any(
        word in lowered for word in ("unauthorized", "authentication required", "denied")
    ) or bool(re.search(r"(?<![\w:.])401(?!\w)", lowered))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


class ContainerLog:
    """A container's log as (time, text) lines, read with the engine's timestamps; with
    `follow`, open until the container stops or `close` is called (from another thread)."""

    def __init__(
        self,
        client: DockerClient,
        container: str,
        what: str,
        *,
        since: float | None,
        tail: int | None,
        follow: bool,
    ) -> None:
        self.what = what
        self._stream = call(
            what,
            lambda: client.api.logs(
                container,
                stdout=True,
                stderr=True,
                stream=True,
                timestamps=True,
                follow=follow,
                tail="all" if tail is None else tail,
                since=since,
            ),
        )

    _closed = False

    def __iter__(self) -> Iterator[tuple[Any, str]]:
        from requests.exceptions import RequestException
        from urllib3.exceptions import HTTPError

        from autodevhub_cli.core.logs import parse_timestamped

        try:
            yield from parse_timestamped(self._stream)
        except (RequestException, HTTPError, OSError, ValueError) as exc:
            if self._closed:
                return
            said = _short(exc)
            raise EngineError(f"{self.what}: the engine's stream broke off ({said})") from None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):  # already closed, or the connection is gone
            self._stream.close()
