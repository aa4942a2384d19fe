"""`autodevhub init`: a minimal working project for one component built from a Dockerfile.

The starter files live in `autodevhub_cli/starter/` as they are written, with `__APP__` where
the project's name goes; its Jinja templates are copied as they are, not rendered.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autodevhub_cli.core.errors import ConfigError

STARTER = Path(__file__).resolve().parent.parent / "starter"
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
# Names that cannot be package data as they are (a dot file would be dropped from a wheel).
_RENAMED = {"dot-gitignore": ".gitignore"}


@dataclass(frozen=True, kw_only=True)
class InitRequest:
    """Options of `autodevhub init`."""

    folder: Path
    name: str | None = None
    force: bool = False


@dataclass
class InitResult:
    """What `init` wrote, and what it replaced (with --force)."""

    folder: Path
    name: str
    written: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "folder": str(self.folder),
            "name": self.name,
            "written": self.written,
            "replaced": self.replaced,
        }


def starter_files() -> dict[str, str]:
    """Relative path -> content of every starter file, before the name is filled in."""
    out = {}
    for path in sorted(STARTER.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(STARTER).as_posix()
            out[_RENAMED.get(rel, rel)] = path.read_text(encoding="utf-8")
    return out


def init_project(request: InitRequest) -> InitResult:
    """Write the starter project into `request.folder`; refuse to overwrite unless forced.

    Nothing is written when a file is in the way: every check happens before the first write,
    and each file is written whole (a temporary file renamed into place).
    """
    folder = request.folder.expanduser().resolve()
    name = request.name or _name_from(folder)
    if not _NAME.match(name):
        raise ConfigError(
            f"{name!r} cannot name a project: it becomes the app label, image repositories and "
            "namespaces, so it must be a DNS label (lower-case letters, digits and '-', starting "
            "with a letter, at most 32 characters).",
            hint="Pass --name, such as --name shop.",
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder.", hint="Choose another folder.")
    files = {rel: text.replace("__APP__", name) for rel, text in starter_files().items()}
    existing = sorted(rel for rel in files if (folder / rel).exists())
    blocked = [rel for rel in existing if (folder / rel).is_dir()]
    # A file where init makes a folder (a file named `environments`): every parent folder of
    # every file it writes must be a folder or not exist.
    in_the_way = sorted(
        {
            str(parent.relative_to(folder))
            for rel in files
            for parent in (folder / rel).parents
            if parent != folder
            and parent.is_relative_to(folder)
            and parent.exists()
            and not parent.is_dir()
        }
    )
    if in_the_way:
        raise ConfigError(
            f"{folder}: {', '.join(in_the_way)} is a file where init makes a folder; nothing "
            "was written.",
            hint="Move it away, or choose another folder.",
        )
    if blocked:
        raise ConfigError(
            f"{folder}: {', '.join(blocked)} is a folder where init writes a file.",
            hint="Move it away, or choose another folder.",
        )
    if existing and not request.force:
        raise ConfigError(
            f"{folder} already has {', '.join(existing)}; init writes these files and refuses to "
            "overwrite them.",
            hint="Pass --force to replace them (other files are left alone), or choose an "
            "empty folder.",
        )
    result = InitResult(folder, name, replaced=existing)
    try:
        for rel, text in files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.init-{os.getpid()}")
            staging.write_text(text, encoding="utf-8")
            os.replace(staging, target)
            result.written.append(rel)
    except OSError as exc:
        written = ", ".join(result.written) or "nothing"
        raise ConfigError(
            f"Could not write {exc.filename or folder}: {exc.strerror or exc}. Written before "
            f"that: {written}.",
            hint="Free space or fix the folder's permissions, then run init again with --force.",
        ) from None
    return result


def _name_from(folder: Path) -> str:
    """A DNS label from the folder's name (`My Shop` -> `my-shop`)."""
    return re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")[:32].strip("-") or "app"
