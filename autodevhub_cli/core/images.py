"""What goes into each image: its build context files and the content tag derived from them."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from autodevhub_cli.core.bases import BaseImage
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import Project

TAG_PREFIX = "c-"
TAG_DIGITS = 16
# Bumped when the way a context is assembled changes, so old tags are not reused wrongly.
# 2: the base images' identities are part of the tag.
_CONTEXT_FORMAT = b"autodevhub-context-2"
# The folder of the build context the wheels are put in (see `context_tar`).
WHEELHOUSE_FOLDER = "wheelhouse"


@dataclass
class ImagePlan:
    """One image to build: where its inputs are, the build args, and the content tag.

    `plan_images` reads the project only; the content tag is known once the base images are
    resolved on the engine (`with_bases`).
    """

    component: str
    repository: str
    dockerfile: str
    files: list[str]
    buildargs: dict[str, str]
    wheelhouse_requirements: str | None
    stage: str | None = None
    content_tag: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    inputs_digest: str = ""  # the files, modes and build args, hashed
    bases: tuple[BaseImage, ...] = ()

    def ref(self, tag: str | None = None) -> str:
        """`registry/repository:tag`."""
        tag = tag or self.content_tag
        if not tag:
            raise ValueError(f"{self.component}: no content tag before its bases are resolved")
        return f"{self.repository}:{tag}"

    def base(self, reference: str) -> BaseImage:
        """The resolved base image named `reference`."""
        return next(b for b in self.bases if b.reference == reference)

    def pinned_buildargs(self, root: Path) -> dict[str, str]:
        """The build args with each base image named by its immutable reference."""
        args = dict(self.buildargs)
        for reference, build_arg in base_images(root, self):
            if build_arg is not None and self.bases:
                pinned = self.base(reference).pinned
                if pinned != reference:
                    args[build_arg] = pinned
        return args


def build_args(environment: Environment, component: str) -> dict[str, str]:
    """A component's build args: the environment's `build.args`, then its own `build.args`."""
    own = environment.components[component].build
    return {**environment.build.args, **(own.args if own else {})}


def plan_images(
    project: Project, environment: Environment, only: list[str] | None = None
) -> list[ImagePlan]:
    """The images of `environment` (or the `only` ones), with their files and content tags."""
    buildable = environment.built()
    chosen = only or buildable
    unknown = [name for name in chosen if name not in buildable]
    if unknown:
        raise ConfigError(
            f"Unknown image {', '.join(repr(u) for u in unknown)} for --only.",
            hint=f"Images of environment {environment.name!r}: {', '.join(buildable) or 'none'}.",
        )
    plans = []
    for name in chosen:
        component = environment.components[name]
        build = component.build
        assert build is not None and component.image is not None
        dockerfile = project.root / build.dockerfile
        if not dockerfile.is_file():
            raise ConfigError(
                f"components.{name}.build.dockerfile: {build.dockerfile} does not exist.",
                hint="Fix the path in the environment file (it is relative to the project).",
            )
        files = _context_files(project.root, build.context, build.exclude, name)
        if build.dockerfile not in files:
            files.append(build.dockerfile)
        files.sort()
        if build.wheelhouse and build.wheelhouse not in files:
            raise ConfigError(
                f"components.{name}.build.wheelhouse: {build.wheelhouse} is not in the build "
                "context.",
                hint=f"Add it to components.{name}.build.context.",
            )
        plan = ImagePlan(
            component=name,
            repository=f"{environment.registry.url}/{component.image.repository}",
            dockerfile=build.dockerfile,
            files=files,
            buildargs=_declared_args(dockerfile, build_args(environment, name)),
            wheelhouse_requirements=build.wheelhouse,
            stage=build.target,
        )
        plan.inputs_digest = inputs_digest(project.root, plan)
        plans.append(plan)
    return plans


def _declared_args(dockerfile: Path, args: dict[str, str]) -> dict[str, str]:
    """Only the build args a Dockerfile declares: others would warn and change the tag."""
    text = dockerfile.read_text(encoding="utf-8")
    declared = set(re.findall(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", text, re.MULTILINE))
    return {k: v for k, v in args.items() if k in declared}


def _context_files(root: Path, patterns: list[str], exclude: list[str], name: str) -> list[str]:
    found: set[str] = set()
    for pattern in patterns:
        matches = _expand(root, pattern)
        if not matches:
            raise ConfigError(
                f"components.{name}.build.context: pattern {pattern!r} matches no file under "
                f"{root}.",
                hint="Fix the pattern (globs are relative to the project folder).",
            )
        found.update(matches)
    return [f for f in found if not any(glob_match(f, x) for x in exclude)]


def _expand(root: Path, pattern: str) -> list[str]:
    """Files under `root` matching `pattern` (`**` spans folders), as relative POSIX paths."""
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    start = root.joinpath(*fixed) if fixed else root
    if start.is_file():
        rel = start.relative_to(root).as_posix()
        return [rel] if glob_match(rel, pattern) else []
    found = []
    for folder, _dirs, names in os.walk(start):
        base = Path(folder).relative_to(root).as_posix()
        for filename in names:
            rel = f"{base}/{filename}" if base != "." else filename
            if glob_match(rel, pattern):
                found.append(rel)
    return found


@functools.cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(path: str, pattern: str) -> bool:
    """Whether a relative POSIX path matches a glob where `**` spans folders."""
    return _glob_regex(pattern).match(path) is not None


def with_bases(plan: ImagePlan, bases: Sequence[BaseImage]) -> ImagePlan:
    """The plan with its resolved base images and the content tag they complete."""
    distinct = tuple({b.reference: b for b in bases}.values())
    return replace(plan, bases=distinct, content_tag=content_tag(plan.inputs_digest, distinct))


def content_tag(inputs: str, bases: Sequence[BaseImage]) -> str:
    """A tag that changes exactly when the image's inputs change: files, modes, build args,
    and what each base image is, for which platform (a base re-tagged to other contents, or
    built for another CPU under the same index digest, makes a new tag)."""
    digest = hashlib.sha256(_CONTEXT_FORMAT)
    digest.update(f"inputs\0{inputs}\0".encode())
    for base in sorted(bases, key=lambda b: b.reference):
        digest.update(f"base\0{base.reference}\0{base.identity}\0{base.platform}\0".encode())
    return TAG_PREFIX + digest.hexdigest()[:TAG_DIGITS]


def inputs_digest(root: Path, plan: ImagePlan) -> str:
    """The hash of an image's own inputs (files, modes, build args), bases aside."""
    digest = hashlib.sha256(_CONTEXT_FORMAT)
    for arg, value in sorted(plan.buildargs.items()):
        digest.update(f"arg\0{arg}\0{value}\0".encode())
    digest.update(f"dockerfile\0{plan.dockerfile}\0".encode())
    if plan.stage:
        digest.update(f"stage\0{plan.stage}\0".encode())
    for rel in plan.files:
        path = root / rel
        mode = os.stat(path).st_mode & 0o111
        digest.update(f"file\0{rel}\0{mode:o}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def context_tar(root: Path, plan: ImagePlan, wheelhouse: Path | None) -> io.BytesIO:
    """The build context as an uncompressed tar: the plan's files, plus `wheelhouse/` if any."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for source, name in _context_entries(root, plan, wheelhouse):
            tar.add(str(source), arcname=name, recursive=False, filter=_normalise)
    buffer.seek(0)
    return buffer


def _context_entries(
    root: Path, plan: ImagePlan, wheelhouse: Path | None
) -> list[tuple[Path, str]]:
    """(file, path in the context) of every file an image's build context holds."""
    entries = [(root / rel, rel) for rel in plan.files]
    if wheelhouse is not None:
        entries += [
            (wheel, f"{WHEELHOUSE_FOLDER}/{wheel.name}")
            for wheel in sorted(wheelhouse.iterdir())
            if wheel.suffix == ".whl"
        ]
    return entries


def stage_context(root: Path, plan: ImagePlan, wheelhouse: Path | None, under: Path) -> Path:
    """The same context as `context_tar`, as a folder `under/<component>` for BuildKit.

    The folder is rebuilt from scratch every time (so nothing stale is ever sent) out of hard
    links where the filesystem allows (copies elsewhere), which keep the files' times: BuildKit
    then sends only what changed since its last build of this folder.
    """
    import os
    import shutil

    dest = under / plan.component
    shutil.rmtree(dest, ignore_errors=True)
    for source, name in _context_entries(root, plan, wheelhouse):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same bytes in, same layers out: no owner names or times from the host.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


@dataclass(frozen=True)
class Stage:
    """One `FROM` of a Dockerfile: what it starts from, and whether it reads the wheelhouse."""

    name: str | None
    reference: str  # build args resolved; "" when an arg names nothing
    build_arg: str | None
    parent: int | None  # the earlier stage it starts from, if any
    uses_wheelhouse: bool = False

    @property
    def external(self) -> bool:
        """Whether it starts from an image (not an earlier stage, `scratch` or nothing)."""
        return self.parent is None and self.reference not in ("", "scratch")


_FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_ARG = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?", re.IGNORECASE)
# `COPY wheelhouse/ ...`, `ADD ./wheelhouse ...`, `RUN --mount=type=bind,source=wheelhouse ...`
_COPY_SOURCES = re.compile(r"^(?:COPY|ADD)\s+(.*)$", re.IGNORECASE)
_MOUNT = re.compile(r"--mount=(\S+)", re.IGNORECASE)


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def _reads_wheelhouse(instruction: str) -> bool:
    def is_wheelhouse(path: str) -> bool:
        return path.removeprefix("./").rstrip("/").split("/", 1)[0] == WHEELHOUSE_FOLDER

    copy = _COPY_SOURCES.match(instruction)
    if copy:
        words = copy.group(1).split()
        if any(w.lower().startswith("--from") for w in words):
            return False
        sources = [w for w in words if not w.startswith("--")][:-1]
        return any(is_wheelhouse(s.strip('"[],')) for s in sources)
    if instruction[:3].upper() == "RUN":
        for mount in _MOUNT.findall(instruction):
            options = dict(o.partition("=")[::2] for o in mount.split(","))
            source = options.get("source") or options.get("src")
            if source and "from" not in options and is_wheelhouse(source):
                return True
    return False


def stages(root: Path, plan: ImagePlan) -> list[Stage]:
    """The stages of a plan's Dockerfile, in order."""
    text = (root / plan.dockerfile).read_text(encoding="utf-8")
    defaults: dict[str, str] = {}
    found: list[Stage] = []
    for line in _instructions(text):
        arg = _ARG.match(line)
        if arg and arg.group(2) is not None:
            defaults.setdefault(arg.group(1), arg.group(2))
        match = _FROM.match(line)
        if not match:
            if found and _reads_wheelhouse(line):
                found[-1] = replace(found[-1], uses_wheelhouse=True)
            continue
        reference, name = match.group(1), match.group(2)
        variable = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", reference)
        build_arg = variable.group(1) if variable else None
        if build_arg:
            reference = plan.buildargs.get(build_arg) or defaults.get(build_arg, "")
        found.append(Stage(name, reference, build_arg, _stage_named(found, reference)))
    return found


def _stage_named(found: list[Stage], name: str) -> int | None:
    """The index of the stage called `name` (stage names are case-insensitive), if any."""
    return next((i for i, s in enumerate(found) if s.name and s.name.lower() == name.lower()), None)


def base_images(root: Path, plan: ImagePlan) -> list[tuple[str, str | None]]:
    """The external images a Dockerfile starts from, with the build arg that names each."""
    return [(s.reference, s.build_arg) for s in stages(root, plan) if s.external]


def _origin(found: list[Stage], index: int) -> Stage | None:
    """The external image stage `index` starts from, through the stages it builds on."""
    stage = found[index]
    while stage.parent is not None:
        stage = found[stage.parent]
    return stage if stage.external else None


def final_base(root: Path, plan: ImagePlan) -> tuple[str, str | None] | None:
    """The external image the built stage (`build.target`, else the last) starts from."""
    found = stages(root, plan)
    if not found:
        return None
    index = _stage_named(found, plan.stage) if plan.stage else None
    origin = _origin(found, len(found) - 1 if index is None else index)
    return (origin.reference, origin.build_arg) if origin else None


def wheelhouse_bases(root: Path, plan: ImagePlan) -> list[tuple[str, str | None]]:
    """The external images whose Python installs the wheelhouse: the bases of the stages that
    read `wheelhouse/` from the context (else of the built stage), once each."""
    found = stages(root, plan)
    origins = [_origin(found, i) for i, s in enumerate(found) if s.uses_wheelhouse]
    if not origins:
        last = final_base(root, plan)
        return [last] if last else []
    out: list[tuple[str, str | None]] = []
    for origin in origins:
        if origin is not None and (origin.reference, origin.build_arg) not in out:
            out.append((origin.reference, origin.build_arg))
    return out


def base_image_field(plan: ImagePlan, build_arg: str | None, environment: Environment) -> str:
    """The environment field that sets a build arg naming a base image."""
    if build_arg is None:
        return "the Dockerfile's FROM line"
    own = environment.components[plan.component].build
    if own is not None and build_arg in own.args:
        return f"components.{plan.component}.build.args.{build_arg}"
    return f"build.args.{build_arg}"
