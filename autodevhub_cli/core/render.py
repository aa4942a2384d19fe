"""Rendering: an environment's values through its target's templates into ordered manifests."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autodevhub_cli.core.errors import RenderError
from autodevhub_cli.core.kinds import apply_rank
from autodevhub_cli.core.project import Project
from autodevhub_cli.core.templates import render_template, template_environment, to_yaml

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment

_Loader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TARGETS = ("compose", "kubernetes")
COMPOSE_FILE = "compose.yaml"


_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


@dataclass(frozen=True)
class RenderedManifest:
    """One rendered document and the template it came from."""

    template: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind (`Compose` for a Compose file)."""
        return str(self.document.get("kind", "Compose"))

    @property
    def name(self) -> str:
        """The object's name (the project name for a Compose file)."""
        meta = self.document.get("metadata")
        if isinstance(meta, Mapping):
            return str(meta.get("name", ""))
        return str(self.document.get("name", ""))

    @property
    def api_version(self) -> str:
        """The object's apiVersion ('' for a Compose file)."""
        return str(self.document.get("apiVersion", ""))

    def to_yaml(self) -> str:
        """The document as YAML text."""
        return to_yaml(self.document) + "\n"

    def container_images(self) -> list[tuple[str, str]]:
        """(container name, image) of every container the object runs, at any depth (pod
        templates of Deployments, Rollouts, Jobs and CronJobs)."""
        found: list[tuple[str, str]] = []

        def walk(node: object, in_containers: bool = False) -> None:
            if isinstance(node, Mapping):
                if in_containers and isinstance(node.get("image"), str):
                    found.append((str(node.get("name", "")), node["image"]))
                for key, value in node.items():
                    walk(value, key in _CONTAINER_LISTS)
            elif isinstance(node, list):
                for item in node:
                    walk(item, in_containers)

        walk(self.document)
        return found


@dataclass
class RenderResult:
    """The ordered output of one render."""

    environment: str
    target: str
    manifests: list[RenderedManifest] = field(default_factory=list)

    def to_yaml(self) -> str:
        """One multi-document YAML stream, in apply order."""
        return "".join(f"---\n{m.to_yaml()}" for m in self.manifests)

    def files(self) -> dict[str, str]:
        """File name -> content, one file per resource (a single compose.yaml for Compose)."""
        if self.target == "compose":
            return {COMPOSE_FILE: self.manifests[0].to_yaml()}
        out: dict[str, str] = {}
        for index, manifest in enumerate(self.manifests, start=1):
            slug = re.sub(r"[^a-z0-9.-]+", "-", f"{manifest.kind}-{manifest.name}".lower())
            out[f"{index:02d}-{slug}.yaml"] = manifest.to_yaml()
        return out


def template_context(environment: Environment) -> dict[str, object]:
    """What every template sees: the typed environment, as `env`."""
    return {"env": environment}


def render(project: Project, environment: Environment, target: str | None = None) -> RenderResult:
    """Render `environment` for `target` (default: the environment's own target)."""
    chosen = target or environment.target
    if chosen not in TARGETS:
        raise RenderError(f"Unknown target {chosen!r}.", hint=f"Use one of: {', '.join(TARGETS)}.")
    folder = project.templates_dir / chosen
    names = _template_names(project.templates_dir, folder)
    if not names:
        raise RenderError(
            f"templates/{chosen}/ has no templates (*.j2 files).",
            hint=f"Add templates under templates/{chosen}/ or choose another --target.",
        )
    jinja = template_environment(project.templates_dir)
    context = template_context(environment)
    rendered = [(name, render_template(jinja, name, context)) for name in names]
    if chosen == "compose":
        return RenderResult(environment.name, chosen, [_merge_compose(rendered)])
    manifests = [m for name, text in rendered for m in _documents(name, text)]
    _check_unique(manifests)
    manifests.sort(key=_apply_order)
    return RenderResult(environment.name, chosen, manifests)


def _template_names(templates_dir: Path, folder: Path) -> list[str]:
    """The templates under `folder` (*.j2 not starting with `_`), without following links to
    folders (a link loop would never end; the loader checks where file links lead)."""
    names = []
    for where, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in files:
            if name.endswith(".j2") and not name.startswith("_"):
                names.append(Path(where, name).relative_to(templates_dir).as_posix())
    return sorted(names)


def _parse(name: str, text: str) -> list[object]:
    try:
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (rendered output line {mark.line + 1})" if mark else ""
        raise RenderError(
            f"templates/{name} renders invalid YAML{where}: {exc.problem}.",
            hint="Check the template's indentation and quoting (use the to_yaml/to_json filters "
            "for values).",
        ) from None


def _documents(name: str, text: str) -> list[RenderedManifest]:
    found = []
    for doc in _parse(name, text):
        if not isinstance(doc, dict) or not all(k in doc for k in ("apiVersion", "kind")):
            raise RenderError(
                f"templates/{name} renders a document without apiVersion and kind.",
                hint="Each document a Kubernetes template renders is one object.",
            )
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise RenderError(f"templates/{name} renders a {doc['kind']} without metadata.name.")
        found.append(RenderedManifest(name, doc))
    return found


def _merge_compose(rendered: list[tuple[str, str]]) -> RenderedManifest:
    from autodevhub_cli.core.config import deep_merge

    merged: dict[str, Any] = {}
    for name, text in rendered:
        for doc in _parse(name, text):
            if not isinstance(doc, dict):
                raise RenderError(f"templates/{name} must render a mapping of Compose fields.")
            for section in ("services", "volumes", "networks", "secrets", "configs"):
                clash = set(doc.get(section) or {}) & set(merged.get(section) or {})
                if clash:
                    raise RenderError(
                        f"templates/{name} defines {section} {', '.join(sorted(clash))} again."
                    )
            merged = deep_merge(merged, doc)
    first: tuple[str, ...] = ("name", "services", "volumes", "networks")
    ordered: dict[str, Any] = {k: merged[k] for k in first if k in merged}
    ordered.update({k: v for k, v in merged.items() if k not in ordered})
    return RenderedManifest("compose", {k: _literal_dollars(v) for k, v in ordered.items()})


def _literal_dollars(value: object) -> object:
    """Every `$` as `$$`: values are resolved here, once, so Compose must not interpolate them
    again (it would turn an env value `pa$word` into `pa` plus an unset variable)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _literal_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_dollars(v) for v in value]
    return value


def _check_unique(manifests: list[RenderedManifest]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for m in manifests:
        key = (m.kind, str(m.document["metadata"].get("namespace", "")), m.name)
        if key in seen:
            raise RenderError(
                f"{m.kind} {m.name!r} is rendered by both templates/{seen[key]} and "
                f"templates/{m.template}."
            )
        seen[key] = m.template


def _apply_order(m: RenderedManifest) -> tuple[int, str, str]:
    rank = apply_rank(m.kind)
    return rank, m.kind, m.name
